//! Renderers, one module per target: each turns one resolved service into
//! files, and assembles one deployment's files. Rules are pure: they read
//! nothing but their arguments (and source files through [`SourceFiles`]), so
//! the engine can cache them by the content of their inputs.
//!
//! Only this crate knows target formats.
use std::sync::Arc;

use n2d_modules::service::Service;
use n2d_modules::TargetEnv;

/// Every target n2d can render, one rule each.
pub fn all() -> Vec<Arc<dyn Rule>> {
    vec![
        Arc::new(json::Json),
        Arc::new(procfile::Procfile),
        Arc::new(process_compose::ProcessCompose),
        Arc::new(systemd::Systemd),
        Arc::new(nixos::Nixos),
        Arc::new(vm::Vm),
        Arc::new(oci::OciRule),
        Arc::new(compose::ComposeRule),
        Arc::new(k8s::K8sRule),
    ]
}

/// One output file, relative to the target folder
/// (`n2d-out/<package>/<deployment>/<target>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// `/`-separated, relative, without `..` or empty components.
    pub path: String,
    pub bytes: Vec<u8>,
    /// Unix permission bits: 0o644 for data, 0o755 for scripts, 0o600 for
    /// anything that holds a secret.
    pub mode: u32,
}

/// The deployment a service is rendered for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployment {
    /// Package path without `//`, e.g. `examples/hello`.
    pub package: String,
    /// Deployment name, e.g. `dev`.
    pub name: String,
    pub namespace: Option<String>,
    /// Names of the deployment's services, in a stable order.
    pub services: Vec<String>,
    /// A base layer tarball for images (workspace-relative path, from
    /// `n2d.workspace.toml`), read through [`SourceFiles`].
    pub base_layer: Option<String>,
}

/// The result of rendering one service for one target.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// Files that belong to this service alone (entrypoints, units, blobs…).
    pub artifacts: Vec<Artifact>,
    /// The service's part of the deployment-wide files (a Procfile line, a
    /// compose service entry…), handed to [`Rule::assemble`].
    pub fragment: serde_json::Value,
    /// Options the target cannot honour, each reported once.
    pub warnings: Vec<String>,
}

/// Read access to source files that a service names (`files.*.source`,
/// `env.*.file`, a local `package`), by path relative to the workspace root.
/// The engine hashes each of them into the Render task's key.
///
/// It also carries what a build computed for the service before rendering:
/// the Nix closure of its realized `package`, and image layers built as
/// tasks of their own (see `oci`). Both are empty where nothing was.
pub trait SourceFiles {
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;

    /// The Nix closure (`nix-store -qR`, dependencies first) of the realized
    /// package whose output path is `out`.
    fn nix_closure(&self, _out: &str) -> Vec<String> {
        Vec::new()
    }

    /// A shell of that closure (`<store path>/bin/sh`), for an image that
    /// has no base layer to give it `/bin/sh`.
    fn nix_shell(&self, _out: &str) -> Option<String> {
        None
    }

    /// The digest (`sha256:<hex>`) and size of a layer already built, as a
    /// task of its own, for the spec whose `LayerSpec::task_key` is `key`:
    /// its bytes are written by the caller, once per layout.
    fn prebuilt_layer(&self, _key: &str) -> Option<(String, u64)> {
        None
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The service cannot be expressed in this target (a user error).
    #[error("{target}: service `{service}`: {message}")]
    Unsupported {
        target: &'static str,
        service: String,
        message: String,
    },
    /// A source file could not be read.
    #[error("{target}: service `{service}`: cannot read `{path}`: {message}")]
    Source {
        target: &'static str,
        service: String,
        path: String,
        message: String,
    },
}

/// A target: how a resolved service becomes files.
pub trait Rule: Send + Sync {
    /// The target's name as used on the command line (`procfile`, `k8s`…).
    fn target(&self) -> &'static str;
    /// Bump when the output for the same input changes: it is part of every
    /// Render and Assemble key of this target.
    fn version(&self) -> u32;
    /// The computed values (`host`, `address`, file paths) of this target.
    fn env(&self) -> &dyn TargetEnv;
    /// Option declarations this target adds (its `<target>.extra` group and
    /// any other), in the module-file syntax of the core options.
    fn options(&self) -> &'static str;
    /// Source files (workspace-relative) that rendering any service of
    /// `deployment` reads, such as the oci target's base layer.
    fn deployment_inputs(&self, _deployment: &Deployment) -> Vec<String> {
        Vec::new()
    }
    /// Source files (workspace-relative) that [`Rule::render`] will read.
    fn source_inputs(&self, service: &Service) -> Vec<String> {
        default_source_inputs(service)
    }
    fn render(
        &self,
        deployment: &Deployment,
        service: &Service,
        sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError>;
    /// Deployment-wide files from the services' fragments, given in the
    /// order of `deployment.services`.
    fn assemble(
        &self,
        deployment: &Deployment,
        fragments: &[(&str, &serde_json::Value)],
    ) -> Result<Vec<Artifact>, RuleError>;
}

/// The source files every service names: `files.*.source` and `env.*.file`.
pub fn default_source_inputs(service: &Service) -> Vec<String> {
    let mut inputs: Vec<String> = service
        .files
        .values()
        .filter_map(|f| f.source.clone())
        .collect();
    for value in service.env.values() {
        if let n2d_modules::service::EnvValue::File { file } = value {
            inputs.push(file.clone());
        }
    }
    inputs.sort();
    inputs.dedup();
    inputs
}

// The debugging target: resolved services as JSON.
pub mod json;

// Targets for one machine.
pub mod entrypoint;
pub mod nixos;
pub mod process_compose;
pub mod procfile;
pub mod systemd;
pub mod vm;

// Targets for containers and clusters.
pub mod compose;
pub mod k8s;
pub mod oci;

// Launching an assembled target folder with the tool of its format.
pub mod manager;
