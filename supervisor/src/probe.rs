//! Readiness probes: exec, http and tcp checks run on a thread per starting
//! instance until one attempt passes or the probe's time budget is spent.
//!
//! The budget is `retries × period_ms`. Attempts start 25 ms apart and the gap
//! doubles up to `period_ms`, so that a fast service is seen ready quickly
//! while a slow one gets the full budget the spec promises.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::spec::Readiness;

/// How a probe ended.
pub(crate) enum ProbeVerdict {
    Ready,
    /// The budget was spent; the text says what the last attempt saw.
    Unhealthy(String),
    Cancelled,
}

/// Probes until ready, unhealthy or cancelled.
pub(crate) fn probe_until_ready(
    readiness: &Readiness,
    dir: &Path,
    cancel: &AtomicBool,
) -> ProbeVerdict {
    let period = Duration::from_millis(readiness.period_ms);
    let budget = period * readiness.retries;
    let started = Instant::now();
    let mut gap = Duration::from_millis(25).min(period);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let last = match check(readiness, dir) {
            Ok(()) => return ProbeVerdict::Ready,
            Err(problem) => problem,
        };
        if started.elapsed() + gap > budget {
            return ProbeVerdict::Unhealthy(format!(
                "not ready after {attempts} probes in {} ms: {last}",
                started.elapsed().as_millis()
            ));
        }
        if sleep_unless_cancelled(gap, cancel) {
            return ProbeVerdict::Cancelled;
        }
        gap = (gap * 2).min(period);
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

fn sleep_unless_cancelled(duration: Duration, cancel: &AtomicBool) -> bool {
    let until = Instant::now() + duration;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
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

/// Runs [`probe_until_ready`] on its own thread; the caller owns and joins it.
pub(crate) fn spawn_probe(
    readiness: Readiness,
    dir: PathBuf,
    cancel: Arc<AtomicBool>,
    report: impl FnOnce(ProbeVerdict) + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("n2d-probe".into())
        .stack_size(128 * 1024)
        .spawn(move || report(probe_until_ready(&readiness, &dir, &cancel)))
}
