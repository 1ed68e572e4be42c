//! `n2d watch`: build, launch with the built-in supervisor, then re-build on
//! every saved change and apply the difference to the running services.
//!
//! # How it fits together
//!
//! - `filter`: which paths are watched and which changes call for a build.
//! - `watcher`: the notify watches on folders and the debounced [`watcher::Batch`]es.
//! - `signals`: SIGINT/SIGTERM as a flag the loop polls.
//! - `status`: the one status line per cycle.
//!
//! # A cycle
//!
//! Wait for a batch of relevant changes, discover the workspace again (a
//! new package is a new module file), open a [`Session`], build the
//! deployment for the procfile target, drop the session, and hand the new
//! `launch.json` to the running supervisor ([`SupervisorProcess`], a child
//! process told to `reload` over its control socket), which restarts
//! exactly the services whose `spec_digest` changed (and their dependants),
//! starts added ones and stops removed ones. A failed build is printed and
//! applies nothing. Then the watched folders follow the build's inputs.
//!
//! # The workspace lock
//!
//! A session holds the workspace lock for as long as it lives. The loop
//! opens one per cycle and drops it before applying, so that `n2d build`
//! (or `n2d show`) in another terminal runs between cycles instead of
//! waiting for the watch to end; a cycle that finds the lock taken waits
//! for it like any other build. Opening costs a few milliseconds (the cache
//! database and the option set), small next to the save-to-restart budget.
//!
//! # Targets
//!
//! The procfile target runs under the built-in supervisor, which restarts
//! exactly the changed services. Any other target (`--target k8s`) is
//! re-applied with its detached manager (`--manager`, or the target's
//! default), and only when the target's assembled output changed.
mod filter;
mod signals;
mod status;
mod supervisor_process;
mod watcher;

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{anyhow, bail, Result};
use n2d_modules::{parse_label, Label};
use n2d_pipeline::{BuildRequest, BuildResult};
use n2d_supervisor::LaunchSpec;

use crate::cli::WatchArgs;
use crate::commands::{open_session, report_build, workspace};
use crate::progress::BuildProgress;

use self::filter::PathFilter;
use self::signals::StopSignals;
use self::status::{Applied, Cause};
use self::supervisor_process::SupervisorProcess;
use self::watcher::FolderWatcher;

const TARGET: &str = "procfile";

