//! The `systemd` target: one `<service>.service` unit per service and a
//! `<deployment>.target` that starts them all, for a regular Linux machine
//! (systemd 252 or newer).
//!
//! What systemd can express is written natively in the unit: `Environment=`
//! for text values, `ExecStart=` for the command, `ExecStartPre=` for volumes
//! and `pre_start`, `StateDirectory=` for persisting volumes under
//! `/var/lib/`, `Restart=`/`RestartSec=`/`StartLimitBurst=`, ordering from
//! `depends_on`. Nothing is hidden in a script, so `systemctl show` tells the
//! truth. Quoting follows systemd.service(5) and systemd.syntax(7): every word
//! is double-quoted with C escapes, `%` is doubled (specifiers) and, in
//! command lines, `$` is doubled (environment expansion); see [`exec_word`]
//! and [`environment_line`].
//!
//! Secrets: `LoadCredential=<name>:/etc/credstore/<name>`; when a service has
//! secret env values, its command runs under a fixed `/bin/sh` wrapper that
//! reads `$CREDENTIALS_DIRECTORY/<name>` into the variable, then `exec`s the
//! command. A secret value is never written into a unit.
//!
//! Files: [`MachineEnv`] places the file `<name>` of `<service>` at
//! `/etc/n2d/<service>/<name>`; the target folder holds it at
//! `etc/n2d/<service>/<name>`, so installing the folder means copying its
//! `etc/` to `/etc/` and linking the units (the systemctl manager's job).
//!
//! Working directory: `workdir` when absolute; otherwise the service's state
//! directory (`StateDirectory=<service>`, `/var/lib/<service>` or its user
//! equivalent), to which a relative `workdir` and relative volume paths are
//! relative.
//!
//! Reported as warnings: readiness probes (systemd orders on process start),
//! `completed` conditions, `replicas` > 1 (one unit runs one process; a
//! template unit would change the unit names other units refer to), `image`.
//! `backoff` is the fixed `RestartSec=`: systemd 252 cannot double the delay.
pub mod unit;

use std::fmt::Write as _;

use n2d_modules::service::{Condition, EnvValue, RestartPolicy, Service};
use n2d_modules::TargetEnv;

use crate::entrypoint::{config_file, env_file_value, is_env_name, shell_quote};
use crate::procfile::launch::{millis, stop_signal};
use crate::{Artifact, Deployment, Rendered, Rule, RuleError, SourceFiles};
pub use unit::{environment_line, exec_word, path_value, unit_text_value};

/// The `systemd` rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Systemd;

/// The environment of one machine managed by systemd (and NixOS): services on
/// `localhost`, files under `/etc/n2d/<service>/<name>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineEnv;

impl TargetEnv for MachineEnv {
    fn id(&self) -> String {
        "machine:/etc/n2d".into()
    }
    fn host(&self, _service: &str) -> String {
        "localhost".into()
    }
    fn file_path(&self, service: &str, file: &str) -> String {
        format!("/etc/n2d/{service}/{file}")
    }
}

const TARGET: &str = "systemd";

impl Rule for Systemd {
    fn target(&self) -> &'static str {
        TARGET
    }

    fn version(&self) -> u32 {
        1
    }

    fn env(&self) -> &dyn TargetEnv {
        &MachineEnv
    }

    fn options(&self) -> &'static str {
        r#"[options.systemd.extra]
