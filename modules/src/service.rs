//! The typed view of one resolved service: what renderers (`n2d-rules`) and
//! the supervisor read.
//!
//! The resolver produces a canonical JSON value (sorted keys, every core
//! option present with its default); this module deserializes it. Field names
//! are the core option names of DESIGN.md §5, so the JSON is also the `json`
//! target's output format.
//!
//! Invariant: in a resolved service, every `${{ }}` interpolation has been
//! replaced, and `depends_on` keys are names of services of the same
//! deployment (labels are normalized by the resolver).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A resolved service, as renderers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The service's name inside its deployment (unique there).
    pub name: String,
    /// `//pkg:name` for a service defined in a package, or
    /// `//deploy:deployment/name` for a service that only exists in a deployment.
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Program and arguments (exec form).
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub ports: BTreeMap<String, u16>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Volume>,
    #[serde(default)]
    pub files: BTreeMap<String, ConfigFile>,
    /// Shell script run before the program (the `lines` type: newline-joined).
    #[serde(default)]
    pub pre_start: String,
    /// Dependency name (in this deployment) → condition.
    #[serde(default)]
    pub depends_on: BTreeMap<String, Condition>,
    #[serde(default)]
    pub readiness: Readiness,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restarts after which the supervisor gives up; `None` = never gives up.
    #[serde(default)]
    pub max_restarts: Option<u32>,
    /// First restart delay (duration string); doubled on each restart, capped at 60s.
    #[serde(default = "default_backoff")]
    pub backoff: String,
    #[serde(default)]
    pub stop: Stop,
    #[serde(default = "one")]
    pub replicas: u32,
    #[serde(default)]
    pub resources: Resources,
    /// Paths (relative to the service's package) that `n2d watch` also watches.
    #[serde(default)]
    pub watch: Vec<String>,
    /// Everything else in the resolved value: user-declared options (such as
    /// `http.port`) and the per-target option groups (`procfile`, `systemd`,
    /// `compose`, `k8s`, …), each holding at least `extra`, the raw escape hatch.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Service {
    /// The raw `<target>.extra` value, when the service sets a non-empty one.
    pub fn target_extra(&self, target: &str) -> Option<&serde_json::Value> {
        let extra = self.other.get(target)?.get("extra")?;
        match extra {
            serde_json::Value::Null => None,
            serde_json::Value::Object(map) if map.is_empty() => None,
            value => Some(value),
        }
    }
}

/// One environment variable's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    Text(String),
    /// A secret by name: renderers never write its value into an output.
    Secret {
        secret: String,
    },
    /// The content of a file (path relative to the workspace root after
    /// resolution; written relative to the module file that defines it).
    File {
        file: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub path: String,
    #[serde(default = "yes")]
    pub persist: bool,
    /// A quantity such as `"1Gi"`.
    #[serde(default)]
    pub size: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub text: Option<String>,
    /// Path of a source file, relative to the workspace root after resolution.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default = "default_mode")]
    pub mode: String,
    /// Where the file lands in the current target (computed by the target's
    /// environment; the value of `${{ self.files."name".path }}`).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    Started,
    Healthy,
    Completed,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    #[serde(default)]
    pub http: Option<HttpProbe>,
    #[serde(default)]
    pub tcp: Option<TcpProbe>,
    #[serde(default = "default_period")]
    pub period: String,
    #[serde(default = "default_probe_timeout")]
    pub timeout: String,
    #[serde(default = "default_retries")]
    pub retries: u32,
}

impl Readiness {
    /// Whether any probe is configured.
    pub fn is_set(&self) -> bool {
        self.exec.is_some() || self.http.is_some() || self.tcp.is_some()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// A port name of `ports`, or a number as a string.
    pub port: String,
    #[serde(default = "default_http_path")]
    pub path: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    /// A port name of `ports`, or a number as a string.
    pub port: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    #[default]
    OnFailure,
    Always,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// Signal name without `SIG`: `TERM`, `INT`, `QUIT`, `HUP`, `KILL`, `USR1`, `USR2`.
    #[serde(default = "default_signal")]
    pub signal: String,
    #[serde(default = "default_stop_timeout")]
    pub timeout: String,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            signal: default_signal(),
            timeout: default_stop_timeout(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// A quantity: `"500m"`, `"2"`.
    #[serde(default)]
    pub cpu: Option<String>,
    /// A quantity: `"256Mi"`.
    #[serde(default)]
    pub memory: Option<String>,
}

/// Parses a duration string (`"500ms"`, `"10s"`, `"2m"`, `"1h"`, `"1m30s"`).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = std::time::Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let piece = match unit {
            "ms" => std::time::Duration::from_millis(number),
            "s" => std::time::Duration::from_secs(number),
            "m" => std::time::Duration::from_secs(number.checked_mul(60)?),
            "h" => std::time::Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(piece)?;
    }
    Some(total)
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}
fn default_mode() -> String {
    "0644".into()
}
fn default_backoff() -> String {
    "1s".into()
}
fn default_period() -> String {
    "2s".into()
}
fn default_probe_timeout() -> String {
    "1s".into()
}
fn default_retries() -> u32 {
    30
}
fn default_http_path() -> String {
    "/".into()
}
fn default_signal() -> String {
    "TERM".into()
}
fn default_stop_timeout() -> String {
    "10s".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("10s"),
            Some(std::time::Duration::from_secs(10))
        );
        assert_eq!(
            parse_duration("1m30s"),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("250ms"),
            Some(std::time::Duration::from_millis(250))
        );
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn minimal_service_deserializes_with_defaults() {
        let s: Service = serde_json::from_str(r#"{"name":"a","label":"//x:a"}"#).unwrap();
        assert_eq!(s.replicas, 1);
        assert_eq!(s.stop.signal, "TERM");
        assert_eq!(s.restart, RestartPolicy::OnFailure);
    }
}
