//! The loop's one blocking point: an epoll set over every descriptor the
//! supervisor waits on, each registered with a [`Token`] that says what it
//! is (a keeper's report pipe, a log pipe, the control socket, …).
//!
//! epoll rather than poll(2): with a thousand instances there are two
//! thousand pipes, and a log flood wakes the loop once per chunk; epoll
//! costs per ready descriptor, poll per registered one.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::Error;

/// What a descriptor is, and which one of its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token {
    /// The signal pipe: SIGINT, SIGTERM, SIGHUP.
    Signals,
    /// The probe helpers' wake-up pipe.
    Probes,
    /// The control socket's listener.
    Listener,
    /// One control connection.
    Connection(u64),
    /// A keeper's report pipe, by spawn number.
    Report(u64),
    /// An instance's log pipe, by spawn number.
    Log(u64),
}

pub(crate) struct Reactor {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

/// Interest in reading, in writing, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    Read,
    Write,
}

const ID_BITS: u32 = 56;
const ID_MASK: u64 = (1 << ID_BITS) - 1;

impl Token {
    fn encode(self) -> u64 {
        let (kind, id) = match self {
            Token::Signals => (1, 0),
            Token::Probes => (2, 0),
            Token::Listener => (3, 0),
            Token::Connection(id) => (4, id),
            Token::Report(id) => (5, id),
            Token::Log(id) => (6, id),
        };
        (kind << ID_BITS) | (id & ID_MASK)
    }

    fn decode(word: u64) -> Option<Token> {
        let id = word & ID_MASK;
        Some(match word >> ID_BITS {
            1 => Token::Signals,
            2 => Token::Probes,
            3 => Token::Listener,
            4 => Token::Connection(id),
            5 => Token::Report(id),
            6 => Token::Log(id),
            _ => return None,
        })
    }
}

impl Reactor {
    pub(crate) fn new() -> Result<Reactor, Error> {
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(Error::os("create an epoll set"));
        }
        Ok(Reactor {
            // SAFETY: a fresh descriptor that nobody else owns.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: Vec::with_capacity(64),
        })
    }

    pub(crate) fn add(&self, fd: RawFd, token: Token, interest: Interest) -> Result<(), Error> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, interest)
    }

    /// Forgets `fd`; closing it would too, but a descriptor shared with a
    /// child (none are: all are close-on-exec) would keep it registered.
    pub(crate) fn remove(&self, fd: RawFd) {
        // SAFETY: the event argument may be null for EPOLL_CTL_DEL.
        unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                fd,
                std::ptr::null_mut(),
            )
        };
    }

    fn control(&self, op: i32, fd: RawFd, token: Token, interest: Interest) -> Result<(), Error> {
        let events = match interest {
            Interest::Read => libc::EPOLLIN | libc::EPOLLRDHUP,
            Interest::Write => libc::EPOLLOUT,
        };
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token.encode(),
        };
        // SAFETY: a valid epoll descriptor and event.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } != 0 {
            return Err(Error::os("register a descriptor with epoll"));
        }
        Ok(())
    }

    /// Waits until a descriptor is ready or `timeout` passes (`None`: no
    /// limit); an interrupted wait returns nothing. Level-triggered: a
    /// handler reads until it would block or takes a share and is called
    /// again, and hang-ups show as readable (a read then says end of file).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<Token>, Error> {
        let millis = match timeout {
            None => -1,
            // Round up so that a deadline 0.3 ms away does not spin.
            Some(timeout) => timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
        };
        self.events.clear();
        // SAFETY: the buffer has room for `capacity` events.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.capacity() as i32,
                millis,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(Error::os("wait for events"));
        }
        // SAFETY: epoll_wait initialized the first `n` events.
        unsafe { self.events.set_len(n as usize) };
        Ok(self
            .events
            .iter()
            .filter_map(|event| {
                let word = event.u64;
                Token::decode(word)
            })
            .collect())
    }
}

/// Makes `fd` non-blocking (for descriptors only this process uses).
pub(crate) fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// One `read(2)` into the spare capacity of `buffer`, retried on EINTR.
pub(crate) enum ReadOutcome {
    Data,
    WouldBlock,
    End,
}

pub(crate) fn read_into(fd: RawFd, buffer: &mut Vec<u8>, at_most: usize) -> ReadOutcome {
    buffer.reserve(at_most);
    let start = buffer.len();
    loop {
        // SAFETY: reading into the vector's spare capacity, then setting the
        // length to what the kernel wrote.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().add(start).cast(), at_most) };
        if n > 0 {
            unsafe { buffer.set_len(start + n as usize) };
            return ReadOutcome::Data;
        }
        if n == 0 {
            return ReadOutcome::End;
        }
        match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
            _ => return ReadOutcome::End,
        }
    }
}
