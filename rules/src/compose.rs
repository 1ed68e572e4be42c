//! The `compose` target: one `compose.yaml` (Compose Specification) per
//! deployment, for `docker compose` and `podman-compose`.
//!
//! [`ComposeRule::render`] turns one service into its entry under
//! `services:` plus the top-level objects that entry names (named volumes,
//! secrets, configs): that is the fragment. Config files become artifacts
//! under `files/<service>/`. [`ComposeRule::assemble`] merges the fragments.
//!
//! Conventions (documented for users):
//! - images: the service's `image`, or the image n2d builds (see
//!   [`crate::oci::image_reference`]); a built image already knows its
//!   command, so only a given image gets `command`.
//! - secrets: `env.X = { secret = "s" }` becomes the compose secret `s`
//!   read from `./secrets/s` next to `compose.yaml` (the user provides that
//!   file; n2d never writes a secret value) and mounted at `/run/secrets/s`.
//!   An n2d-built image's entrypoint exports it as `X`; a given image must
//!   read the file itself (a warning says so).
//! - volumes: a persisting volume is the named volume `<service>-<volume>`;
//!   a non-persisting one is a tmpfs.
//! - files: compose `configs` from `./files/<service>/<name>`, mounted at
//!   [`crate::oci::container_file_path`].
//! - readiness: `exec` runs as `CMD`; `http` runs `wget` (else `curl`) and
//!   `tcp` runs `nc` inside the container, so the image must have one of them
//!   (busybox has both).
//! - every `$` n2d writes is escaped as `$$`: compose never interpolates a
//!   value of the definition. `compose.extra` is raw and is not escaped.
//! - `compose.extra` is deep-merged into the service's entry
//!   ([`crate::oci::merge_extra`]).
pub(crate) mod yaml;

use n2d_modules::service::{Condition, EnvValue, RestartPolicy, Service};
use n2d_modules::TargetEnv;
use serde_json::{json, Map, Value};

use crate::oci::{self, ContainerEnv};
use crate::{Artifact, Deployment, Rendered, Rule, RuleError, SourceFiles};

/// The `compose` rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct ComposeRule;

/// The options the `compose` target adds to every service.
pub const COMPOSE_OPTIONS: &str = r#"[options.compose.extra]
type = "attrs"
default = {}
description = "Raw fields deep-merged into this service's entry of compose.yaml (null removes a field)"
"#;

/// Where compose reads the value of secret `name`, relative to `compose.yaml`.
pub fn secret_file(name: &str) -> String {
    format!("./secrets/{name}")
}

