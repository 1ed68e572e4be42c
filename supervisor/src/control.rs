//! The control socket `supervisor.sock` in the target folder: a running
//! supervisor answers one request per connection, so that another `n2d up`
//! can see what runs and the watch loop can restart or reload services.
//!
//! The protocol is one request line (`status`, `restart <service>`, `reload`,
//! `reload dependants`, `stop`) and one JSON reply line ([`Reply`]). The
//! server side is non-blocking and driven by the supervisor's loop: a
//! reload's reply is written when the new processes run, while other
//! clients are served meanwhile.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::reactor;
use crate::supervisor::{Change, Dependants, InstanceStatus};
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

/// The listening side, owned by the supervisor's loop; non-blocking.
pub(crate) struct ControlServer {
    path: PathBuf,
    listener: UnixListener,
    connections: HashMap<u64, Connection>,
    next_id: u64,
}

/// A request as the loop handles it.
pub(crate) enum Request {
    Status,
    Restart(String),
    Apply(LaunchSpec, Dependants),
    Stop,
}

/// One client: reading its request line, waiting for the loop's answer,
/// or writing the reply.
struct Connection {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    written: usize,
}

/// What reading from a client gave.
pub(crate) enum Incoming {
    /// The request line is not complete yet.
    Nothing,
    /// A whole request; the client's descriptor is not read any further.
    Request(Request, RawFd),
    /// A malformed request, to answer with this reply.
    Refused(Reply, RawFd),
    /// The client went away (closing its descriptor left the epoll set).
    Gone,
}

/// A request line longer than this is refused.
const MAX_REQUEST: usize = 4096;

impl ControlServer {
    /// Binds the socket, replacing a stale one left by a killed run, and
    /// refusing when another supervisor still answers on it.
    pub(crate) fn bind(dir: &Path) -> Result<ControlServer, Error> {
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
        listener
            .set_nonblocking(true)
            .map_err(|source| Error::io("configure control socket", &path, source))?;
        Ok(ControlServer {
            path,
            listener,
            connections: HashMap::new(),
            next_id: 0,
        })
    }

    pub(crate) fn listener_fd(&self) -> RawFd {
        self.listener.as_raw_fd()
    }

    /// Accepts waiting clients; returns their ids and descriptors, to be
    /// registered for reading.
    pub(crate) fn accept(&mut self) -> Vec<(u64, RawFd)> {
        let mut accepted = Vec::new();
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.next_id += 1;
            accepted.push((self.next_id, stream.as_raw_fd()));
            self.connections.insert(
                self.next_id,
                Connection {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                    written: 0,
                },
            );
        }
        accepted
    }

    /// Reads from a client, until its request line is complete.
    pub(crate) fn read(&mut self, id: u64, dir: &Path) -> Incoming {
        let Some(connection) = self.connections.get_mut(&id) else {
            return Incoming::Nothing;
        };
        let fd = connection.stream.as_raw_fd();
        loop {
            match reactor::read_into(fd, &mut connection.input, 512) {
                reactor::ReadOutcome::Data if connection.input.len() <= MAX_REQUEST => {}
                reactor::ReadOutcome::WouldBlock => break,
                _ if connection.input.contains(&b'\n') => break,
                _ => {
                    self.connections.remove(&id);
                    return Incoming::Gone;
                }
            }
        }
        let Some(end) = connection.input.iter().position(|&b| b == b'\n') else {
            return Incoming::Nothing;
        };
        let line = String::from_utf8_lossy(&connection.input[..end])
            .trim()
            .to_owned();
        connection.input = Vec::new();
        match parse(&line, dir) {
            Ok(request) => Incoming::Request(request, fd),
            Err(reply) => Incoming::Refused(reply, fd),
        }
    }

    /// Starts sending `reply` to a client; returns the descriptor to watch
    /// for writability when the whole reply did not fit at once.
    pub(crate) fn reply(&mut self, id: u64, reply: &Reply) -> Option<RawFd> {
        let connection = self.connections.get_mut(&id)?;
        let mut text = serde_json::to_vec(reply)
            .unwrap_or_else(|_| b"{\"error\":\"cannot encode reply\"}".to_vec());
        text.push(b'\n');
        connection.output = text;
        connection.written = 0;
        self.write(id)
    }

    /// Whether a reply is being written to this client.
    pub(crate) fn is_writing(&self, id: u64) -> bool {
        self.connections
            .get(&id)
            .is_some_and(|c| !c.output.is_empty())
    }

    /// Writes more of a pending reply; closes the connection when done.
    pub(crate) fn write(&mut self, id: u64) -> Option<RawFd> {
        let connection = self.connections.get_mut(&id)?;
        while connection.written < connection.output.len() {
            match (&connection.stream).write(&connection.output[connection.written..]) {
                Ok(n) => connection.written += n,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    return Some(connection.stream.as_raw_fd());
                }
                Err(_) => break,
            }
        }
        self.connections.remove(&id);
        None
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        // Clients still waiting see end of file: "the supervisor stopped".
        self.connections.clear();
        let _ = std::fs::remove_file(&self.path);
    }
}

fn parse(request: &str, dir: &Path) -> Result<Request, Reply> {
    let (verb, argument) = request.split_once(' ').unwrap_or((request, ""));
    match (verb, argument) {
        ("status", "") => Ok(Request::Status),
        ("restart", service) if !service.is_empty() => Ok(Request::Restart(service.to_owned())),
        ("reload", mode @ ("" | "dependants")) => match LaunchSpec::load(dir) {
            Ok(spec) => {
                let dependants = if mode.is_empty() {
                    Dependants::Keep
                } else {
                    Dependants::Restart
                };
                Ok(Request::Apply(spec, dependants))
            }
            Err(error) => Err(Reply::Error(error_chain(&error))),
        },
        ("stop", "") => Ok(Request::Stop),
        _ => Err(Reply::Error(format!("unknown request {request:?}"))),
    }
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
