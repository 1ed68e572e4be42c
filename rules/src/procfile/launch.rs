//! The launch spec `launch.json`: the contract between the procfile target
//! and the built-in supervisor (`n2d up`), which reads it with unknown fields
//! rejected.
//!
//! Each service's entry is built at render time ([`launch_entry`]) and carried
//! in the render fragment with its `spec_digest`, because `assemble` sees only
//! fragments; [`dependency_order`] then lists the entries dependencies first.
use std::collections::{BTreeMap, BTreeSet};

use n2d_modules::service::{parse_duration, Condition, RestartPolicy, Service};
use serde::{Deserialize, Serialize};

use crate::{Artifact, RuleError};

/// The only format version written.
pub const LAUNCH_SPEC_VERSION: u32 = 1;

/// The whole `launch.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchSpec {
    pub version: u32,
    /// Dependencies first; ties by name.
    pub services: Vec<LaunchService>,
}

/// One service of `launch.json`. Paths are relative to the target folder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchService {
    pub name: String,
    pub command: Vec<String>,
    pub replicas: u32,
    pub depends_on: BTreeMap<String, Condition>,
    pub readiness: Option<LaunchReadiness>,
    pub restart: RestartPolicy,
    pub max_restarts: Option<u32>,
    pub backoff_ms: u64,
    /// Without `SIG`: `TERM`, `INT`, `QUIT`, `HUP`, `KILL`, `USR1`, `USR2`.
    pub stop_signal: String,
    pub stop_timeout_ms: u64,
    /// blake3 (hex) of this entry without the digest and of the service's own
    /// rendered files: changes exactly when the service must restart.
    pub spec_digest: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchReadiness {
    pub exec: Option<Vec<String>>,
    pub http: Option<LaunchHttpProbe>,
    pub tcp: Option<LaunchTcpProbe>,
    pub period_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
}

/// `GET http://localhost:<port><path>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchHttpProbe {
    pub port: u16,
    pub path: String,
}

/// A TCP connection to `localhost:<port>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchTcpProbe {
    pub port: u16,
}

/// The signals a service may be stopped with, named without `SIG`.
pub const STOP_SIGNALS: [&str; 7] = ["TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2"];

/// The launch entry of `service`, whose program is `command`; `files` are
/// the service's own rendered files, which go into the digest.
pub fn launch_entry(
    target: &'static str,
    service: &Service,
    command: Vec<String>,
    files: &[Artifact],
) -> Result<LaunchService, RuleError> {
    let readiness = if service.readiness.is_set() {
        let r = &service.readiness;
        Some(LaunchReadiness {
            exec: r.exec.clone(),
            http: match &r.http {
                Some(http) => Some(LaunchHttpProbe {
                    port: probe_port(target, service, &http.port)?,
                    path: http.path.clone(),
                }),
                None => None,
            },
            tcp: match &r.tcp {
                Some(tcp) => Some(LaunchTcpProbe {
                    port: probe_port(target, service, &tcp.port)?,
                }),
                None => None,
            },
            period_ms: millis(target, service, "readiness.period", &r.period)?,
            timeout_ms: millis(target, service, "readiness.timeout", &r.timeout)?,
            retries: r.retries,
        })
    } else {
        None
    };
    let mut entry = LaunchService {
        name: service.name.clone(),
        command,
        replicas: service.replicas,
        depends_on: service.depends_on.clone(),
        readiness,
        restart: service.restart,
        max_restarts: service.max_restarts,
        backoff_ms: millis(target, service, "backoff", &service.backoff)?,
        stop_signal: stop_signal(target, service)?,
        stop_timeout_ms: millis(target, service, "stop.timeout", &service.stop.timeout)?,
        spec_digest: String::new(),
    };
    entry.spec_digest = spec_digest(&entry, files);
    Ok(entry)
}

/// The port a probe names: a port name of `service.ports`, or a number.
pub fn probe_port(target: &'static str, service: &Service, port: &str) -> Result<u16, RuleError> {
    if let Some(number) = service.ports.get(port) {
        return Ok(*number);
    }
    port.parse().map_err(|_| RuleError::Unsupported {
        target,
        service: service.name.clone(),
        message: format!("the probe port `{port}` is neither a name of `ports` nor a port number"),
    })
}

/// A duration option in milliseconds.
pub fn millis(
    target: &'static str,
    service: &Service,
    option: &str,
    text: &str,
) -> Result<u64, RuleError> {
    parse_duration(text)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .ok_or_else(|| RuleError::Unsupported {
            target,
            service: service.name.clone(),
            message: format!("`{option}` = `{text}` is not a duration such as `10s`"),
        })
}

