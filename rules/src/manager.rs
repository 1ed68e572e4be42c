//! Managers: the launch step that hands an assembled target folder
//! (`n2d-out/<package>/<deployment>/<target>/`) to the real tool of its
//! format — honcho, systemctl, podman-compose, kubectl… (DESIGN.md §7).
//!
//! A [`Manager`] acts on one folder described by a [`LaunchContext`]. It
//! never renders anything: it reads what the target's rule wrote (the
//! `Procfile`, the units, `index.json`, `kustomization.yaml`) and runs the
//! tool on it. [`all`] lists every manager, [`find`] picks one by target and
//! name, [`default_manager`] says which one `n2d up` uses for a target when
//! none is given (procfile has none here: its default is the built-in
//! supervisor of the binary).
//!
//! Two kinds of managers:
//! - foreground (honcho, overmind, hivemind, process-compose): `up` runs the
//!   tool with the folder as working directory and inherited stdio, and
//!   returns when the services stop; `down` is [`ManagerError::NotDetached`];
//! - detached (systemctl, podman-load, skopeo-copy, docker-compose,
//!   podman-compose, kubectl, podman-kube): `up` returns once the tool has
//!   launched the services, with the tool's output captured (its last lines
//!   are in [`ManagerError::Failed`] when it fails); `down` stops them.
//!
//! Tools are looked up in [`LaunchContext::search_path`] (the process's
//! `PATH` unless the caller says otherwise) before anything runs, so a
//! missing tool is [`ManagerError::ToolMissing`] with a hint, never a half
//! launch; the tool then runs by its absolute path with that `PATH`.
//!
//! Images: compose and k8s files name the images n2d builds by their local
//! name ([`crate::oci::image_reference`]). The podman managers of those
//! targets (and docker-compose, through `skopeo copy … docker-daemon:`)
//! first load the images of the sibling `oci` folder of the same deployment
//! (`../oci/index.json`) when it exists, so `n2d up` of a compose or k8s
//! target expects the oci target of that deployment to be built alongside.
//! kubectl loads nothing: a cluster's nodes do not see the local store.
//!
//! Podman on unusual machines (rootless sandboxes, CI): [`PodmanOptions`]
//! reads `N2D_PODMAN_ARGS` (global podman flags, e.g. `--runtime runc
//! --cgroup-manager cgroupfs`, given to every podman command, and to
//! podman-compose as `--podman-args`) and `N2D_PODMAN_NETWORK` (`--network`
//! of `podman kube play`, e.g. `none`). Unset, podman runs with its defaults.
mod compose;
mod images;
mod invocation;
pub use invocation::find_tool;
mod kube;
mod procfile_runners;
mod systemctl;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use crate::Deployment;

pub use compose::{DockerCompose, PodmanCompose};
pub use images::{PodmanLoad, SkopeoCopy};
pub use kube::{Kubectl, PodmanKube};
pub use procfile_runners::{Hivemind, Honcho, Overmind, ProcessComposeTool};
pub use systemctl::{Systemctl, SystemdScope, LAUNCH_RECORD};

/// What a manager acts on.
#[derive(Clone, Debug)]
pub struct LaunchContext<'a> {
    /// The assembled target folder (`n2d-out/<package>/<deployment>/<target>/`),
    /// absolute.
    pub dir: &'a Path,
    pub deployment: &'a Deployment,
    /// A stable project name for tools that need one (compose project, pod
    /// name prefix): [`project_name`] of the deployment.
    pub project: String,
    /// Where the manager looks for its tools, in the syntax of `PATH`; also
    /// the `PATH` the tools run with.
    pub search_path: OsString,
}

impl<'a> LaunchContext<'a> {
    /// The context for `dir` with the process's `PATH`.
    pub fn new(dir: &'a Path, deployment: &'a Deployment) -> Self {
        LaunchContext {
            dir,
            deployment,
            project: project_name(deployment),
            search_path: std::env::var_os("PATH").unwrap_or_default(),
        }
    }
}

