//! The supervisor's typed errors: what can go wrong loading a launch spec,
//! starting a run, or talking to a running supervisor over its socket.

use std::io;
use std::path::PathBuf;

/// Everything the supervisor's library functions can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read launch spec {path}")]
    ReadSpec { path: PathBuf, source: io::Error },
    #[error("cannot parse launch spec {path}")]
    ParseSpec {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("invalid launch spec {path}: {problem}")]
    InvalidSpec { path: PathBuf, problem: String },
    #[error("a supervisor is already running with control socket {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("no supervisor is running with control socket {path}")]
    NotRunning { path: PathBuf, source: io::Error },
    /// A filesystem or system call failed; `what` says what we were doing.
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot {what}")]
    Os {
        what: &'static str,
        source: io::Error,
    },
    #[error("malformed control message")]
    Protocol { source: serde_json::Error },
    /// The running supervisor refused a control request (e.g. unknown service).
    #[error("supervisor refused the request: {message}")]
    Refused { message: String },
    /// The supervisor stopped while a request was in flight.
    #[error("the supervisor stopped before answering")]
    Gone,
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn os(what: &'static str) -> Error {
        Error::Os {
            what,
            source: io::Error::last_os_error(),
        }
    }
}
