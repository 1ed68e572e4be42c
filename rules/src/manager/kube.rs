//! The k8s managers: kubectl against the current cluster context, and
//! `podman kube play` on this machine.
//!
//! kubectl: `kubectl apply --server-side --field-manager=n2d --prune -l
//! n2d/deployment=<value> -k <dir>`. Pruning selects by the label every
//! object of the deployment carries ([`crate::k8s::DEPLOYMENT_LABEL`]; its
//! value is read from the manifests, so it is whatever the k8s rule wrote):
//! an object of this deployment that is no longer in the folder is deleted,
//! objects of other deployments are not. The label-based prune is used
//! rather than `--applyset`, which in kubectl 1.27–1.30 is alpha, needs
//! `KUBECTL_APPLYSET=true` and a parent object the user must be allowed to
//! create. Its kinds are kubectl's default prune list, which covers every
//! kind the k8s target writes. `down` is `kubectl delete --ignore-not-found
//! -k <dir>`; PersistentVolumeClaims of StatefulSets are kept (their data
//! outlives the deployment, as in Kubernetes). kubectl loads no images: a
//! cluster's nodes cannot see this machine's store (`kind load`, a registry…
//! is the user's step).
//!
//! podman-kube: `podman kube play --replace [--network N] <file>` for each
//! file of `kustomization.yaml`'s `resources`, in that order (podman 4 plays
//! one file at a time, and does not read kustomizations), after loading the
//! sibling `oci` folder; `down` is `podman kube down <file>` for each.
use std::path::PathBuf;

use super::images::{load_with_podman, sibling_layout};
use super::invocation::Invocation;
use super::{required_file, LaunchContext, Manager, ManagerError, PodmanOptions};
use crate::k8s::DEPLOYMENT_LABEL;

/// kubectl, server-side apply with prune by label.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kubectl;

/// `podman kube play` / `podman kube down` on each manifest.
#[derive(Clone, Debug, Default)]
pub struct PodmanKube {
    pub podman: PodmanOptions,
}

impl Manager for Kubectl {
    fn name(&self) -> &'static str {
        "kubectl"
    }
    fn target(&self) -> &'static str {
        "k8s"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["kubectl"]
    }
    fn detached(&self) -> bool {
        true
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        let resources = resources(self.name(), ctx)?;
        let value = deployment_label(self.name(), ctx, &resources)?;
        Invocation::new(self.name(), "kubectl", ctx)?
            .args([
                "apply",
                "--server-side",
                "--field-manager=n2d",
                "--prune",
                "-l",
            ])
            .arg(format!("{DEPLOYMENT_LABEL}={value}"))
            .arg("-k")
            .arg(ctx.dir)
            .run_captured()
            .map(drop)
    }
    fn down(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "kustomization.yaml")?;
        Invocation::new(self.name(), "kubectl", ctx)?
            .args(["delete", "--ignore-not-found", "-k"])
            .arg(ctx.dir)
            .run_captured()
            .map(drop)
    }
}

impl PodmanKube {
    fn podman(&self, ctx: &LaunchContext) -> Result<Invocation, ManagerError> {
        Ok(Invocation::new(self.name(), "podman", ctx)?.args(&self.podman.global_args))
    }
}

impl Manager for PodmanKube {
    fn name(&self) -> &'static str {
        "podman-kube"
    }
    fn target(&self) -> &'static str {
        "k8s"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["podman"]
    }
    fn detached(&self) -> bool {
        true
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        let resources = resources(self.name(), ctx)?;
        // A missing podman is reported before any image is loaded.
        self.podman(ctx)?;
        if let Some(layout) = sibling_layout(ctx) {
            load_with_podman(self.name(), ctx, &layout, &self.podman)?;
        }
        for file in &resources {
            let mut play = self.podman(ctx)?.args(["kube", "play", "--replace"]);
            if let Some(network) = &self.podman.kube_network {
                play = play.args(["--network", network]);
            }
            play.arg(file).run_captured()?;
        }
        Ok(())
    }
    fn down(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        for file in resources(self.name(), ctx)? {
            // A container whose process has just exited can still hold its
            // `/dev/shm` mount for a moment, and podman then fails to remove
            // it ("device or resource busy"): tried again, it goes.
            let mut attempts = 0;
            loop {
                attempts += 1;
                match self
                    .podman(ctx)?
                    .args(["kube", "down"])
                    .arg(&file)
                    .run_captured()
                {
                    Err(ManagerError::Failed { stderr_tail, .. })
                        if attempts < 3 && stderr_tail.contains("device or resource busy") =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(300));
                    }
                    result => break result.map(drop)?,
                }
            }
        }
        Ok(())
    }
}

/// The manifest files `kustomization.yaml` lists, as absolute paths inside
/// the folder.
fn resources(manager: &'static str, ctx: &LaunchContext) -> Result<Vec<PathBuf>, ManagerError> {
    let path = required_file(manager, ctx.dir, "kustomization.yaml")?;
    let bad = |message: String| ManagerError::BadOutput {
        manager,
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ManagerError::Io {
        manager,
        action: "reading the kustomization",
        path: path.clone(),
        source,
    })?;
    let kustomization: serde_json::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| bad(format!("it is not YAML: {e}")))?;
    let listed = kustomization["resources"]
        .as_array()
        .ok_or_else(|| bad("it has no `resources` list".into()))?;
    listed
        .iter()
        .map(|resource| {
            let name = resource
                .as_str()
                .filter(|name| is_plain_file_name(name))
                .ok_or_else(|| {
                    bad(format!(
                        "the resource {resource} is not a file of the folder"
                    ))
                })?;
            required_file(manager, ctx.dir, name)
        })
        .collect()
}

/// The k8s target lists its own files by name: anything else (a path out
/// of the folder, a remote base) is not its output.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

/// The value of [`DEPLOYMENT_LABEL`] on the deployment's objects, read from
/// the first manifest's first object that has it.
fn deployment_label(
    manager: &'static str,
    ctx: &LaunchContext,
    resources: &[PathBuf],
) -> Result<String, ManagerError> {
    for path in resources {
        let text = std::fs::read_to_string(path).map_err(|source| ManagerError::Io {
            manager,
            action: "reading the manifest",
            path: path.clone(),
            source,
        })?;
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let Ok(object) = <serde_json::Value as serde::Deserialize>::deserialize(document)
            else {
                continue;
            };
            if let Some(value) = object["metadata"]["labels"][DEPLOYMENT_LABEL].as_str() {
                return Ok(value.to_string());
            }
        }
    }
    Err(ManagerError::BadOutput {
        manager,
        path: ctx.dir.to_path_buf(),
        message: format!(
            "no object carries the label `{DEPLOYMENT_LABEL}`: without it, pruning could delete objects of other deployments"
        ),
    })
}
