//! The module system: turns module files into resolved, typed, merged service
//! definitions.
//!
//! The stages, each a pure function that the engine caches by content:
//! `parse_module_file` (text → spanned `Node` tree, `parse` + `json`),
//! `eval_package` (tree → services, modules, deployments, `package`), and
//! `Universe::resolve` (packages → one resolved service: `merge` with
//! priorities and provenance, then `${{ }}` interpolation). Around them:
//! `workspace` (discovery, settings), `label` (labels and patterns),
//! `types` + `options` (declarations, the core set in `options/core.toml`),
//! `show` (the `n2d show` text), `init` (the `n2d init` files).
//!
//! `service` is the typed view of a resolved service that renderers read.
//! This crate knows nothing about targets: they add their option groups with
//! `OptionSet::extend` and their computed values through `TargetEnv`.
pub mod error;
pub mod init;
mod interpolate;
mod json;
pub mod label;
mod listings;
pub mod merge;
pub mod nix;
pub mod node;
pub mod options;
pub mod package;
pub mod parse;
pub mod service;
pub mod show;
pub mod types;
pub mod universe;
pub mod workspace;

pub use error::{Diagnostic, Error, ErrorKind, Location};
pub use init::init_template;
pub use label::{parse_label, parse_pattern, Label, Pattern};
pub use merge::Origin;
pub use options::OptionSet;
pub use package::{eval_package, Package};
pub use parse::{parse_module_file, Format, ModuleFile};
pub use show::{format_show, show_json};
pub use universe::{DeploymentService, DeploymentSpec, LabelKind, Resolved, Universe};
pub use workspace::{PackageFile, Settings, WalkedFolder, Workspace, WorkspaceRoot};

/// What a target supplies to resolution: the computed values that differ by
/// target (`<label>.host`, `<label>.address.<port>`, `self.files."<name>".path`).
///
/// Invariant: the values never depend on where the workspace lives on disk,
/// so resolutions (and their cache keys) survive moving the workspace folder.
pub trait TargetEnv: Sync {
    /// A stable identity for this environment (e.g. `local`, `service-name`):
    /// resolutions are cached per identity, so two targets with the same
    /// identity must compute the same values.
    fn id(&self) -> String;
    /// The host name under which `service` (a service name of the deployment)
    /// is reached by the other services: `localhost` on one machine, the
    /// service name in compose and Kubernetes.
    fn host(&self, service: &str) -> String;
    /// Where the file `file` of `service` lands for this target.
    fn file_path(&self, service: &str, file: &str) -> String;
}

/// The environment of one machine: every service is on `localhost`, files
/// land under `files/<service>/<name>` relative to the target folder.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalEnv;

impl TargetEnv for LocalEnv {
    fn id(&self) -> String {
        "local".into()
    }
    fn host(&self, _service: &str) -> String {
        "localhost".into()
    }
    fn file_path(&self, service: &str, file: &str) -> String {
        format!("files/{service}/{file}")
    }
}
