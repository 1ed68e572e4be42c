//! Transparent huge pages off while a build may still end on its short
//! paths (the no-op check, the delta path), on again for the full path.
//!
//! mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`),
//! so the first touch of each 2 MiB region zeroes all of it. A cold build
//! gains from that (fewer faults over hundreds of megabytes, and a
//! measured 15–20 % at 2 jobs), but a no-op build touches a few megabytes
//! in all, and zeroing whole huge pages for them was a sixth of its CPU
//! time (BENCHMARKS.md). `PR_SET_THP_DISABLE` is checked at fault time, so
//! turning it on and off again only decides the pages faulted meanwhile.
//!
//! The setting is the process's and is inherited by children, so it is
//! never left on past [`SmallPages`]'s life, nor once the full path
//! begins (which may start Nix or a manager). A process whose parent had
//! already turned huge pages off is left as it was.
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process turned huge pages off and has not turned them on.
static TURNED_OFF: AtomicBool = AtomicBool::new(false);

/// Huge pages off until dropped (or until [`allow_huge_pages`]).
pub struct SmallPages(());

impl SmallPages {
    pub fn begin() -> SmallPages {
        // SAFETY: prctl with these options reads and sets a flag of the
        // calling process; no memory is passed.
        let already_off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1;
        if !already_off && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0 {
            TURNED_OFF.store(true, Ordering::SeqCst);
        }
        SmallPages(())
    }
}

impl Drop for SmallPages {
    fn drop(&mut self) {
        allow_huge_pages();
    }
}

/// Huge pages on again, if [`SmallPages`] turned them off: the full path
/// allocates hundreds of megabytes and may start other programs.
pub(crate) fn allow_huge_pages() {
    if TURNED_OFF.swap(false, Ordering::SeqCst) {
        // SAFETY: as in `SmallPages::begin`.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn huge_pages_off() -> bool {
        // SAFETY: reads a flag of the calling process.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    #[test]
    fn small_pages_last_until_the_full_path_or_the_guard_ends() {
        assert!(
            !huge_pages_off(),
            "the test process starts with huge pages allowed"
        );
        let guard = SmallPages::begin();
        assert!(huge_pages_off());
        allow_huge_pages();
        assert!(!huge_pages_off(), "the full path turns them on again");
        drop(guard);
        assert!(!huge_pages_off());

        let guard = SmallPages::begin();
        assert!(huge_pages_off());
        drop(guard);
        assert!(!huge_pages_off(), "nothing is left off past the guard");
    }
}
