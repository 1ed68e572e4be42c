//! The persistent cache of n2d. The only crate that touches sled.
//!
//! One [`Cache`] is one sled database under a cache folder (`<dir>/db`), held
//! by one process at a time through a [`WorkspaceLock`] on `<dir>/lock`. Its
//! trees are:
//!
//! - the CAS: [`Digest`] (blake3 of the bytes) → bytes (an index in sled,
//!   the bytes in pack files, see `packs`), verified on every
//!   read: a damaged entry is dropped, reported once as a [`Notice`], and
//!   treated as missing so that the caller rebuilds it;
//! - the action cache: task key → [`ActionRecord`] (the output digest);
//! - the identity table: a task's stable identity → [`IdentityRecord`] (its
//!   last key, output and the digests of its named inputs and dependencies),
//!   which lets `--explain` name what changed; its heads (last key and
//!   output) are also kept in a flat index file read at open, which makes
//!   the cached path a hash-map lookup;
//! - the file-state table: path → [`FileState`] (mtime, size, inode, hash), so
//!   that an unchanged file is not hashed again;
//! - launch records: launch id → the output digest a manager last launched;
//! - access times of CAS entries, for [`Cache::gc`] (least recently used first).
//!
//! The cache is an optimisation, never a source of failures: a database that
//! cannot be opened is moved aside and recreated, a record that cannot be
//! decoded is a miss, an action record whose blob is gone is a miss. Writes are
//! not flushed one by one; [`Cache::flush`] runs once at the end of a build. A
//! crash may lose recent entries, which only costs a rebuild.
//!
//! Invariant kept by callers: no secret value is ever given to the cache. The
//! cache stores what it is handed; the engine hands it what tasks return, so
//! tasks return references to secrets (names), never their values.
mod heads;
mod lock;
mod maintenance;
mod packs;
mod record;
mod store;

pub use lock::WorkspaceLock;
pub use maintenance::{GcReport, Stats, TreeStats, VerifyReport};
pub use packs::{read_located, BlobRef};
pub use record::{ActionRecord, FileState, IdentityHead, IdentityRecord, InputDigest};
pub use store::{Cache, IdentityLookup};

use std::fmt;
use std::path::PathBuf;

/// A blake3 digest: the address of a CAS entry, a task key, a file hash.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from(self.0).to_hex().to_string()
    }

    /// The first 12 hexadecimal characters, for messages.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(12);
        hex
    }

    /// Parses 64 hexadecimal characters.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| Digest(*h.as_bytes()))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Digest {
        Digest(*hash.as_bytes())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

/// Something the cache repaired on its own, that the user should hear about
/// once (a damaged entry, a database that was recreated). Never an error: the
/// build goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub message: String,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Why the cache could not do what was asked. Reads that meet damage do not
/// return these: they report a [`Notice`] and return a miss.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot {action} `{path}`")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the cache database in `{path}`")]
    Open {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("cache database operation failed: {action}")]
    Database {
        action: &'static str,
        #[source]
        source: sled::Error,
    },
}