impl Rule for ComposeRule {
    fn target(&self) -> &'static str {
        TARGET
    }

    fn version(&self) -> u32 {
        1
    }

    fn env(&self) -> &dyn TargetEnv {
        &ContainerEnv
    }

    fn options(&self) -> &'static str {
        COMPOSE_OPTIONS
    }

    fn render(
        &self,
        deployment: &Deployment,
        service: &Service,
        sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError> {
        render_service(deployment, service, sources)
    }

    fn assemble(
        &self,
        _deployment: &Deployment,
        fragments: &[(&str, &Value)],
    ) -> Result<Vec<Artifact>, RuleError> {
        let mut services = Map::new();
        let mut volumes = Map::new();
        let mut secrets = Map::new();
        let mut configs = Map::new();
        for (name, fragment) in fragments {
            services.insert(
                (*name).to_string(),
                fragment.get("service").cloned().unwrap_or(Value::Null),
            );
            for (section, into) in [
                ("volumes", &mut volumes),
                ("secrets", &mut secrets),
                ("configs", &mut configs),
            ] {
                if let Some(Value::Object(entries)) = fragment.get(section) {
                    into.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        let mut file = Map::new();
        file.insert("services".into(), Value::Object(services));
        for (section, entries) in [
            ("volumes", volumes),
            ("secrets", secrets),
            ("configs", configs),
        ] {
            if !entries.is_empty() {
                file.insert(section.into(), Value::Object(entries));
            }
        }
        Ok(vec![Artifact {
            path: "compose.yaml".into(),
            bytes: yaml::to_yaml(&Value::Object(file)).into_bytes(),
            mode: 0o644,
        }])
    }
}

const TARGET: &str = "compose";

fn render_service(
    deployment: &Deployment,
    service: &Service,
    sources: &dyn SourceFiles,
) -> Result<Rendered, RuleError> {
    let mut warnings = Vec::new();
    let mut artifacts = Vec::new();
    let mut entry = Map::new();
    let mut top_volumes = Map::new();
    let mut top_secrets = Map::new();
    let mut top_configs = Map::new();
    let built = service.image.is_none();

    entry.insert(
        "image".into(),
        json!(oci::image_reference(deployment, service)),
    );
    if !built && !service.command.is_empty() {
        entry.insert(
            "command".into(),
            json!(service
                .command
                .iter()
                .map(|a| escape(a))
                .collect::<Vec<_>>()),
        );
    }
    if let Some(workdir) = &service.workdir {
        entry.insert("working_dir".into(), json!(escape(workdir)));
    }
    if let Some(user) = &service.user {
        entry.insert("user".into(), json!(escape(user)));
    }
    if !built && !service.pre_start.trim().is_empty() {
        warnings.push(format!(
            "compose: service `{}`: `pre_start` only runs in images n2d builds, not in `{}`",
            service.name,
            service.image.as_deref().unwrap_or_default()
        ));
    }

    // Environment: plain values and file contents inline, secrets by file.
    let mut environment = Map::new();
    let mut service_secrets = Vec::new();
    for (key, value) in &service.env {
        match value {
            EnvValue::Text(text) => {
                environment.insert(key.clone(), json!(escape(text)));
            }
            EnvValue::File { file } => {
                let text = oci::read_env_file(TARGET, service, sources, file)?;
                environment.insert(key.clone(), json!(escape(&text)));
            }
            EnvValue::Secret { secret } => {
                top_secrets.insert(secret.clone(), json!({ "file": secret_file(secret) }));
                service_secrets.push(secret.clone());
                if !built {
                    warnings.push(format!(
                        "compose: service `{}`: env `{key}` takes secret `{secret}`, mounted at /run/secrets/{secret}: the prebuilt image must read it from there",
                        service.name
                    ));
                }
            }
        }
    }
    if !environment.is_empty() {
        entry.insert("environment".into(), Value::Object(environment));
    }
    service_secrets.sort();
    service_secrets.dedup();
    if !service_secrets.is_empty() {
        entry.insert("secrets".into(), json!(service_secrets));
    }

    if !service.ports.is_empty() {
        // One published host port per container port; several replicas
        // cannot share one host port, so they get ephemeral ones.
        let ports: Vec<Value> = service
            .ports
            .values()
            .map(|port| {
                if service.replicas == 1 {
                    json!(format!("{port}:{port}"))
                } else {
                    json!(port.to_string())
                }
            })
            .collect();
        entry.insert("ports".into(), Value::Array(ports));
    }

    let mut mounts = Vec::new();
    for (name, volume) in &service.volumes {
        if volume.persist {
            let volume_name = compose_name(&format!("{}-{name}", service.name));
            top_volumes.insert(volume_name.clone(), json!({}));
            mounts.push(json!({ "type": "volume", "source": volume_name, "target": volume.path }));
            if volume.size.is_some() {
                warnings.push(format!(
                    "compose: service `{}`: volume `{name}`: named volumes have no size",
                    service.name
                ));
            }
        } else {
            let mut mount = json!({ "type": "tmpfs", "target": volume.path });
            if let Some(size) = &volume.size {
                let bytes = parse_bytes(size).ok_or_else(|| {
                    unsupported(
                        service,
                        format!("volume `{name}`: `size` is not a quantity: `{size}`"),
                    )
                })?;
                mount["tmpfs"] = json!({ "size": bytes });
            }
            mounts.push(mount);
        }
    }
    if !mounts.is_empty() {
        entry.insert("volumes".into(), Value::Array(mounts));
    }

    let mut service_configs = Vec::new();
    for (name, file) in &service.files {
        oci::check_file_name(TARGET, service, name)?;
        let bytes = oci::file_bytes(TARGET, service, sources, name)?;
        let mode = oci::parse_mode(TARGET, service, name, &file.mode)?;
        let artifact_path = format!("files/{}/{name}", service.name);
        let config_name = compose_name(&format!("{}-{name}", service.name));
        top_configs.insert(
            config_name.clone(),
            json!({ "file": format!("./{artifact_path}") }),
        );
        service_configs.push(json!({
            "source": config_name,
            "target": oci::container_file_path(&service.name, name),
            "mode": mode,
        }));
        artifacts.push(Artifact {
            path: artifact_path,
            bytes,
            mode,
        });
    }
    if !service_configs.is_empty() {
        entry.insert("configs".into(), Value::Array(service_configs));
    }

    if !service.depends_on.is_empty() {
        let depends: Map<String, Value> = service
            .depends_on
            .iter()
            .map(|(dependency, condition)| {
                let condition = match condition {
                    Condition::Started => "service_started",
                    Condition::Healthy => "service_healthy",
                    Condition::Completed => "service_completed_successfully",
                };
                (dependency.clone(), json!({ "condition": condition }))
            })
            .collect();
        entry.insert("depends_on".into(), Value::Object(depends));
    }

    if let Some(check) = healthcheck(service)? {
        entry.insert("healthcheck".into(), check);
    }

    let restart = match service.restart {
        RestartPolicy::No => "no".to_string(),
        RestartPolicy::OnFailure => match service.max_restarts {
            Some(max) => format!("on-failure:{max}"),
            None => "on-failure".to_string(),
        },
        RestartPolicy::Always => {
            if service.max_restarts.is_some() {
                warnings.push(format!(
                    "compose: service `{}`: `max_restarts` only applies to restart = \"on-failure\"",
                    service.name
                ));
            }
            "always".to_string()
        }
    };
    entry.insert("restart".into(), json!(restart));
    if service.backoff != "1s" {
        warnings.push(format!(
            "compose: service `{}`: `backoff` cannot be set, the engine uses its own",
            service.name
        ));
    }

    let mut deploy = Map::new();
    deploy.insert("replicas".into(), json!(service.replicas));
    let mut limits = Map::new();
    if let Some(cpu) = &service.resources.cpu {
        let cpus = parse_cpus(cpu).ok_or_else(|| {
            unsupported(
                service,
                format!("`resources.cpu` is not a quantity: `{cpu}`"),
            )
        })?;
        limits.insert("cpus".into(), json!(cpus));
    }
    if let Some(memory) = &service.resources.memory {
        let bytes = parse_bytes(memory).ok_or_else(|| {
            unsupported(
                service,
                format!("`resources.memory` is not a quantity: `{memory}`"),
            )
        })?;
        limits.insert("memory".into(), json!(format_bytes(bytes)));
    }
    if !limits.is_empty() {
        deploy.insert("resources".into(), json!({ "limits": limits }));
    }
    entry.insert("deploy".into(), Value::Object(deploy));

    entry.insert(
        "stop_signal".into(),
        json!(format!("SIG{}", service.stop.signal)),
    );
    let grace = oci::parse_duration_option(TARGET, service, "stop.timeout", &service.stop.timeout)?;
    entry.insert("stop_grace_period".into(), json!(format_duration(grace)));

    let mut labels = Map::new();
    labels.insert("n2d.label".into(), json!(escape(&service.label)));
    labels.insert(
        "n2d.deployment".into(),
        json!(escape(&format!(
            "//{}:{}",
            deployment.package, deployment.name
        ))),
    );
    if let Some(description) = &service.description {
        labels.insert("n2d.description".into(), json!(escape(description)));
    }
    entry.insert("labels".into(), Value::Object(labels));

    let mut entry = Value::Object(entry);
    if let Some(extra) = oci::target_extra(TARGET, service)? {
        oci::merge_extra(&mut entry, extra);
    }

    let mut fragment = Map::new();
    fragment.insert("service".into(), entry);
    for (section, entries) in [
        ("volumes", top_volumes),
        ("secrets", top_secrets),
        ("configs", top_configs),
    ] {
        if !entries.is_empty() {
            fragment.insert(section.into(), Value::Object(entries));
        }
    }
    Ok(Rendered {
        artifacts,
        fragment: Value::Object(fragment),
        warnings,
    })
}

/// The compose `healthcheck` of the service's readiness probe, if it has one.
fn healthcheck(service: &Service) -> Result<Option<Value>, RuleError> {
    let readiness = &service.readiness;
    let test: Vec<String> = if let Some(exec) = &readiness.exec {
        std::iter::once("CMD".to_string())
            .chain(exec.iter().map(|a| escape(a)))
            .collect()
    } else if let Some(http) = &readiness.http {
        let port = oci::resolve_port(TARGET, service, &http.port)?;
        let path = if http.path.starts_with('/') {
            http.path.clone()
        } else {
            format!("/{}", http.path)
        };
        let url = shell_quote(&format!("http://localhost:{port}{path}"));
        vec![
            "CMD-SHELL".into(),
            escape(&format!(
                "wget -q -O /dev/null {url} || curl -fsS -o /dev/null {url}"
            )),
        ]
    } else if let Some(tcp) = &readiness.tcp {
        let port = oci::resolve_port(TARGET, service, &tcp.port)?;
        vec![
            "CMD-SHELL".into(),
            format!("nc -w 2 localhost {port} </dev/null"),
        ]
    } else {
        return Ok(None);
    };
    let period =
        oci::parse_duration_option(TARGET, service, "readiness.period", &readiness.period)?;
    let timeout =
        oci::parse_duration_option(TARGET, service, "readiness.timeout", &readiness.timeout)?;
    Ok(Some(json!({
        "test": test,
        "interval": format_duration(period),
        "timeout": format_duration(timeout),
        "retries": readiness.retries,
    })))
}

/// Escapes `$` so that compose takes the text literally.
fn escape(text: &str) -> String {
    text.replace('$', "$$")
}

/// Single-quotes `text` for `sh`.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A compose object name (volume, config): the characters compose accepts.
fn compose_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Compose durations: whole seconds when exact, else milliseconds.
fn format_duration(duration: std::time::Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// A Kubernetes-style quantity as bytes: `256Mi`, `1G`, `1000`.
pub(crate) fn parse_bytes(text: &str) -> Option<u64> {
    const UNITS: [(&str, u64); 12] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("Ei", 1 << 60),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("P", 1_000_000_000_000_000),
        ("E", 1_000_000_000_000_000_000),
    ];
    let text = text.trim();
    let (number, factor) = UNITS
        .iter()
        .find_map(|(suffix, factor)| text.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((text, 1));
    let value: f64 = number.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Some((value * factor as f64).round() as u64)
}

/// A CPU quantity (`500m`, `2`, `1.5`) as compose `cpus` text.
fn parse_cpus(text: &str) -> Option<String> {
    let text = text.trim();
    let cores: f64 = match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => text.parse().ok()?,
    };
    if !cores.is_finite() || cores <= 0.0 {
        return None;
    }
    let formatted = format!("{cores:.3}");
    Some(
        formatted
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
    )
}

/// Bytes in compose's byte-value syntax, in the largest exact binary unit.
fn format_bytes(bytes: u64) -> String {
    for (suffix, factor) in [("g", 1u64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes >= factor && bytes.is_multiple_of(factor) {
            return format!("{}{suffix}", bytes / factor);
        }
    }
    format!("{bytes}b")
}

fn unsupported(service: &Service, message: String) -> RuleError {
    RuleError::Unsupported {
        target: TARGET,
        service: service.name.clone(),
        message,
    }
}
