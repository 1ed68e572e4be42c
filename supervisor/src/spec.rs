//! The launch spec: the Rust types of the procfile target's `launch.json`,
//! the contract between the procfile renderer and this supervisor.
//!
//! [`LaunchSpec::load`] reads and validates it; every field is required and
//! unknown fields are errors, so that a producer and this consumer that drift
//! apart fail loudly instead of silently running something else.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The file name of the launch spec inside a procfile target folder.
pub const LAUNCH_SPEC_FILE: &str = "launch.json";

/// The only format version this supervisor understands.
pub const LAUNCH_SPEC_VERSION: u32 = 1;

/// A whole launch spec: every service of one deployment, in dependency order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchSpec {
    pub version: u32,
    /// Invariant (after validation): dependencies come before their dependants.
    pub services: Vec<ServiceSpec>,
}

/// One service: how to run it, when it may start, how to keep it running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    /// Program and arguments; a program containing `/` is relative to the target folder.
    pub command: Vec<String>,
    pub replicas: u32,
    pub depends_on: BTreeMap<String, Condition>,
    pub readiness: Option<Readiness>,
    pub restart: RestartPolicy,
    /// Consecutive restarts after which the supervisor gives up; `None` never gives up.
    pub max_restarts: Option<u32>,
    pub backoff_ms: u64,
    pub stop_signal: StopSignal,
    pub stop_timeout_ms: u64,
    /// Changes exactly when the service must be restarted.
    pub spec_digest: String,
}

/// What a dependant waits for before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Condition {
    /// Every instance of the dependency has been started.
    Started,
    /// Every instance passed its readiness probe (or was started, without a probe).
    Healthy,
    /// Every instance exited with status 0.
    Completed,
}

/// A readiness probe; every probe kind that is set must pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    /// Run in the target folder; ready when it exits 0.
    pub exec: Option<Vec<String>>,
    /// `GET http://localhost:port/path` answers 2xx or 3xx.
    pub http: Option<HttpProbe>,
    /// A TCP connection to localhost:port succeeds.
    pub tcp: Option<TcpProbe>,
    pub period_ms: u64,
    pub timeout_ms: u64,
    /// Failed attempts after which the instance is declared unhealthy.
    pub retries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    pub port: u16,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    #[serde(rename = "no")]
    No,
    #[serde(rename = "on-failure")]
    OnFailure,
    #[serde(rename = "always")]
    Always,
}

/// The signal that asks a service to stop, named without `SIG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StopSignal {
    #[serde(rename = "TERM")]
    Term,
    #[serde(rename = "INT")]
    Int,
    #[serde(rename = "QUIT")]
    Quit,
    #[serde(rename = "HUP")]
    Hup,
    #[serde(rename = "KILL")]
    Kill,
    #[serde(rename = "USR1")]
    Usr1,
    #[serde(rename = "USR2")]
    Usr2,
}

impl LaunchSpec {
    /// Reads and validates `launch.json` in the procfile target folder `dir`.
    pub fn load(dir: &Path) -> Result<LaunchSpec, Error> {
        let path = dir.join(LAUNCH_SPEC_FILE);
        let text = std::fs::read(&path).map_err(|source| Error::ReadSpec {
            path: path.clone(),
            source,
        })?;
        let spec: LaunchSpec =
            serde_json::from_slice(&text).map_err(|source| Error::ParseSpec {
                path: path.clone(),
                source,
            })?;
        spec.validate()
            .map_err(|problem| Error::InvalidSpec { path, problem })?;
        Ok(spec)
    }

    /// Checks the invariants that serde cannot: version, unique names,
    /// dependencies that exist and come first, sane numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.version != LAUNCH_SPEC_VERSION {
            return Err(format!(
                "version {} is not supported (expected {LAUNCH_SPEC_VERSION})",
                self.version
            ));
        }
        let mut seen = HashSet::new();
        for service in &self.services {
            let name = &service.name;
            if name.is_empty()
                || name == "n2d"
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                || name.starts_with('.')
            {
                return Err(format!(
                    "service name {name:?} must be letters, digits, '-', '_', '.' (and not \"n2d\")"
                ));
            }
            if service.command.is_empty() || service.command[0].is_empty() {
                return Err(format!("service {name} has an empty command"));
            }
            if service.replicas == 0 {
                return Err(format!("service {name} needs at least 1 replica"));
            }
            for dependency in service.depends_on.keys() {
                if !seen.contains(dependency.as_str()) {
                    return Err(format!(
                        "service {name} depends on {dependency}, which is not listed before it"
                    ));
                }
            }
            if let Some(readiness) = &service.readiness {
                if readiness.period_ms == 0 || readiness.retries == 0 {
                    return Err(format!(
                        "service {name}: readiness period_ms and retries must be positive"
                    ));
                }
                if readiness.exec.as_ref().is_some_and(|argv| argv.is_empty()) {
                    return Err(format!("service {name}: readiness exec is empty"));
                }
                if let Some(http) = &readiness.http {
                    if !http.path.starts_with('/') || http.path.contains(['\r', '\n', ' ']) {
                        return Err(format!(
                            "service {name}: readiness http path {:?} must start with '/' and have no spaces",
                            http.path
                        ));
                    }
                }
            }
            if service.spec_digest.len() != 64
                || !service.spec_digest.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(format!("service {name}: spec_digest must be 64 hex digits"));
            }
            if !seen.insert(name.as_str()) {
                return Err(format!("service {name} is listed twice"));
            }
        }
        Ok(())
    }
}

impl ServiceSpec {
    /// Instance names: `name` for one replica, `name.1` … `name.N` otherwise.
    pub fn instance_names(&self) -> Vec<String> {
        if self.replicas == 1 {
            vec![self.name.clone()]
        } else {
            (1..=self.replicas)
                .map(|i| format!("{}.{i}", self.name))
                .collect()
        }
    }
}

impl StopSignal {
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Term => libc::SIGTERM,
            StopSignal::Int => libc::SIGINT,
            StopSignal::Quit => libc::SIGQUIT,
            StopSignal::Hup => libc::SIGHUP,
            StopSignal::Kill => libc::SIGKILL,
            StopSignal::Usr1 => libc::SIGUSR1,
            StopSignal::Usr2 => libc::SIGUSR2,
        }
    }
}
