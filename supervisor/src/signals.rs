//! SIGINT, SIGTERM and SIGHUP aimed at the supervisor as readable bytes: a
//! process-wide handler (so it works whichever thread the kernel picks)
//! writes the signal number to a non-blocking pipe whose read end sits in
//! the loop's epoll set. Dropping the guard restores the previous handlers.
//!
//! A self-pipe rather than signalfd: signalfd needs the signals blocked in
//! every thread, which a library cannot promise for its caller's threads.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::reactor::{self, ReadOutcome};
use crate::Error;

const FORWARDED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

// The handler can only reach global state; -1 means "not installed".
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

pub(crate) struct SignalPipe {
    previous: Vec<(i32, libc::sigaction)>,
    read_end: OwnedFd,
    // Closed after the handlers are restored, so the handler never writes
    // to a closed (or reused) descriptor.
    write_end: Option<OwnedFd>,
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write is async-signal-safe; the buffer is on our stack.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

impl SignalPipe {
    pub(crate) fn install() -> Result<SignalPipe, Error> {
        let (read_end, write_end) = crate::keeper::pipe()?;
        reactor::set_nonblocking(read_end.as_raw_fd());
        // A full pipe must not block the handler.
        reactor::set_nonblocking(write_end.as_raw_fd());
        SIGNAL_PIPE.store(write_end.as_raw_fd(), Ordering::Relaxed);
        let mut previous = Vec::new();
        for signal in FORWARDED {
            // SAFETY: a zeroed sigaction with a valid handler and empty mask.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(signal, &action, &mut old);
                previous.push((signal, old));
            }
        }
        Ok(SignalPipe {
            previous,
            read_end,
            write_end: Some(write_end),
        })
    }

    pub(crate) fn fd(&self) -> RawFd {
        self.read_end.as_raw_fd()
    }

    /// The signals received since the last call, in order.
    pub(crate) fn take(&self) -> Vec<i32> {
        let mut bytes = Vec::new();
        while let ReadOutcome::Data = reactor::read_into(self.fd(), &mut bytes, 64) {}
        bytes.into_iter().map(i32::from).collect()
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restoring what sigaction gave us.
            unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
        }
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
        self.write_end = None;
    }
}
