//! SIGINT and SIGTERM as a flag the watch loop polls.
//!
//! The supervisor, a child process, handles its own signals; the watch loop
//! needs its own handlers to stop it (and wait for it) on the way out. A flag
//! is enough because the loop never blocks for long: it waits for file events
//! with a short timeout and checks [`StopSignals::requested`] in between.
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Result};

const HANDLED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

// A signal handler can only reach global state.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installed handlers; dropping it restores the previous ones.
pub struct StopSignals {
    previous: Vec<(libc::c_int, libc::sigaction)>,
}

extern "C" fn on_signal(signal: libc::c_int) {
    if STOP_REQUESTED.swap(true, Ordering::SeqCst) {
        // A second signal: the user insists, for instance while a build
        // waits for another process's lock. Die by the default action; the
        // supervisor child dies with us (parent-death signal) and its
        // keepers then kill the services.
        // SAFETY: signal and raise are async-signal-safe.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

impl StopSignals {
    pub fn install() -> Result<StopSignals> {
        STOP_REQUESTED.store(false, Ordering::SeqCst);
        let mut previous = Vec::new();
        for signal in HANDLED {
            // SAFETY: a zeroed sigaction with a valid handler and an empty
            // mask; `old` receives the handler being replaced.
            let status = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                let status = libc::sigaction(signal, &action, &mut old);
                if status == 0 {
                    previous.push((signal, old));
                }
                status
            };
            if status != 0 {
                bail!(
                    "cannot install the handler of signal {signal}: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(StopSignals { previous })
    }

    /// Whether SIGINT or SIGTERM arrived since [`StopSignals::install`].
    pub fn requested(&self) -> bool {
        STOP_REQUESTED.load(Ordering::SeqCst)
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restoring what sigaction gave us.
            unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
        }
    }
}
