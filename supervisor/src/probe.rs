//! Readiness probes: exec, http and tcp checks. The loop decides when an
//! attempt is due ([`Schedule`]); a small pool of helper threads
//! ([`ProbePool`]) runs the attempts, which block for at most the probe's
//! timeout, and reports each verdict through a channel and a wake-up pipe
//! in the loop's epoll set.
//!
//! The budget is `retries × period_ms`. Attempts start 25 ms apart and the gap
//! doubles up to `period_ms`, so that a fast service is seen ready quickly
//! while a slow one gets the full budget the spec promises.
//!
//! Helpers rather than non-blocking probes in the loop: an exec probe is a
//! child to wait for and an http probe a small state machine; at most
//! [`MAX_HELPERS`] threads exist, started when the first probe is due, so a
//! run without probes has none.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::reactor;
use crate::spec::Readiness;
use crate::Error;

/// At most this many probe attempts run at once.
pub(crate) const MAX_HELPERS: usize = 4;

/// When the next attempt of one instance's probe is due, and when to give up.
pub(crate) struct Schedule {
    pub(crate) readiness: Readiness,
    started: Instant,
    gap: Duration,
    attempts: u32,
    /// `None` while an attempt runs.
    pub(crate) next: Option<Instant>,
}

/// What the loop does after an attempt failed.
pub(crate) enum AfterFailure {
    Retry,
    /// The budget is spent; the text says what the attempts saw.
    Unhealthy(String),
}

impl Schedule {
    pub(crate) fn new(readiness: Readiness, now: Instant) -> Schedule {
        let period = Duration::from_millis(readiness.period_ms);
        Schedule {
            readiness,
            started: now,
            gap: Duration::from_millis(25).min(period),
            attempts: 0,
            next: Some(now),
        }
    }

    /// An attempt is handed to a helper.
    pub(crate) fn attempt_started(&mut self) {
        self.attempts += 1;
        self.next = None;
    }

    pub(crate) fn failed(&mut self, problem: String, now: Instant) -> AfterFailure {
        let period = Duration::from_millis(self.readiness.period_ms);
        let budget = period * self.readiness.retries;
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed + self.gap > budget {
            return AfterFailure::Unhealthy(format!(
                "not ready after {} probes in {} ms: {problem}",
                self.attempts,
                elapsed.as_millis()
            ));
        }
        self.next = Some(now + self.gap);
        self.gap = (self.gap * 2).min(period);
        AfterFailure::Retry
    }
}

/// One attempt's verdict, for the instance spawned as `spawn`.
pub(crate) struct Verdict {
    pub(crate) spawn: u64,
    pub(crate) result: Result<(), String>,
}

struct Job {
    spawn: u64,
    readiness: Readiness,
    dir: PathBuf,
}

/// The helper threads; dropping the pool waits for attempts in flight.
pub(crate) struct ProbePool {
    jobs: Option<Sender<Job>>,
    job_queue: Arc<Mutex<Receiver<Job>>>,
    verdicts: Receiver<Verdict>,
    verdict_sender: Sender<Verdict>,
    wake_read: OwnedFd,
    wake_write: Arc<OwnedFd>,
    helpers: Vec<JoinHandle<()>>,
    /// Attempts handed out and not yet answered.
    in_flight: usize,
}

impl ProbePool {
    pub(crate) fn new() -> Result<ProbePool, Error> {
        let (jobs, job_queue) = mpsc::channel();
        let (verdict_sender, verdicts) = mpsc::channel();
        let (wake_read, wake_write) = crate::keeper::pipe()?;
        reactor::set_nonblocking(wake_read.as_raw_fd());
        reactor::set_nonblocking(wake_write.as_raw_fd());
        Ok(ProbePool {
            jobs: Some(jobs),
            job_queue: Arc::new(Mutex::new(job_queue)),
            verdicts,
            verdict_sender,
            wake_read,
            wake_write: Arc::new(wake_write),
            helpers: Vec::new(),
            in_flight: 0,
        })
    }

    /// The descriptor that turns readable when verdicts wait.
    pub(crate) fn fd(&self) -> RawFd {
        self.wake_read.as_raw_fd()
    }

