//! Transparent huge pages off for `n2d build`; on again for every other
//! command and for the programs a build starts.
//!
//! mimalloc asks for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`),
//! so the first touch of each 2 MiB region zeroes all of it. A no-op build
//! touches a few megabytes in all, and zeroing whole huge pages for them
//! (for the runtime's first allocation, each thread's allocator state, the
//! stamp) was a sixth of its CPU time. A full build gained nothing from
//! them with memory the system had already handed out, and lost most of
//! its speed where fresh memory is dear: on a virtual machine whose host
//! takes back free memory (free page reporting), each huge page faulted
//! costs the host 512 faults, and a 1-job cold build took 3 to 5 s
//! instead of 2 (BENCHMARKS.md, session 9).
//!
//! The setting is the process's and is inherited by children and across
//! `exec`, so every other command turns it on again before anything else
//! can run (`n2d up` execs the supervisor, which starts services), and a
//! build turns it on in the programs it starts ([`allowed_in_child`]: Nix).
//! A process whose parent had already turned huge pages off is left as it
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

/// Has `command`'s process turn huge pages on again between `fork` and
/// `exec`, if [`small_pages`] turned them off here: a program n2d starts
/// gets the system's setting, not n2d's.
pub(crate) fn allowed_in_child(command: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    if TURNED_OFF.load(Ordering::SeqCst) {
        // SAFETY: the hook runs in the forked child, where only
        // async-signal-safe calls are allowed: prctl is a system call, and
        // the closure allocates nothing.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
                Ok(())
            })
        };
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn huge_pages_off() -> bool {
        // SAFETY: reads a flag of the calling process.
        unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 }
    }

    /// What `/proc/self/status` says of huge pages in a child started
    /// with `command` (`grep`).
    fn child_thp(command: &mut Command) -> String {
        let out = command
            .args(["THP_enabled", "/proc/self/status"])
            .output()
            .expect("grep runs");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    // One test: the setting is the process's, and tests run on threads of
    // one process.
    #[test]
    fn huge_pages_come_back_once_and_only_if_turned_off_here() {
        assert!(
            !huge_pages_off(),
            "the test process starts with huge pages allowed"
        );
        small_pages();
        assert!(huge_pages_off());
        // A child inherits the setting, unless started with the hook.
        assert_eq!(child_thp(&mut Command::new("grep")), "THP_enabled:\t0");
        assert_eq!(
            child_thp(allowed_in_child(&mut Command::new("grep"))),
            "THP_enabled:\t1"
        );
        assert!(huge_pages_off(), "the hook changes the child only");
        allow_huge_pages();
        assert!(!huge_pages_off());

        // Turned off by someone else (a parent): left off, here and in
        // children.
        // SAFETY: sets a flag of the calling process.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        small_pages();
        assert_eq!(
            child_thp(allowed_in_child(&mut Command::new("grep"))),
            "THP_enabled:\t0"
        );
        allow_huge_pages();
        assert!(huge_pages_off(), "a setting n2d did not make is not undone");
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
    }
}