/// Launches an assembled target folder with the real tool of its format.
pub trait Manager: Send + Sync {
    /// The name used on the command line (`--manager honcho`).
    fn name(&self) -> &'static str;
    /// The target whose folder it launches.
    fn target(&self) -> &'static str;
    /// The executables it needs on `PATH`.
    fn tools(&self) -> &'static [&'static str];
    /// Detached managers return once the services are launched (compose
    /// `up -d`, kubectl apply, systemctl, podman kube play, loading images);
    /// foreground ones (honcho, overmind, hivemind, process-compose) run until
    /// the services stop, inheriting stdio.
    fn detached(&self) -> bool;
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError>;
    /// Stops what `up` started (detached managers); foreground managers
    /// return [`ManagerError::NotDetached`].
    fn down(&self, ctx: &LaunchContext) -> Result<(), ManagerError>;
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// A tool the manager runs is not on the search path.
    #[error("the manager `{manager}` needs `{tool}`, which is not installed (hint: {hint})")]
    ToolMissing {
        manager: &'static str,
        tool: &'static str,
        hint: &'static str,
    },
    /// A tool ran and failed.
    #[error("the manager `{manager}` ran `{command}`, which failed ({status}){}", stderr_suffix(.stderr_tail))]
    Failed {
        manager: &'static str,
        command: String,
        status: ExitStatus,
        /// The last lines of its standard error (empty for foreground tools,
        /// whose output went to the terminal).
        stderr_tail: String,
    },
    /// `down` of a foreground manager.
    #[error("the manager `{manager}` runs in the foreground and its services stopped with it: there is nothing to stop")]
    NotDetached { manager: &'static str },
    /// The folder does not hold what the target writes.
    #[error("the manager `{manager}` cannot launch `{path}`: {message}")]
    BadOutput {
        manager: &'static str,
        path: PathBuf,
        message: String,
    },
    /// The machine needs a step from the user before the launch can work.
    #[error("the manager `{manager}`: {message}")]
    NeedsSetup {
        manager: &'static str,
        message: String,
    },
    #[error("the manager `{manager}`: {action} `{path}`: {source}")]
    Io {
        manager: &'static str,
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn stderr_suffix(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!(":\n{}", tail.trim_end())
    }
}

/// Every external manager, configured from the environment
/// ([`PodmanOptions::from_env`]); systemctl acts on the user's manager.
pub fn all() -> Vec<Box<dyn Manager>> {
    let podman = PodmanOptions::from_env();
    vec![
        Box::new(Honcho),
        Box::new(Overmind),
        Box::new(Hivemind),
        Box::new(ProcessComposeTool),
        Box::new(Systemctl::user()),
        Box::new(PodmanLoad {
            podman: podman.clone(),
        }),
        Box::new(SkopeoCopy),
        Box::new(DockerCompose),
        Box::new(PodmanCompose {
            podman: podman.clone(),
        }),
        Box::new(Kubectl),
        Box::new(PodmanKube { podman }),
    ]
}

/// The manager `name` of `target`.
pub fn find(target: &str, name: &str) -> Option<Box<dyn Manager>> {
    all()
        .into_iter()
        .find(|m| m.target() == target && m.name() == name)
}

/// The manager `n2d up` uses for `target` when none is given, for every
/// target but procfile (whose default is the built-in supervisor, in the
/// binary) and those without an external manager.
///
/// compose defaults to podman-compose, not docker compose: n2d's images are
/// loaded into the local container store without a daemon, and
/// podman-compose is the one that works on a machine with no Docker daemon
/// (and the one CI runs); `--manager docker-compose` picks Docker.
pub fn default_manager(target: &str) -> Option<&'static str> {
    match target {
        "process-compose" => Some("process-compose"),
        "systemd" => Some("systemctl"),
        "oci" => Some("podman-load"),
        "compose" => Some("podman-compose"),
        "k8s" => Some("kubectl"),
        _ => None,
    }
}

/// The tools of `manager` that are not on the process's `PATH`.
pub fn missing_tools(manager: &dyn Manager) -> Vec<&'static str> {
    missing_tools_in(manager, &std::env::var_os("PATH").unwrap_or_default())
}

/// The tools of `manager` that are not on `search_path` (`PATH` syntax).
pub fn missing_tools_in(manager: &dyn Manager, search_path: &OsStr) -> Vec<&'static str> {
    manager
        .tools()
        .iter()
        .copied()
        .filter(|tool| invocation::find_tool(tool, search_path).is_none())
        .collect()
}

/// A stable name for the deployment, for tools that need one: package and
/// deployment name, lowered, every run of characters outside `[a-z0-9]`
/// turned into one `-` (`examples/shop` + `dev` → `examples-shop-dev`).
pub fn project_name(deployment: &Deployment) -> String {
    let mut name = String::new();
    for c in format!("{}-{}", deployment.package, deployment.name).chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    while name.ends_with('-') {
        name.pop();
    }
    if name.is_empty() {
        name.push_str("n2d");
    }
    name
}

/// How n2d runs podman on this machine. On a normal machine nothing is
/// needed; sandboxes without cgroup delegation or networking need flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodmanOptions {
    /// Flags given to `podman` before the subcommand (`--runtime runc`).
    pub global_args: Vec<String>,
    /// `--network` of `podman kube play` (`none` on a machine without
    /// networking); podman's default when `None`.
    pub kube_network: Option<String>,
}

impl PodmanOptions {
    /// From `N2D_PODMAN_ARGS` (split on whitespace: no quoting, flags have
    /// no spaces) and `N2D_PODMAN_NETWORK`.
    pub fn from_env() -> Self {
        PodmanOptions {
            global_args: std::env::var("N2D_PODMAN_ARGS")
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            kube_network: std::env::var("N2D_PODMAN_NETWORK")
                .ok()
                .filter(|n| !n.trim().is_empty()),
        }
    }
}

/// The path of `name` in the folder, or [`ManagerError::BadOutput`] when the
/// target did not write it there.
fn required_file(manager: &'static str, dir: &Path, name: &str) -> Result<PathBuf, ManagerError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ManagerError::BadOutput {
            manager,
            path: dir.to_path_buf(),
            message: format!("it has no `{name}`: is it an output folder of this target?"),
        })
    }
}