pub fn run(cwd: &Path, args: WatchArgs) -> Result<ExitCode> {
    let target = args.target.clone().unwrap_or_else(|| TARGET.to_string());
    let manager_name = crate::commands::choose_manager(&target, args.manager.as_deref())?;
    // Procfile with the built-in supervisor, or a detached manager that
    // re-applies the target's output when it changes.
    let manager = match n2d_rules::manager::find(&target, &manager_name) {
        None => None,
        Some(manager) if manager.detached() => {
            let missing = n2d_rules::manager::missing_tools(manager.as_ref());
            if !missing.is_empty() {
                bail!("error: the manager `{manager_name}` needs {}, which is not installed", missing.join(", "));
            }
            Some(manager)
        }
        Some(_) => bail!(
            "error: `{manager_name}` runs in the foreground and cannot be re-applied on change\n = help: use the built-in supervisor (the default for procfile) or a detached manager"
        ),
    };
    // Before the first build, so that Ctrl-C during it stops cleanly.
    let stop = StopSignals::install()?;
    let first = workspace(cwd)?;
    let current_package = first.package_of(cwd);
    let label = parse_label(&args.label, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let mut watch = WatchLoop {
        cwd: cwd.to_path_buf(),
        request: BuildRequest {
            patterns: vec![label.to_string()],
            targets: crate::commands::targets_for_launch(&target),
            current_package,
            jobs: args.jobs,
            keep_going: false,
        },
        label,
        timestamps: args.timestamps,
        running: None,
        inputs: BTreeSet::new(),
        target,
        manager,
        applied: None,
    };
    // Watching starts before the first build: an edit made while it runs
    // is then seen, not lost.
    let mut watcher = FolderWatcher::new(PathFilter::new(&first))?;
    let root = watcher.root().to_path_buf();
    drop(first);

    let outcome = (|| -> Result<()> {
        let mut batch: Option<watcher::Batch> = None;
        loop {
            let cause = match &batch {
                None => Cause::Start,
                Some(watcher::Batch {
                    lost: Some(why), ..
                }) => Cause::Lost(why),
                Some(batch) => Cause::Changed(&batch.paths),
            };
            if matches!(cause, Cause::Lost(_)) {
                // Folders may have appeared unseen: watch them before building.
                watcher.rewalk_tree()?;
            }
            let line = watch.cycle(&root, cause)?;
            eprintln!("{line}");
            watcher.set_inputs(&watch.inputs)?;
            match watcher.next_batch(&watch.inputs, &stop)? {
                Some(next) => batch = Some(next),
                None => return Ok(()),
            }
        }
    })();

    // Stop the services in reverse dependency order, also after an error.
    if let Some(supervisor) = watch.running.take() {
        supervisor.stop()?;
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// The state that lives across cycles.
struct WatchLoop {
    cwd: PathBuf,
    label: Label,
    request: BuildRequest,
    /// Log lines with times (`--timestamps`).
    timestamps: bool,
    /// The supervisor, once a build succeeded.
    running: Option<SupervisorProcess>,
    /// What the last build read; after a failed build, also what the last
    /// good one read, so that nothing drops out of the watch while the
    /// definitions are broken.
    inputs: BTreeSet<PathBuf>,
    target: String,
    /// The detached manager of a target other than procfile.
    manager: Option<Box<dyn n2d_rules::manager::Manager>>,
    /// The assembled digest the manager last applied.
    applied: Option<String>,
}

impl WatchLoop {
    /// Re-applies the target's output with its manager when it changed
    /// since the last application; returns the manager's name if it ran.
    fn apply_with_manager(&mut self, dir: &Path) -> Result<Option<&'static str>> {
        let manager = self.manager.as_ref().expect("called for a manager target");
        let digest = n2d_pipeline::materialize::recorded_source(dir);
        if digest.is_some() && digest == self.applied {
            return Ok(None);
        }
        let deployment = crate::commands::rules_deployment(&workspace(&self.cwd)?, &self.label)?;
        let context = n2d_rules::manager::LaunchContext::new(dir, &deployment);
        manager.up(&context).map_err(|e| anyhow!("{e}"))?;
        self.applied = digest;
        Ok(Some(manager.name()))
    }

    /// Builds and applies; returns the status line. Errors are those that
    /// end the watch (the supervisor is gone); build failures are not.
    fn cycle(&mut self, root: &Path, cause: Cause<'_>) -> Result<String> {
        let started = Instant::now();
        let (result, dir) = match self.build() {
            Ok(built) => built,
            Err(error) => {
                eprintln!("error: {error:#}");
                return Ok(status::line(
                    root,
                    cause,
                    None,
                    Applied::BuildFailed,
                    started.elapsed(),
                ));
            }
        };
        if result.ok {
            self.inputs = result.inputs.iter().cloned().collect();
        } else {
            self.inputs.extend(result.inputs.iter().cloned());
            report_build(&result, false, false);
            return Ok(status::line(
                root,
                cause,
                Some(&result),
                Applied::BuildFailed,
                started.elapsed(),
            ));
        }
        for notice in &result.notices {
            eprintln!("note: {notice}");
        }
        for warning in &result.warnings {
            eprintln!("warning: {warning}");
        }
        if self.manager.is_some() {
            let applied = match self.apply_with_manager(&dir) {
                Ok(name) => Applied::Manager(name),
                Err(error) => {
                    eprintln!("error: {error:#}");
                    Applied::BuildFailed
                }
            };
            return Ok(status::line(
                root,
                cause,
                Some(&result),
                applied,
                started.elapsed(),
            ));
        }
        let applied = self.apply(&dir)?;
        let line = match &applied {
            Ok(Some(changes)) => status::line(
                root,
                cause,
                Some(&result),
                Applied::Changes(changes),
                started.elapsed(),
            ),
            Ok(None) => {
                let services = LaunchSpec::load(&dir).map_or(0, |spec| spec.services.len());
                status::line(
                    root,
                    cause,
                    Some(&result),
                    Applied::SupervisorStarted { services },
                    started.elapsed(),
                )
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                status::line(
                    root,
                    cause,
                    Some(&result),
                    Applied::BuildFailed,
                    started.elapsed(),
                )
            }
        };
        Ok(line)
    }

    /// One build in a session of its own; returns the procfile folder.
    fn build(&self) -> Result<(BuildResult, PathBuf)> {
        let workspace = workspace(&self.cwd)?;
        let session = open_session(workspace)?;
        // A spinner on a terminal; elsewhere the status line says enough.
        let (progress, callback) = BuildProgress::new(!std::io::stderr().is_terminal());
        let result = session
            .build(&self.request, callback)
            .map_err(|e| anyhow!("{e}"));
        progress.finish();
        let dir = session.target_dir(&self.label.package, &self.label.name, &self.target);
        Ok((result?, dir))
    }

    /// Hands the built folder to the supervisor, starting it on the first
    /// good build. The outer error ends the watch; the inner one is a
    /// launch spec the supervisor refused, shown while services keep
    /// running. `Ok(None)` means the supervisor was started.
    fn apply(&mut self, dir: &Path) -> Result<Result<Option<Vec<n2d_supervisor::Change>>>> {
        match &mut self.running {
            // The supervisor keeps its logs and socket in its folder and runs
            // commands relative to it; a moved output folder (a changed
            // `output_dir`) needs a new supervisor.
            Some(supervisor) if supervisor.dir() == dir => {
                // The supervisor reads and checks `launch.json` itself.
                Ok(supervisor.apply()?.map(Some))
            }
            _ => {
                if let Some(old) = self.running.take() {
                    old.stop()?;
                }
                match SupervisorProcess::start(dir, self.timestamps)? {
                    Ok(supervisor) => {
                        self.running = Some(supervisor);
                        Ok(Ok(None))
                    }
                    Err(e) => Ok(Err(anyhow!("cannot start the supervisor: {e}"))),
                }
            }
        }
    }
}