type = "attrs"
default = {}
description = "Raw unit settings by section, appended to the unit: `{ Service = { LimitNOFILE = 65536 }, Unit = { Documentation = \"man:x\" } }`. A list value repeats the key."
"#
    }

    fn render(
        &self,
        deployment: &Deployment,
        service: &Service,
        sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError> {
        let mut warnings = Vec::new();
        let unit = render_unit(deployment, service, sources, &mut warnings)?;
        let mut artifacts = vec![Artifact {
            path: format!("{}.service", service.name),
            bytes: unit.into_bytes(),
            mode: 0o644,
        }];
        for name in service.files.keys() {
            let (bytes, mode) = config_file(TARGET, service, name, sources)?;
            let path = MachineEnv.file_path(&service.name, name);
            artifacts.push(Artifact {
                path: path.trim_start_matches('/').to_string(),
                bytes,
                mode,
            });
        }
        Ok(Rendered {
            artifacts,
            fragment: serde_json::json!({ "unit": format!("{}.service", service.name) }),
            warnings,
        })
    }

    fn assemble(
        &self,
        deployment: &Deployment,
        fragments: &[(&str, &serde_json::Value)],
    ) -> Result<Vec<Artifact>, RuleError> {
        let mut text = String::from("[Unit]\n");
        writeln!(
            text,
            "Description={}",
            unit_text_value(&format!(
                "n2d deployment //{}:{}",
                deployment.package, deployment.name
            ))
        )
        .unwrap();
        for (name, fragment) in fragments {
            let unit = fragment["unit"]
                .as_str()
                .ok_or_else(|| RuleError::Unsupported {
                    target: TARGET,
                    service: name.to_string(),
                    message: "the render fragment has no `unit`".into(),
                })?;
            writeln!(text, "Wants={unit}").unwrap();
        }
        text.push_str("\n[Install]\nWantedBy=default.target\n");
        Ok(vec![Artifact {
            path: target_unit_name(deployment),
            bytes: text.into_bytes(),
            mode: 0o644,
        }])
    }
}

/// A Unicode noncharacter (U+FDD0–U+FDEF, and U+xFFFE / U+xFFFF in every
/// plane): valid UTF-8 that systemd's unit parser nevertheless rejects.
pub fn is_noncharacter(c: char) -> bool {
    let n = c as u32;
    (0xFDD0..=0xFDEF).contains(&n) || n & 0xFFFE == 0xFFFE
}

/// `<deployment>.target`.
pub fn target_unit_name(deployment: &Deployment) -> String {
    format!("{}.target", deployment.name)
}

