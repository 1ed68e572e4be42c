//! The `procfile` target: a folder that honcho, overmind, hivemind or the
//! built-in supervisor runs on this machine.
//!
//! Layout of the target folder (every path relative to it; the folder can be
//! moved because the entrypoints find it from their own location):
//!
//! - `Procfile`: one line per service, `web: bin/web`; replicas are not
//!   spelled out (honcho's users scale with `-c web=3`), the supervisor reads
//!   them from `launch.json`;
//! - `bin/<service>`: the entrypoint ([`crate::entrypoint`]), mode 0755;
//! - `files/<service>/<name>`: the service's files, where
//!   [`n2d_modules::LocalEnv`] says they are;
//! - `.env`: what every process shares (the deployment's identity), read by honcho;
//! - `launch.json`: the launch spec of the built-in supervisor ([`launch`]).
//!
//! Secrets are never written: the entrypoint reads `<name>` from the folder
//! `secrets/` next to the target folder (`n2d-out/<package>/<deployment>/secrets/`,
//! which the materialization of a target never touches), or from
//! `$N2D_SECRETS_DIR` when set.
//!
//! `depends_on`, readiness probes and restart policy go to `launch.json`: the
//! supervisor honours them, the other Procfile runners do not.
pub mod launch;

use std::collections::{BTreeMap, BTreeSet};

use n2d_modules::service::Service;
use n2d_modules::{LocalEnv, TargetEnv};

use crate::entrypoint::{
    config_file, entrypoint_script, EntrypointLayout, Interpreter, Root, SecretStore,
};
use crate::{Artifact, Deployment, Rendered, Rule, RuleError, SourceFiles};
use launch::{dependency_order, launch_entry, LaunchService, LaunchSpec, LAUNCH_SPEC_VERSION};

/// The `procfile` rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct Procfile;

const TARGET: &str = "procfile";

impl Rule for Procfile {
    fn target(&self) -> &'static str {
        TARGET
    }

    fn version(&self) -> u32 {
        1
    }

    fn env(&self) -> &dyn TargetEnv {
        &LocalEnv
    }

    fn options(&self) -> &'static str {
        r#"[options.procfile.extra]
type = "attrs"
default = {}
description = "Raw fields for the procfile target. A Procfile line has no fields of its own, so any value here is reported as a warning."
"#
    }

    fn render(
        &self,
        _deployment: &Deployment,
        service: &Service,
        sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError> {
        let layout = EntrypointLayout {
            target: TARGET,
            interpreter: Interpreter::Bash,
            root: Root::ScriptRelative { levels: 1 },
            secrets: SecretStore::Dir("../secrets".into()),
            files_dir: format!("files/{}", service.name),
        };
        let script = entrypoint_script(service, &layout, sources)?;
        let program = format!("bin/{}", service.name);
        let mut artifacts = vec![Artifact {
            path: program.clone(),
            bytes: script.into_bytes(),
            mode: 0o755,
        }];
        for name in service.files.keys() {
            let (bytes, mode) = config_file(TARGET, service, name, sources)?;
            artifacts.push(Artifact {
                path: LocalEnv.file_path(&service.name, name),
                bytes,
                mode,
            });
        }
        let entry = launch_entry(TARGET, service, vec![program.clone()], &artifacts)?;
        let fragment = serde_json::json!({
            "line": format!("{}: {program}", service.name),
            "launch": entry,
        });
        Ok(Rendered {
            artifacts,
            fragment,
            warnings: warnings(service),
        })
    }

    fn assemble(
        &self,
        deployment: &Deployment,
        fragments: &[(&str, &serde_json::Value)],
    ) -> Result<Vec<Artifact>, RuleError> {
        let mut entries: BTreeMap<String, LaunchService> = BTreeMap::new();
        let mut lines = Vec::new();
        for (name, fragment) in fragments {
            let bad = |what: &str| RuleError::Unsupported {
                target: TARGET,
                service: name.to_string(),
                message: format!("the render fragment has no valid `{what}`"),
            };
            let line = fragment["line"].as_str().ok_or_else(|| bad("line"))?;
            let entry: LaunchService =
                serde_json::from_value(fragment["launch"].clone()).map_err(|_| bad("launch"))?;
            lines.push(line.to_string());
            entries.insert(entry.name.clone(), entry);
        }
        let graph: BTreeMap<String, BTreeSet<String>> = entries
            .iter()
            .map(|(name, e)| (name.clone(), e.depends_on.keys().cloned().collect()))
            .collect();
        let order = dependency_order(TARGET, &graph)?;
        let spec = LaunchSpec {
            version: LAUNCH_SPEC_VERSION,
            services: order
                .iter()
                .map(|name| {
                    entries
                        .remove(name)
                        .expect("ordered names come from entries")
                })
                .collect(),
        };
        let mut launch_json = serde_json::to_vec_pretty(&spec).expect("a launch spec serializes");
        launch_json.push(b'\n');

        let mut procfile = lines.join("\n");
        procfile.push('\n');
        let dotenv = format!(
            "# The environment every process of //{}:{} shares (read by honcho).\n\
             # Each service's own environment is exported by its entrypoint, bin/<service>.\n\
             N2D_DEPLOYMENT=//{}:{}\n",
            deployment.package, deployment.name, deployment.package, deployment.name
        );
        Ok(vec![
            Artifact {
                path: ".env".into(),
                bytes: dotenv.into_bytes(),
                mode: 0o644,
            },
            Artifact {
                path: "Procfile".into(),
                bytes: procfile.into_bytes(),
                mode: 0o644,
            },
            Artifact {
                path: "launch.json".into(),
                bytes: launch_json,
                mode: 0o644,
            },
        ])
    }
}

/// The options of `service` that a process on this machine cannot honour.
fn warnings(service: &Service) -> Vec<String> {
    let name = &service.name;
    let mut warnings = Vec::new();
    if let Some(image) = &service.image {
        warnings.push(format!(
            "{TARGET}: service `{name}`: `image` = `{image}` is ignored: the program runs on this machine, not in a container"
        ));
    }
    if service.resources.cpu.is_some() || service.resources.memory.is_some() {
        warnings.push(format!(
            "{TARGET}: service `{name}`: `resources` are ignored: a Procfile cannot limit CPU or memory"
        ));
    }
    if let Some(user) = &service.user {
        warnings.push(format!(
            "{TARGET}: service `{name}`: `user` = `{user}` is ignored: processes run as the user who starts them"
        ));
    }
    for (volume_name, volume) in &service.volumes {
        if let Some(size) = &volume.size {
            warnings.push(format!(
                "{TARGET}: service `{name}`: `volumes.{volume_name}.size` = `{size}` is ignored: a local folder has no size limit"
            ));
        }
    }
    if let Some(package) = &service.package {
        if !package.starts_with('/') {
            warnings.push(format!(
                "{TARGET}: service `{name}`: `package` = `{package}` is not a store path: only store paths are put on PATH here"
            ));
        }
    }
    if service.target_extra(TARGET).is_some() {
        warnings.push(format!(
            "{TARGET}: service `{name}`: `procfile.extra` is ignored: a Procfile line has no fields"
        ));
    }
    warnings
}
