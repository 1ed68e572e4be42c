//! The module system: turns module files into resolved, typed, merged service
//! definitions.
//!
//! `service` is the typed view of a resolved service that renderers read.
pub mod service;

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
