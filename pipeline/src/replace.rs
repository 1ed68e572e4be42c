//! Putting a finished temporary file in place of another.
//!
//! `rename(2)` over an existing file makes ext4 start writing the new
//! file's data back at once (`auto_da_alloc`, its guard for programs that
//! replace a file without `fsync`): 150–350 µs for a 1 kB output here, on
//! the path of every build that changes a file. Exchanging the two
//! (`renameat2(RENAME_EXCHANGE)`) and then removing the old one, now under
//! the temporary name, is as atomic for a reader of the path (it sees the
//! old file or the new one, never none) and leaves the writeback to the
//! kernel's flusher. n2d never relied on that guard: nothing it writes is
//! `fsync`ed, and after a crash a file whose content did not reach the
//! disk no longer `stat`s as its manifest or stamp records it, so the
//! next build writes it again.
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Moves `from` to `to`, replacing whatever `to` is. A build killed after
/// the exchange leaves the old file under `from`, a temporary name the
/// caller already cleans up after a killed build.
pub(crate) fn replace(from: &Path, to: &Path) -> io::Result<()> {
    match exchange(from, to) {
        Ok(()) => match std::fs::remove_file(from) {
            Ok(()) => Ok(()),
            // A folder was at `to`: put it back, and fail as a rename
            // over a folder does.
            Err(_) if from.is_dir() => {
                let _ = exchange(from, to);
                Err(io::Error::from_raw_os_error(libc::EISDIR))
            }
            // The old file, now at `from`, is left behind as a killed
            // build's temporary would be.
            Err(_) => Ok(()),
        },
        // Nothing at `to` to exchange with, or a file system (or kernel)
        // without exchange: a plain rename.
        Err(_) => std::fs::rename(from, to),
    }
}

fn exchange(from: &Path, to: &Path) -> io::Result<()> {
    let from = CString::new(from.as_os_str().as_bytes())?;
    let to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are NUL-terminated strings alive for the call.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("f.tmp"), dir.path().join("f"));
        std::fs::write(&path, "old").unwrap();
        std::fs::write(&tmp, "new").unwrap();
        replace(&tmp, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!tmp.exists(), "the old file is removed");
    }

    #[test]
    fn a_file_is_moved_where_there_was_none() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("f.tmp"), dir.path().join("f"));
        std::fs::write(&tmp, "new").unwrap();
        replace(&tmp, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert!(!tmp.exists());
    }

    #[test]
    fn a_folder_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("f.tmp"), dir.path().join("f"));
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("kept"), "kept").unwrap();
        std::fs::write(&tmp, "new").unwrap();
        assert!(replace(&tmp, &path).is_err());
        assert_eq!(std::fs::read_to_string(path.join("kept")).unwrap(), "kept");
        assert_eq!(std::fs::read_to_string(&tmp).unwrap(), "new");
    }

    #[test]
    fn a_missing_temporary_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("f.tmp"), dir.path().join("f"));
        std::fs::write(&path, "old").unwrap();
        assert!(replace(&tmp, &path).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
    }
}
