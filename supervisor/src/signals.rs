//! Turning SIGINT, SIGTERM and SIGHUP aimed at the supervisor into events of
//! its loop, with a process-wide handler (so it works whichever thread the
//! kernel picks) that writes the signal number to a pipe, and a thread that
//! reads the pipe. Dropping the forwarder restores the previous handlers.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::thread::JoinHandle;

use crate::Error;

const FORWARDED: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

// The handler can only reach global state; -1 means "not installed".
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

pub(crate) struct SignalForwarder {
    previous: Vec<(i32, libc::sigaction)>,
    write_end: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write is async-signal-safe; the buffer is on our stack.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}

impl SignalForwarder {
    /// Installs the handlers; `forward` gets each signal number on the thread.
    pub(crate) fn install(
        forward: impl Fn(i32) + Send + 'static,
    ) -> Result<SignalForwarder, Error> {
        let mut fds = [0; 2];
        // SAFETY: room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::os("create the signal pipe"));
        }
        // SAFETY: fresh descriptors from pipe2.
        let (read_end, write_end) = unsafe {
            use std::os::fd::FromRawFd;
            (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        // A full pipe must not block the handler.
        unsafe { libc::fcntl(write_end.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
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
        let thread = std::thread::Builder::new()
            .name("n2d-signals".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut read_end = read_end;
                let mut byte = [0u8; 1];
                // Ends when the write end is closed, i.e. on drop.
                while let Ok(1) = read_end.read(&mut byte) {
                    forward(i32::from(byte[0]));
                }
            })
            .map_err(|source| Error::Os {
                what: "start the signal thread",
                source,
            })?;
        Ok(SignalForwarder {
            previous,
            write_end: Some(write_end),
            thread: Some(thread),
        })
    }
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        for (signal, old) in &self.previous {
            // SAFETY: restoring what sigaction gave us.
            unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
        }
        SIGNAL_PIPE.store(-1, Ordering::Relaxed);
        self.write_end = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