    pub(crate) fn submit(&mut self, spawn: u64, readiness: Readiness, dir: PathBuf) {
        self.in_flight += 1;
        if self.helpers.len() < MAX_HELPERS.min(self.in_flight) {
            let queue = self.job_queue.clone();
            let verdicts = self.verdict_sender.clone();
            let wake = self.wake_write.clone();
            let helper = std::thread::Builder::new()
                .name("n2d-probe".into())
                .stack_size(128 * 1024)
                .spawn(move || help(&queue, &verdicts, &wake));
            if let Ok(helper) = helper {
                self.helpers.push(helper);
            }
        }
        let job = Job {
            spawn,
            readiness,
            dir,
        };
        if let Some(jobs) = &self.jobs {
            if let Err(mpsc::SendError(job)) = jobs.send(job) {
                // No helper could be started: answer right away.
                self.in_flight -= 1;
                let _ = self.verdict_sender.send(Verdict {
                    spawn: job.spawn,
                    result: Err("cannot start a probe helper thread".into()),
                });
            }
        }
    }

    /// The verdicts that arrived since the last call.
    pub(crate) fn take(&mut self) -> Vec<Verdict> {
        let mut drained = Vec::new();
        while let reactor::ReadOutcome::Data =
            reactor::read_into(self.wake_read.as_raw_fd(), &mut drained, 256)
        {
            drained.clear();
        }
        let verdicts: Vec<Verdict> = self.verdicts.try_iter().collect();
        self.in_flight = self.in_flight.saturating_sub(verdicts.len());
        verdicts
    }
}

impl Drop for ProbePool {
    fn drop(&mut self) {
        // Helpers end when the job channel closes, after their current attempt.
        self.jobs = None;
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

fn help(queue: &Mutex<Receiver<Job>>, verdicts: &Sender<Verdict>, wake: &OwnedFd) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => match queue.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let result = check(&job.readiness, &job.dir);
        if verdicts
            .send(Verdict {
                spawn: job.spawn,
                result,
            })
            .is_err()
        {
            return;
        }
        let byte = 1u8;
        // SAFETY: one byte from a valid buffer; a full pipe already wakes the loop.
        unsafe { libc::write(wake.as_raw_fd(), (&byte as *const u8).cast(), 1) };
    }
}

/// One attempt of every probe kind that is set.
pub(crate) fn check(readiness: &Readiness, dir: &Path) -> Result<(), String> {
    let timeout = Duration::from_millis(readiness.timeout_ms.max(1));
    if let Some(argv) = &readiness.exec {
        check_exec(argv, dir, timeout)?;
    }
    if let Some(http) = &readiness.http {
        check_http(http.port, &http.path, timeout)?;
    }
    if let Some(tcp) = &readiness.tcp {
        connect(tcp.port, timeout)?;
    }
    Ok(())
}

fn check_exec(argv: &[String], dir: &Path, timeout: Duration) -> Result<(), String> {
    // std leaves it open whether a relative program is resolved before or after
    // changing directory; make it explicit.
    let program: PathBuf = if argv[0].contains('/') {
        dir.join(&argv[0])
    } else {
        PathBuf::from(&argv[0])
    };
    let mut child = Command::new(&program)
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", argv[0]))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("{} exited with {status}", argv[0])),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} timed out", argv[0]));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => return Err(format!("cannot wait for {}: {error}", argv[0])),
        }
    }
}

fn connect(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let mut last = String::new();
    for address in [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ] {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = format!("cannot connect to localhost:{port}: {error}"),
        }
    }
    Err(last)
}

/// A minimal HTTP/1.0 GET: only the status line matters.
fn check_http(port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    let mut stream = connect(port, timeout)?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("cannot send to localhost:{port}: {error}"))?;
    let mut head = Vec::with_capacity(64);
    let mut byte = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        match stream.read(&mut byte) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&byte[..n]),
            Err(error) => return Err(format!("no answer from localhost:{port}{path}: {error}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("localhost:{port}{path} did not answer HTTP"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("localhost:{port}{path} answered {status}"))
    }
}
