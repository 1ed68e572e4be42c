//! Transparent huge pages off while a build may still end on its short
//! paths (the no-op check, the delta path), on again for the full path.
//!
//! mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`),
//! so the first touch of each 2 MiB region zeroes all of it. A cold build
//! gains from that (fewer faults over hundreds of megabytes, and a
//! measured 15–20 % at 2 jobs), but a no-op build touches a few megabytes
//! in all, and zeroing whole huge pages for them (for the runtime's first
//! allocation, each thread's allocator state, the stamp) was a sixth of
//! its CPU time (BENCHMARKS.md). `PR_SET_THP_DISABLE` is checked at fault
//! time, so turning it on and off again only decides the pages faulted
//! meanwhile.
//!
//! The setting is the process's and is inherited by children and across
//! `exec`, so it is turned on again before anything else can run: the
//! full path may start Nix or a manager, `n2d up` execs the supervisor. A
//! process whose parent had already turned huge pages off is left as it
//! was.
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this process turned huge pages off and has not turned them on.
static TURNED_OFF: AtomicBool = AtomicBool::new(false);

/// Turns transparent huge pages off for this process (see the module
/// docs). Safe to call before `main`: it neither allocates nor panics.
pub fn small_pages() {
    // SAFETY: prctl with these options reads and sets a flag of the
    // calling process; no memory is passed.
    let already_off = unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) } == 1;
    if !already_off && unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } == 0 {
        TURNED_OFF.store(true, Ordering::SeqCst);
    }
}

/// Turns huge pages on again, if [`small_pages`] turned them off.
pub fn allow_huge_pages() {
    if TURNED_OFF.swap(false, Ordering::SeqCst) {
        // SAFETY: as in `small_pages`.
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
    fn huge_pages_come_back_once_and_only_if_turned_off_here() {
        assert!(
            !huge_pages_off(),
            "the test process starts with huge pages allowed"
        );
        small_pages();
        assert!(huge_pages_off());
        allow_huge_pages();
        assert!(!huge_pages_off());

        // Turned off by someone else (a parent): left off.
        // SAFETY: sets a flag of the calling process.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        small_pages();
        allow_huge_pages();
        assert!(huge_pages_off(), "a setting n2d did not make is not undone");
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
    }
}
