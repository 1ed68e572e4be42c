//! The single-writer lock of a workspace: an advisory `flock` on a lock file.
//!
//! The lock belongs to the open file description, so it is released when the
//! [`WorkspaceLock`] is dropped or when the process dies, even by SIGKILL:
//! a crashed build never leaves a stale lock behind.
use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::CacheError;

/// An exclusive hold on a lock file, released on drop.
#[derive(Debug)]
pub struct WorkspaceLock {
    // Invariant: holds an exclusive flock for as long as it lives.
    file: File,
    path: PathBuf,
}

impl WorkspaceLock {
    /// Takes the lock on `path` (created if missing). When another process
    /// (or another `WorkspaceLock` in this one) holds it, calls `on_wait`
    /// once with the path, then blocks until the lock is free.
    pub fn acquire(path: &Path, on_wait: impl FnOnce(&Path)) -> Result<WorkspaceLock, CacheError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| CacheError::Io {
                action: "create the folder of the lock file",
                path: parent.to_owned(),
                source,
            })?;
        }
        let file = open_lock_file(path)?;
        let lock_error = |source| CacheError::Io {
            action: "lock",
            path: path.to_owned(),
            source,
        };
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(lock_error)? {
            on_wait(path);
            flock(&file, libc::LOCK_EX).map_err(lock_error)?;
        }
        Ok(WorkspaceLock {
            file,
            path: path.to_owned(),
        })
    }

    /// Takes the lock only if it is free right now.
    pub fn try_acquire(path: &Path) -> Result<Option<WorkspaceLock>, CacheError> {
        let file = open_lock_file(path)?;
        let taken =
            flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(|source| CacheError::Io {
                action: "lock",
                path: path.to_owned(),
                source,
            })?;
        Ok(taken.then(|| WorkspaceLock {
            file,
            path: path.to_owned(),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WorkspaceLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes the
        // release independent of other descriptors sharing the description.
        let _ = flock(&self.file, libc::LOCK_UN);
    }
}

/// Calls flock, retrying on EINTR. `Ok(false)` when a non-blocking request
/// found the lock held.
fn flock(file: &File, operation: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: the descriptor is valid for the lifetime of `file`.
        let result = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if result == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(error),
        }
    }
}

fn open_lock_file(path: &Path) -> Result<File, CacheError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| CacheError::Io {
            action: "open the lock file",
            path: path.to_owned(),
            source,
        })
}
