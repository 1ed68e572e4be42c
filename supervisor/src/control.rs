//! The control socket `supervisor.sock` in the target folder: a running
//! supervisor answers one request per connection, so that another `n2d up`
//! can see what runs and the watch loop can restart or reload services.
//!
//! The protocol is one request line (`status`, `restart <service>`, `reload`,
//! `reload dependants`, `stop`) and one JSON reply line ([`Reply`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use crate::supervisor::{Change, Dependants, Event, InstanceStatus, Request};
use crate::{Error, LaunchSpec};

/// The control socket's file name inside the target folder.
pub const SOCKET_FILE: &str = "supervisor.sock";

/// A reply on the control socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reply {
    Status(Vec<InstanceStatus>),
    Changes(Vec<Change>),
    Stopping,
    Error(String),
}

/// The listening side, owned by the supervisor's loop.
pub(crate) struct ControlServer {
    path: PathBuf,
    closing: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Binds the socket, replacing a stale one left by a killed run, and
    /// refusing when another supervisor still answers on it.
    pub(crate) fn bind(dir: &Path, events: Sender<Event>) -> Result<ControlServer, Error> {
        let path = dir.join(SOCKET_FILE);
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(Error::AlreadyRunning { path });
            }
            std::fs::remove_file(&path)
                .map_err(|source| Error::io("remove stale control socket", &path, source))?;
        }
        let listener = UnixListener::bind(&path)
            .map_err(|source| Error::io("bind control socket", &path, source))?;
        let closing = Arc::new(AtomicBool::new(false));
        let dir = dir.to_path_buf();
        let thread = {
            let closing = closing.clone();
            std::thread::Builder::new()
                .name("n2d-control".into())
                .spawn(move || serve(listener, &dir, &events, &closing))
                .map_err(|source| Error::Os {
                    what: "start the control thread",
                    source,
                })?
        };
        Ok(ControlServer {
            path,
            closing,
            thread: Some(thread),
        })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the thread sees the flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn serve(listener: UnixListener, dir: &Path, events: &Sender<Event>, closing: &AtomicBool) {
    // Scoped threads: a slow reload does not hold up a status request, and
    // every connection thread is joined before the server returns.
    std::thread::scope(|scope| {
        for stream in listener.incoming() {
            if closing.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else { continue };
            scope.spawn(move || answer(stream, dir, events));
        }
    });
}

fn answer(stream: UnixStream, dir: &Path, events: &Sender<Event>) {
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let reply = handle(line.trim(), dir, events);
    let mut text = serde_json::to_string(&reply)
        .unwrap_or_else(|_| "{\"error\":\"cannot encode reply\"}".into());
    text.push('\n');
    let _ = (&stream).write_all(text.as_bytes());
}

fn handle(request: &str, dir: &Path, events: &Sender<Event>) -> Reply {
    let (verb, argument) = request.split_once(' ').unwrap_or((request, ""));
    let (reply_to, replies) = mpsc::channel();
    let request = match (verb, argument) {
        ("status", "") => Request::Status(reply_to),
        ("restart", service) if !service.is_empty() => {
            Request::Restart(service.to_owned(), reply_to)
        }
        ("reload", mode @ ("" | "dependants")) => match LaunchSpec::load(dir) {
            Ok(spec) => {
                let dependants = if mode.is_empty() {
                    Dependants::Keep
                } else {
                    Dependants::Restart
                };
                Request::Apply(spec, dependants, reply_to)
            }
            Err(error) => return Reply::Error(error_chain(&error)),
        },
        ("stop", "") => Request::Stop(reply_to),
        _ => return Reply::Error(format!("unknown request {request:?}")),
    };
    if events.send(Event::Request(request)).is_err() {
        return Reply::Error("the supervisor is stopping".into());
    }
    replies
        .recv()
        .unwrap_or_else(|_| Reply::Error("the supervisor is stopping".into()))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Functions for talking to a supervisor running on a target folder.
pub mod client {
    use super::*;

    /// The control socket of the supervisor running on `dir`.
    pub fn socket_path(dir: &Path) -> PathBuf {
        dir.join(SOCKET_FILE)
    }

    /// What runs: one entry per instance.
    pub fn status(dir: &Path) -> Result<Vec<InstanceStatus>, Error> {
        match request(dir, "status")? {
            Reply::Status(instances) => Ok(instances),
            other => Err(unexpected(other)),
        }
    }

    /// Restarts every instance of `service`; returns once they run again (or failed).
    pub fn restart(dir: &Path, service: &str) -> Result<Vec<Change>, Error> {
        changes(request(dir, &format!("restart {service}"))?)
    }

    /// Makes the supervisor re-read `launch.json` and apply the difference.
    pub fn reload(dir: &Path, dependants: Dependants) -> Result<Vec<Change>, Error> {
        let line = match dependants {
            Dependants::Keep => "reload",
            Dependants::Restart => "reload dependants",
        };
        changes(request(dir, line)?)
    }

    /// Asks the supervisor to stop every service; returns at once.
    pub fn stop(dir: &Path) -> Result<(), Error> {
        match request(dir, "stop")? {
            Reply::Stopping => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    fn changes(reply: Reply) -> Result<Vec<Change>, Error> {
        match reply {
            Reply::Changes(changes) => Ok(changes),
            other => Err(unexpected(other)),
        }
    }

    fn unexpected(reply: Reply) -> Error {
        match reply {
            Reply::Error(message) => Error::Refused { message },
            other => Error::Refused {
                message: format!("unexpected reply {other:?}"),
            },
        }
    }

    fn request(dir: &Path, line: &str) -> Result<Reply, Error> {
        let path = socket_path(dir);
        let stream = UnixStream::connect(&path).map_err(|source| Error::NotRunning {
            path: path.clone(),
            source,
        })?;
        (&stream)
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|source| Error::io("send a request on", &path, source))?;
        let mut answer = String::new();
        BufReader::new(&stream)
            .read_line(&mut answer)
            .map_err(|source| Error::io("read the reply on", &path, source))?;
        if answer.is_empty() {
            return Err(Error::Gone);
        }
        serde_json::from_str(&answer).map_err(|source| Error::Protocol { source })
    }
}
