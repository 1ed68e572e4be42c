//! Input files: hashing through the cache's file-state table, and reading
//! them for a task that runs.
//!
//! A file whose metadata (mtime, size, inode) matches its recorded state is
//! not read: its recorded hash is used. Otherwise it is read between two
//! stats. The state is recorded only when both stats agree (the file did not
//! change while being read) and its mtime is not within
//! [`RACY_WINDOW_NS`] of now (a later write in the same timestamp tick could
//! not be told apart, the "racily clean" problem of git's index).
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use n2d_cache::{Cache, Digest, FileState};

/// Files modified this recently are hashed but their state is not recorded.
const RACY_WINDOW_NS: i64 = 1_000_000_000;

/// The hash of an input file, and its bytes when they had to be read.
pub(crate) struct HashedFile {
    pub(crate) hash: Digest,
    pub(crate) bytes: Option<Arc<[u8]>>,
    /// False when the file changed while it was read: the task using it must
    /// not be cached.
    pub(crate) stable: bool,
}

/// Hashes `path`, from the file-state table when its metadata is unchanged.
/// `after_read` runs between the read and the second stat (a test hook).
pub(crate) fn hash_file(
    cache: &Cache,
    path: &Path,
    after_read: Option<&(dyn Fn(&Path) + Send + Sync)>,
) -> Result<(HashedFile, Option<n2d_cache::CacheError>), std::io::Error> {
    let before = std::fs::metadata(path)?;
    let (recorded, cache_error) = match cache.file_state(path) {
        Ok(state) => (state, None),
        Err(error) => (None, Some(error)),
    };
    if let Some(recorded) = recorded {
        if same_metadata(&recorded, &before) {
            let file = HashedFile {
                hash: recorded.hash,
                bytes: None,
                stable: true,
            };
            return Ok((file, cache_error));
        }
    }
    let bytes = std::fs::read(path)?;
    if let Some(hook) = after_read {
        hook(path);
    }
    let after = std::fs::metadata(path)?;
    let hash = Digest::of(&bytes);
    let stable = metadata_equal(&before, &after) && bytes.len() as u64 == after.size();
    let mut cache_error = cache_error;
    if stable && !is_racy(&before) {
        let state = FileState {
            mtime_ns: mtime_ns(&before),
            size: before.size(),
            inode: before.ino(),
            hash,
        };
        if let Err(error) = cache.put_file_state(path, &state) {
            cache_error.get_or_insert(error);
        }
    }
    let file = HashedFile {
        hash,
        bytes: Some(Arc::from(bytes)),
        stable,
    };
    Ok((file, cache_error))
}

/// Reads a file for a task whose key used the recorded hash `expected`.
/// The boolean is false when the content no longer matches `expected` or
/// changed during the read: the task then runs on what was read but is not
/// cached.
pub(crate) fn read_for_run(
    path: &Path,
    expected: &Digest,
) -> Result<(Arc<[u8]>, bool), std::io::Error> {
    let before = std::fs::metadata(path)?;
    let bytes = std::fs::read(path)?;
    let after = std::fs::metadata(path)?;
    let consistent = metadata_equal(&before, &after) && Digest::of(&bytes) == *expected;
    Ok((Arc::from(bytes), consistent))
}

fn mtime_ns(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(metadata.mtime_nsec())
}

fn same_metadata(recorded: &FileState, metadata: &std::fs::Metadata) -> bool {
    recorded.mtime_ns == mtime_ns(metadata)
        && recorded.size == metadata.size()
        && recorded.inode == metadata.ino()
}

fn metadata_equal(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    mtime_ns(a) == mtime_ns(b) && a.size() == b.size() && a.ino() == b.ino() && a.dev() == b.dev()
}

fn is_racy(metadata: &std::fs::Metadata) -> bool {
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(i64::MAX);
    mtime_ns(metadata) > now_ns.saturating_sub(RACY_WINDOW_NS)
}
