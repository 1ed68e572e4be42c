//! The head index: an in-memory map from identity hash to [`IdentityHead`],
//! saved as one flat file (`<dir>/heads`) at flush and read back at open,
//! so that the cached path of a build is a hash-map lookup, not a sled read.
//!
//! The index is derived data: the identity tree in sled stays the source of
//! truth, and an identity missing from the index is looked up there. The file
//! is trusted only when its checksum holds and it names the database it was
//! written for (a random id kept in sled), so a recreated database never
//! meets an old index. A head that is stale (a crash between the database
//! flush and the index write) still maps a key to the output that key
//! produced, which is all the engine asks of it.
use std::collections::HashMap;
use std::path::Path;

use crate::{CacheError, Digest, IdentityHead};

const MAGIC: &[u8; 8] = b"n2dheads";
const FORMAT: u32 = 1;
const ENTRY_LEN: usize = 16 + 32 + 32 + 8;
const HEADER_LEN: usize = 8 + 4 + 16 + 8;

pub(crate) type Heads = HashMap<[u8; 16], IdentityHead>;

/// Reads the index written for database `db_id`; `None` when the file is
/// missing, damaged, of another format or of another database.
pub(crate) fn load(path: &Path, db_id: &[u8; 16]) -> Option<Heads> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() < HEADER_LEN + 32 {
        return None;
    }
    let (body, checksum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != checksum {
        return None;
    }
    if &body[..8] != MAGIC || body[8..12] != FORMAT.to_le_bytes() || &body[12..28] != db_id {
        return None;
    }
    let count = u64::from_le_bytes(body[28..36].try_into().ok()?) as usize;
    let entries = &body[HEADER_LEN..];
    if entries.len() != count.checked_mul(ENTRY_LEN)? {
        return None;
    }
    let mut heads = Heads::with_capacity(count);
    for entry in entries.chunks_exact(ENTRY_LEN) {
        let identity: [u8; 16] = entry[..16].try_into().ok()?;
        heads.insert(
            identity,
            IdentityHead {
                key: Digest(entry[16..48].try_into().ok()?),
                output: Digest(entry[48..80].try_into().ok()?),
                touched_secs: u64::from_le_bytes(entry[80..88].try_into().ok()?),
            },
        );
    }
    Some(heads)
}

/// Writes the index atomically: a temporary sibling, then a rename.
pub(crate) fn save(path: &Path, db_id: &[u8; 16], heads: &Heads) -> Result<(), CacheError> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + heads.len() * ENTRY_LEN + 32);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT.to_le_bytes());
    bytes.extend_from_slice(db_id);
    bytes.extend_from_slice(&(heads.len() as u64).to_le_bytes());
    for (identity, head) in heads {
        bytes.extend_from_slice(identity);
        bytes.extend_from_slice(&head.key.0);
        bytes.extend_from_slice(&head.output.0);
        bytes.extend_from_slice(&head.touched_secs.to_le_bytes());
    }
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, &bytes).map_err(|source| CacheError::Io {
        action: "write the head index",
        path: temporary.clone(),
        source,
    })?;
    std::fs::rename(&temporary, path).map_err(|source| CacheError::Io {
        action: "replace the head index",
        path: path.to_owned(),
        source,
    })
}

/// Deletes the index file (before gc or verify delete records, so that no
/// index survives that names deleted blobs).
pub(crate) fn remove(path: &Path) -> Result<(), CacheError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CacheError::Io {
            action: "remove the head index",
            path: path.to_owned(),
            source,
        }),
    }
}