/// `stop.signal` without a `SIG` prefix, checked against [`STOP_SIGNALS`].
pub fn stop_signal(target: &'static str, service: &Service) -> Result<String, RuleError> {
    let signal = service
        .stop
        .signal
        .trim_start_matches("SIG")
        .to_ascii_uppercase();
    if STOP_SIGNALS.contains(&signal.as_str()) {
        Ok(signal)
    } else {
        Err(RuleError::Unsupported {
            target,
            service: service.name.clone(),
            message: format!(
                "`stop.signal` = `{}` is not one of {}",
                service.stop.signal,
                STOP_SIGNALS.join(", ")
            ),
        })
    }
}

/// The services' names, dependencies first, ties by name. `depends_on` gives
/// each service's dependencies; a dependency outside the deployment or a
/// cycle is an error.
pub fn dependency_order(
    target: &'static str,
    depends_on: &BTreeMap<String, BTreeSet<String>>,
) -> Result<Vec<String>, RuleError> {
    for (service, dependencies) in depends_on {
        if let Some(missing) = dependencies.iter().find(|d| !depends_on.contains_key(*d)) {
            return Err(RuleError::Unsupported {
                target,
                service: service.clone(),
                message: format!("depends on `{missing}`, which is not in the deployment"),
            });
        }
    }
    // Kahn's algorithm, taking the smallest name among the services whose
    // dependencies are all placed (ties by name, as before): linear in the
    // edges, not quadratic in the services.
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut dependants: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (service, dependencies) in depends_on {
        waiting.insert(service, dependencies.len());
        for dependency in dependencies {
            dependants.entry(dependency).or_default().push(service);
        }
    }
    let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<&str>> = waiting
        .iter()
        .filter(|(_, &count)| count == 0)
        .map(|(&name, _)| std::cmp::Reverse(name))
        .collect();
    let mut order: Vec<String> = Vec::with_capacity(depends_on.len());
    while let Some(std::cmp::Reverse(name)) = ready.pop() {
        order.push(name.to_string());
        for &dependant in dependants.get(name).into_iter().flatten() {
            let count = waiting.get_mut(dependant).expect("every service waits");
            *count -= 1;
            if *count == 0 {
                ready.push(std::cmp::Reverse(dependant));
            }
        }
    }
    if order.len() < depends_on.len() {
        let cycle: Vec<&str> = waiting
            .iter()
            .filter(|(_, &count)| count > 0)
            .map(|(&name, _)| name)
            .collect();
        return Err(RuleError::Unsupported {
            target,
            service: cycle[0].to_string(),
            message: format!("dependency cycle among {}", cycle.join(", ")),
        });
    }
    Ok(order)
}

fn spec_digest(entry: &LaunchService, files: &[Artifact]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"n2d launch entry v1\0");
    let json = serde_json::to_vec(entry).expect("a launch entry serializes");
    hasher.update(&(json.len() as u64).to_le_bytes());
    hasher.update(&json);
    let mut files: Vec<&Artifact> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for file in files {
        // Length prefixes keep (path, bytes) pairs from running into each other.
        hasher.update(&(file.path.len() as u64).to_le_bytes());
        hasher.update(file.path.as_bytes());
        hasher.update(&file.mode.to_le_bytes());
        hasher.update(&(file.bytes.len() as u64).to_le_bytes());
        hasher.update(&file.bytes);
    }
    hasher.finalize().to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition: repeatedly the smallest name whose dependencies are
    /// all placed.
    fn reference(depends_on: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        let mut order: Vec<String> = Vec::new();
        while order.len() < depends_on.len() {
            let (name, _) = depends_on.iter().find(|(name, deps)| {
                !order.contains(name) && deps.iter().all(|d| order.contains(d))
            })?;
            order.push(name.clone());
        }
        Some(order)
    }

    proptest! {
        #[test]
        fn dependency_order_is_the_smallest_ready_name_first(
            edges in proptest::collection::vec((0u8..12, 0u8..12), 0..30),
            count in 1u8..12,
        ) {
            let mut graph: BTreeMap<String, BTreeSet<String>> = (0..count)
                .map(|i| (format!("s{i:02}"), BTreeSet::new()))
                .collect();
            for (from, to) in edges {
                if from < count && to < count {
                    graph
                        .get_mut(&format!("s{from:02}"))
                        .unwrap()
                        .insert(format!("s{to:02}"));
                }
            }
            let expected = reference(&graph);
            let actual = dependency_order("procfile", &graph).ok();
            prop_assert_eq!(actual, expected);
        }
    }
}