pub(crate) fn render_unit(
    deployment: &Deployment,
    service: &Service,
    sources: &dyn SourceFiles,
    warnings: &mut Vec<String>,
) -> Result<String, RuleError> {
    let name = &service.name;
    let unsupported = |message: String| RuleError::Unsupported {
        target: TARGET,
        service: name.clone(),
        message,
    };
    let mut warn =
        |message: String| warnings.push(format!("{TARGET}: service `{name}`: {message}"));
    if service.command.is_empty() {
        return Err(unsupported(
            "`command` is empty: there is no program to run".into(),
        ));
    }
    let target_unit = target_unit_name(deployment);
    let text_env = service.env.iter().filter_map(|(var, value)| match value {
        EnvValue::Text(text) => Some((format!("env.{var}"), text)),
        _ => None,
    });
    let args = service
        .command
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("command[{i}]"), a));
    let description = ("description".to_string(), service.description.as_ref());
    let fields: Vec<(String, &String)> = args
        .chain(text_env)
        .chain(description.1.map(|d| (description.0.clone(), d)))
        .collect();
    if let Some((what, _)) = fields.iter().find(|(_, v)| v.contains('\0')) {
        return Err(unsupported(format!(
            "`{what}` contains a NUL byte, which no program argument or environment value can hold"
        )));
    }
    let noncharacter = fields
        .iter()
        .find_map(|(what, v)| v.chars().find(|&c| is_noncharacter(c)).map(|c| (what, c)));
    if let Some((what, c)) = noncharacter {
        return Err(unsupported(format!(
            "`{what}` contains U+{:04X}, a Unicode noncharacter, which systemd refuses in unit files (\"not UTF-8 clean\")",
            c as u32
        )));
    }

    // [Unit]
    let mut unit = String::from("[Unit]\n");
    let description = service
        .description
        .clone()
        .unwrap_or_else(|| format!("n2d service {}", service.label));
    writeln!(unit, "Description={}", unit_text_value(&description)).unwrap();
    writeln!(unit, "PartOf={target_unit}").unwrap();
    for (dependency, condition) in &service.depends_on {
        writeln!(unit, "After={dependency}.service").unwrap();
        match condition {
            Condition::Started => writeln!(unit, "Wants={dependency}.service").unwrap(),
            Condition::Healthy => writeln!(unit, "Requires={dependency}.service").unwrap(),
            Condition::Completed => {
                writeln!(unit, "Requires={dependency}.service").unwrap();
                warn(format!(
                    "`depends_on.{dependency}` = `completed` waits only until `{dependency}` has started, unless `{dependency}` is a oneshot (`systemd.extra.Service.Type`)"
                ));
            }
        }
    }
    match service.max_restarts {
        Some(max) => {
            // The first start counts too; the interval never lapses, so the
            // limit is on restarts in total, as the supervisor's.
            writeln!(unit, "StartLimitBurst={}", u64::from(max) + 1).unwrap();
            unit.push_str("StartLimitIntervalSec=infinity\n");
        }
        None => unit.push_str("StartLimitIntervalSec=0\n"),
    }

    // [Service]
    let mut svc = String::from("\n[Service]\nType=exec\n");
    if let Some(user) = &service.user {
        writeln!(svc, "User={}", unit_text_value(user)).unwrap();
    }
    let mut state_directories = vec![];
    let workdir = match &service.workdir {
        Some(dir) if dir.starts_with('/') => path_value(dir).map_err(&unsupported)?,
        relative => {
            // `%S` is the state directory root: /var/lib, or ~/.local/state for --user.
            state_directories.push(name.clone());
            match relative {
                Some(dir) => {
                    let dir = dir.trim_start_matches("./").trim_end_matches('/');
                    state_directories.push(format!("{name}/{dir}"));
                    format!(
                        "%S/{}",
                        path_value(&format!("{name}/{dir}")).map_err(&unsupported)?
                    )
                }
                None => format!("%S/{name}"),
            }
        }
    };
    writeln!(svc, "WorkingDirectory={workdir}").unwrap();

    let mut secrets = Vec::new();
    for (var, value) in &service.env {
        if !is_env_name(var) {
            return Err(unsupported(format!(
                "`env.{var}` is not a valid environment variable name"
            )));
        }
        match value {
            EnvValue::Text(text) => svc.push_str(&environment_line(var, text)),
            EnvValue::File { file } => {
                let text = env_file_value(TARGET, service, file, sources)?;
                svc.push_str(&environment_line(var, &text));
            }
            EnvValue::Secret { secret } => {
                if secret.is_empty()
                    || !secret
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    return Err(unsupported(format!(
                        "`env.{var}`: the secret name `{secret}` must be letters, digits, `.`, `_`, `-` (a systemd credential name)"
                    )));
                }
                secrets.push((var.clone(), secret.clone()));
            }
        }
    }
    let mut credentials: Vec<&String> = secrets.iter().map(|(_, s)| s).collect();
    credentials.sort();
    credentials.dedup();
    for secret in credentials {
        writeln!(svc, "LoadCredential={secret}:/etc/credstore/{secret}").unwrap();
    }

    for (volume_name, volume) in &service.volumes {
        if let Some(size) = &volume.size {
            warn(format!(
                "`volumes.{volume_name}.size` = `{size}` is ignored: a local folder has no size limit"
            ));
        }
        if volume.persist {
            if let Some(rest) = volume.path.strip_prefix("/var/lib/") {
                let rest = rest.trim_end_matches('/');
                if !rest.is_empty()
                    && !rest
                        .split('/')
                        .any(|c| c.is_empty() || c == "." || c == "..")
                {
                    state_directories.push(rest.to_string());
                    continue;
                }
            }
            let mkdir = ["/bin/mkdir", "-p", "--", volume.path.as_str()];
            writeln!(svc, "ExecStartPre={}", exec_line(&mkdir)).unwrap();
        } else {
            let mkdir = ["/bin/mkdir", "-p", "--", volume.path.as_str()];
            writeln!(svc, "ExecStartPre={}", exec_line(&mkdir)).unwrap();
            let clear = [
                "/bin/sh",
                "-c",
                "rm -rf -- \"$1\"/* \"$1\"/.[!.]* \"$1\"/..?*",
                "n2d-clear-volume",
                volume.path.as_str(),
            ];
            writeln!(svc, "ExecStartPre={}", exec_line(&clear)).unwrap();
        }
    }
    state_directories.sort();
    state_directories.dedup();
    if !state_directories.is_empty() {
        let words = state_directories
            .iter()
            .map(|d| path_value(d).map_err(&unsupported))
            .collect::<Result<Vec<_>, _>>()?;
        writeln!(svc, "StateDirectory={}", words.join(" ")).unwrap();
    }

    if !service.pre_start.trim().is_empty() {
        let pre = [
            "/bin/sh",
            "-eu",
            "-c",
            service.pre_start.as_str(),
            "n2d-pre-start",
        ];
        let argv = with_secrets(&secrets, &pre.map(String::from));
        writeln!(svc, "ExecStartPre={}", exec_line(&argv)).unwrap();
    }
    let argv = with_secrets(&secrets, &service.command);
    writeln!(svc, "ExecStart={}", exec_line(&argv)).unwrap();

    let restart = match service.restart {
        RestartPolicy::No => "no",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Always => "always",
    };
    writeln!(svc, "Restart={restart}").unwrap();
    writeln!(
        svc,
        "RestartSec={}ms",
        millis(TARGET, service, "backoff", &service.backoff)?
    )
    .unwrap();
    writeln!(
        svc,
        "TimeoutStopSec={}ms",
        millis(TARGET, service, "stop.timeout", &service.stop.timeout)?
    )
    .unwrap();
    writeln!(svc, "KillSignal=SIG{}", stop_signal(TARGET, service)?).unwrap();
    if let Some(cpu) = &service.resources.cpu {
        let percent = unit::cpu_percent(cpu).ok_or_else(|| {
            unsupported(format!(
                "`resources.cpu` = `{cpu}` is not a CPU quantity such as `500m`"
            ))
        })?;
        writeln!(svc, "CPUQuota={percent}%").unwrap();
    }
    if let Some(memory) = &service.resources.memory {
        let bytes = unit::memory_bytes(memory).ok_or_else(|| {
            unsupported(format!(
                "`resources.memory` = `{memory}` is not a quantity such as `256Mi`"
            ))
        })?;
        writeln!(svc, "MemoryMax={bytes}").unwrap();
    }

    if service.readiness.is_set() {
        warn("the readiness probe is ignored: systemd considers a service ready once its process has started".into());
    }
    if service.replicas > 1 {
        warn(format!(
            "`replicas` = {} is ignored: the unit runs one process",
            service.replicas
        ));
    }
    if let Some(image) = &service.image {
        warn(format!(
            "`image` = `{image}` is ignored: the program runs on this machine, not in a container"
        ));
    }
    if let Some(package) = &service.package {
        if package.starts_with('/') {
            let path = format!(
                "{}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                package.trim_end_matches('/')
            );
            svc.push_str(&environment_line("PATH", &path));
        } else {
            warn(format!(
                "`package` = `{package}` is not a store path: only store paths are put on PATH here"
            ));
        }
    }

    let mut text = unit;
    text.push_str(&svc);
    text.push_str("\n[Install]\n");
    writeln!(text, "WantedBy={target_unit}").unwrap();
    if let Some(extra) = service.target_extra(TARGET) {
        text = unit::merge_extra(&text, extra).map_err(unsupported)?;
    }
    Ok(text)
}

/// The command line `argv`, one [`exec_word`] per argument.
fn exec_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| exec_word(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `argv`, run under a `/bin/sh` wrapper when systemd cannot run it alone:
/// to export the secrets from systemd's credentials first, or to resolve a
/// program path relative to the working directory (systemd wants an absolute
/// path or a bare name). The wrapper is fixed text: values stay arguments.
fn with_secrets(secrets: &[(String, String)], argv: &[String]) -> Vec<String> {
    let relative_program = argv
        .first()
        .is_some_and(|p| p.contains('/') && !p.starts_with('/'));
    if secrets.is_empty() && !relative_program {
        return argv.to_vec();
    }
    let mut script = String::from("set -eu\n");
    for (var, secret) in secrets {
        writeln!(
            script,
            "{var}=$(cat -- \"$CREDENTIALS_DIRECTORY\"/{})\nexport {var}",
            shell_quote(secret)
        )
        .unwrap();
    }
    script.push_str("exec \"$@\"");
    let mut wrapped = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        script,
        "n2d-exec".to_string(),
    ];
    wrapped.extend(argv.iter().cloned());
    wrapped
}
