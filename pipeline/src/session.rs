//! A build session: the workspace, its cache, the rules and the option set,
//! and `Session::build`, which runs the pipeline as four engine stages:
//!
//! 1. Parse and Eval every package file;
//! 2. Plan the request over the evaluated packages;
//! 3. Resolve, Render and Assemble what the plan names;
//! 4. Materialize the target folders that are not already in sync.
//!
//! Stages exist because each one's graph depends on the previous one's
//! outputs (which packages exist, which services a deployment holds); the
//! engine connects them by output digest (`Graph::import`), so caching and
//! early cutoff work across stages.
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::{Mutex, OnceLock};

use n2d_cache::{Cache, WorkspaceLock};
use n2d_engine::{
    Engine, EngineConfig, Graph, OnFailure, Progress, Report, Status, Summary, TaskError, TaskId,
};
use n2d_modules::{Format, OptionSet, Settings, Workspace, WorkspaceRoot};
use n2d_rules::{Deployment, Rule};

use crate::launch::{LaunchRequest, LaunchTask};
use crate::materialize;
use crate::plan::{Plan, PlanRequest};
use crate::tasks::{
    deployment_digest, AssembleTask, EvalTask, InterfaceTask, MaterializeTask, ParseTask, PlanTask,
    RenderTask, ResolveTask, SharedUniverse,
};

/// What a build is asked to do.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// Deployment labels or patterns; empty means `//...`.
    pub patterns: Vec<String>,
    /// Targets; empty means each deployment's own (or the workspace default).
    pub targets: Vec<String>,
    /// The package of the current folder, for `:name` labels.
    pub current_package: Option<String>,
    pub jobs: Option<usize>,
    pub keep_going: bool,
}

/// Called from worker threads as tasks start and finish.
pub type ProgressFn = Arc<dyn Fn(Progress<'_>) + Send + Sync>;

/// What a build did.
#[derive(Debug, Default)]
pub struct BuildResult {
    pub ok: bool,
    /// Counts over all stages. Materializations found in sync count as
    /// cached.
    pub summary: Summary,
    /// The target folders of the build, in plan order.
    pub outputs: Vec<PathBuf>,
    /// Every file the build read or would read (absolute): the workspace
    /// file, every module file, the planned services' sources and `watch`
    /// paths. What `n2d watch` watches.
    pub inputs: Vec<PathBuf>,
    /// For each task that ran: its identity and why it ran.
    pub explanations: Vec<(String, String)>,
    /// One full message per failed task.
    pub errors: Vec<String>,
    /// Options a target could not honour, from the renders that ran.
    pub warnings: Vec<String>,
    /// Cache notices (damaged entries dropped, a database set aside).
    pub notices: Vec<String>,
    /// How the build went about it.
    pub strategy: Strategy,
}

/// The three ways a build can go (see `stamp` and `delta`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing changed: the stamp proved it, no task was looked at.
    NoOp,
    /// Only module files and Render sources changed: the tasks they reach
    /// ran, outside the cache database.
    Delta,
    /// The staged graph, with the cache.
    #[default]
    Full,
}

impl BuildResult {
    /// A build the stamp proved had nothing to do.
    fn no_op(outputs: Vec<PathBuf>, inputs: Vec<PathBuf>, summary: Summary) -> BuildResult {
        BuildResult {
            ok: true,
            summary,
            outputs,
            inputs,
            strategy: Strategy::NoOp,
            ..BuildResult::default()
        }
    }
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::NoOp => "no-op",
            Strategy::Delta => "delta",
            Strategy::Full => "full",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Cache(#[from] n2d_cache::CacheError),
    #[error(transparent)]
    Engine(#[from] n2d_engine::EngineError),
    #[error("{0}")]
    Workspace(n2d_modules::Error),
}

impl BuildRequest {
    /// Whether a pattern is relative to the current package (`:api`,
    /// `web/...`): only then does `current_package` change what is built.
    pub fn is_relative(&self) -> bool {
        self.patterns
            .iter()
            .any(|pattern| !pattern.starts_with("//") && pattern != "...")
    }
}

/// The stamp of `request` in a workspace whose cache is `cache_dir`: its
/// name is the key of everything the build's outcome depends on besides
/// the files the stamp records. The executable is in it (a new n2d may
/// render differently; its option declarations are part of it), the
/// settings and the request, and the current package only when a pattern
/// is relative to it, so that a no-op build can be proved before
/// discovery (`build_workspace`).
fn stamp_of(cache_dir: &Path, settings: &Settings, request: &BuildRequest) -> PathBuf {
    let mut hasher = blake3::Hasher::new();
    let current_package = request.is_relative().then_some(&request.current_package);
    for part in [
        format!("{:?}", request.patterns),
        format!("{:?}", request.targets),
        format!("{current_package:?}"),
        format!("{settings:?}"),
        crate::stamp::executable_identity(),
    ] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    crate::stamp::stamp_path(cache_dir, &hasher.finalize().to_hex())
}

/// A build as `n2d build` runs it from the folder `cwd` of the workspace
/// at `root`: with the workspace lock (`on_wait` is called before waiting
/// for it), and, when no pattern is relative, first the stamp's check of
/// everything the last build of the request read, discovery's folders
/// included, so that a build with nothing to do ends without discovery,
/// and one whose module files changed starts the delta path without it.
/// Otherwise discovery, then [`Session::build`]. The session is returned
/// when one was opened (`Session::exit_without_teardown`).
pub fn build_workspace(
    root: WorkspaceRoot,
    cwd: &Path,
    request: &BuildRequest,
    on_wait: impl FnOnce(&Path),
    progress: Option<ProgressFn>,
) -> Result<(BuildResult, Option<Session>), SessionError> {
    let cache_dir = root.root.join(&root.settings.cache_dir);
    let mut lock = WorkspaceLock::acquire(&cache_dir.join("lock"), on_wait)?;
    let mut request = request.clone();
    if !request.is_relative() {
        let started_at = crate::stamp::now_ns();
        let stamp = stamp_of(&cache_dir, &root.settings, &request);
        crate::trace::phase("located and locked");
        let check = crate::stamp::check(
            &stamp,
            crate::stamp::Discovered::NotYet { root: &root.root },
        );
        crate::trace::phase("stamp checked before discovery");
        match check {
            crate::stamp::Check::Unknown => {}
            crate::stamp::Check::Unchanged(outputs, inputs, summary) => {
                return Ok((BuildResult::no_op(outputs, inputs, summary), None));
            }
            crate::stamp::Check::Changed(mut changed) => {
                // Taken, not copied (a thousand names): the workspace holds
                // them from here on, and the delta path's stamp takes them
                // from it.
                let folders = changed.stamp.folders.take().unwrap_or_default();
                // The outputs' stats (most of a no-op's work) start at
                // once, on the core that opening the session leaves idle,
                // and go on beside the delta path's reads and tasks.
                let (hold, opened) = rayon::join(
                    || changed.outputs_hold(),
                    || match root.clone().assume(&changed.stamp.packages, folders) {
                        Some(workspace) => {
                            let session = Session::open_locked(workspace, lock);
                            let prepared = session.delta_prepare(&stamp, &changed);
                            Ok((session, prepared))
                        }
                        None => Err(lock),
                    },
                );
                match opened {
                    Ok((session, prepared)) => {
                        let result = match session
                            .delta_finish(&stamp, changed, started_at, hold, prepared)
                        {
                            Some(result) => result,
                            None => session.build_checked(
                                &request,
                                progress,
                                started_at,
                                &stamp,
                                crate::stamp::Check::Unknown,
                            )?,
                        };
                        return Ok((result, Some(session)));
                    }
                    Err(returned) => lock = returned,
                }
            }
        }
    }
    let workspace = root.discover().map_err(SessionError::Workspace)?;
    crate::trace::phase("discovered");
    if request.is_relative() {
        request.current_package = workspace.package_of(cwd);
    }
    let session = Session::open_locked(workspace, lock);
    let result = session.build(&request, progress)?;
    Ok((result, Some(session)))
}

/// The workspace with its lock held, its cache (opened when first needed:
/// a no-op build never opens the database), and the rules.
pub struct Session {
    pub workspace: Workspace,
    cache_dir: PathBuf,
    /// The workspace lock until the cache takes it over.
    lock: Mutex<Option<WorkspaceLock>>,
    cache: OnceLock<Arc<Cache>>,
    /// The rules and option declarations, made on first use: a build that
    /// ends on the no-op check needs none, and the delta path first needs
    /// them while the outputs are being checked.
    declared: OnceLock<Arc<Declared>>,
    /// What a full build leaves behind (its reports, tasks and outputs),
    /// freed with the session rather than at the end of the build; see
    /// [`Session::exit_without_teardown`].
    retired: Mutex<Vec<Box<dyn std::any::Any + Send>>>,
}

impl Session {
    /// Opens the workspace's cache, waiting for another n2d process that
    /// holds it (`on_wait` is called first).
    pub fn open(
        workspace: Workspace,
        on_wait: impl FnOnce(&Path),
    ) -> Result<Session, SessionError> {
        let cache_dir = workspace.root.join(&workspace.settings.cache_dir);
        let lock = WorkspaceLock::acquire(&cache_dir.join("lock"), on_wait)?;
        Ok(Session::open_locked(workspace, lock))
    }

    /// Opens the workspace's cache with its lock already held.
    pub fn open_locked(workspace: Workspace, lock: WorkspaceLock) -> Session {
        let cache_dir = workspace.root.join(&workspace.settings.cache_dir);
        Session {
            workspace,
            cache_dir,
            lock: Mutex::new(Some(lock)),
            cache: OnceLock::new(),
            declared: OnceLock::new(),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The rules, the option set and its digest (see [`Declared`]).
    pub(crate) fn declared(&self) -> &Arc<Declared> {
        self.declared.get_or_init(|| Arc::new(Declared::new()))
    }

    /// Ends the process's use of the session without freeing it: for a
    /// command that exits next. A full build of 10,000 services leaves
    /// hundreds of megabytes in a few million allocations, and the database
    /// its page cache; freeing both took a tenth of a cold build, serially,
    /// for memory the kernel takes back at exit anyway. Everything the
    /// build wrote is already flushed (`Session::build` flushes the cache
    /// before it returns); the workspace lock is released when the process
    /// closes its descriptor. Only call it when the process is about to
    /// exit: neither the memory nor the lock come back.
    pub fn exit_without_teardown(self) {
        std::mem::forget(self);
    }

    /// Keeps `value` until the session is dropped (see `retired`).
    fn retire(&self, value: impl std::any::Any + Send) {
        self.retired
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(value));
    }

    /// The cache, opened on first use (under the lock this session holds).
    pub fn cache(&self) -> Result<&Arc<Cache>, SessionError> {
        let mut lock = self.lock.lock().expect("the lock mutex is never poisoned");
        if let Some(cache) = self.cache.get() {
            return Ok(cache);
        }
        let held = lock
            .take()
            .expect("the lock is held until the cache takes it");
        match Cache::open_locked(&self.cache_dir, held) {
            Ok(cache) => Ok(self.cache.get_or_init(|| Arc::new(cache))),
            Err(error) => {
                // The lock was consumed by the failed open: take it again.
                *lock = Some(WorkspaceLock::acquire(
                    &self.cache_dir.join("lock"),
                    |_| {},
                )?);
                Err(error.into())
            }
        }
    }

    /// The cache folder (the database, its packs, the stamps).
    pub(crate) fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The folder a deployment's target is materialized into.
    pub fn target_dir(&self, package: &str, deployment: &str, target: &str) -> PathBuf {
        let mut dir = self
            .workspace
            .root
            .join(&self.workspace.settings.output_dir);
        if !package.is_empty() {
            dir.push(package);
        }
        dir.push(deployment);
        dir.push(target);
        dir
    }

    /// Runs a build; see the module docs for its stages.
    pub fn build(
        &self,
        request: &BuildRequest,
        progress: Option<ProgressFn>,
    ) -> Result<BuildResult, SessionError> {
        let started_at = crate::stamp::now_ns();
        let packages = self.package_files();
        let stamp = stamp_of(&self.cache_dir, &self.workspace.settings, request);
        let check = crate::stamp::check(&stamp, crate::stamp::Discovered::Packages(&packages));
        crate::trace::phase("stamp checked");
        self.build_checked(request, progress, started_at, &stamp, check)
    }

    /// The workspace's module files, as stamps list them.
    fn package_files(&self) -> Vec<String> {
        self.workspace
            .packages
            .iter()
            .map(|p| p.display_path())
            .collect()
    }

    /// [`Session::build`] once its stamp is checked.
    fn build_checked(
        &self,
        request: &BuildRequest,
        progress: Option<ProgressFn>,
        started_at: i128,
        stamp: &Path,
        check: crate::stamp::Check,
    ) -> Result<BuildResult, SessionError> {
        match check {
            crate::stamp::Check::Unchanged(outputs, inputs, summary) => {
                return Ok(BuildResult::no_op(outputs, inputs, summary));
            }
            crate::stamp::Check::Changed(changed) => {
                if let Some(result) = self.delta(stamp, changed, started_at) {
                    return Ok(result);
                }
            }
            crate::stamp::Check::Unknown => {}
        }
        crate::stamp::forget(stamp);
        let mut engine = Engine::new(
            self.cache()?.clone(),
            EngineConfig {
                jobs: request.jobs.unwrap_or_else(|| EngineConfig::default().jobs),
                on_failure: if request.keep_going {
                    OnFailure::KeepGoing
                } else {
                    OnFailure::Stop
                },
            },
        )?;
        if let Some(progress) = progress {
            engine.on_progress(move |event| progress(event));
        }
        let mut result = BuildResult::default();
        result.inputs.push(root_file(&self.workspace));
        result.inputs.extend(
            self.workspace
                .packages
                .iter()
                .map(|p| self.workspace.root.join(&p.path)),
        );

        // Stage 1: every package file.
        let root = &self.workspace.root;
        let mut graph = Graph::new();
        let mut evals = BTreeMap::new();
        let mut interfaces = BTreeMap::new();
        let mut nix_lib = None;
        let mut parses = BTreeMap::new();
        for package in &self.workspace.packages {
            let file = package.path.to_string_lossy().replace('\\', "/");
            let parse = if package.format == Format::Nix {
                let lib = match &nix_lib {
                    Some(lib) => lib,
                    None => match crate::nix::install_lib(&self.cache_dir) {
                        Ok(path) => nix_lib.insert(path),
                        Err(e) => {
                            result.errors.push(format!("error: {e}"));
                            continue;
                        }
                    },
                };
                let task = crate::nix::NixParseTask::new(root, file.clone(), lib.clone());
                result.inputs.extend(task.input_paths().cloned());
                graph.add(task, &[])
            } else {
                graph.add(
                    ParseTask {
                        identity: format!("parse {file}"),
                        file: file.clone(),
                        path: root.join(&package.path),
                        format: package.format,
                    },
                    &[],
                )
            };
            let eval = graph.add(
                EvalTask {
                    identity: format!("eval //{}", package.package),
                    package: package.package.clone(),
                },
                &[parse],
            );
            evals.insert(package.package.clone(), eval);
            parses.insert(package.package.clone(), (parse, file));
            let interface = graph.add(
                InterfaceTask {
                    identity: format!("interface //{}", package.package),
                },
                &[eval],
            );
            interfaces.insert(package.package.clone(), interface);
        }
        let first = Arc::new(engine.run_unflushed(graph)?);
        crate::trace::phase("stage 1: parse, eval, interface");
        self.absorb(&first, &mut result);
        if !result.errors.is_empty() {
            return Ok(self.flushed(result));
        }

        // Stage 2: the plan.
        let universe = Arc::new(SharedUniverse::new(
            first.clone(),
            evals.clone(),
            self.declared().options.clone(),
            self.workspace.settings.clone(),
        ));
        let mut graph = Graph::new();
        let imported: Vec<TaskId> = interfaces
            .values()
            .map(|&id| graph.import(&first, id).expect("stage 1 succeeded"))
            .collect();
        let patterns = if request.patterns.is_empty() {
            vec!["//...".to_string()]
        } else {
            request.patterns.clone()
        };
        let made_plan = Arc::new(Mutex::new(None));
        let plan_id = graph.add(
            PlanTask {
                packages: interfaces.keys().cloned().collect(),
                request: PlanRequest {
                    patterns,
                    targets: request.targets.clone(),
                    current_package: request.current_package.clone(),
                    default_targets: self.workspace.settings.default_targets.clone(),
                    known_targets: self
                        .declared()
                        .rules
                        .keys()
                        .map(|t| t.to_string())
                        .collect(),
                },
                options_digest: self.declared().digest.clone(),
                universe: universe.clone(),
                made: made_plan.clone(),
            },
            &imported,
        );
        let second = engine.run_unflushed(graph)?;
        crate::trace::phase("stage 2: plan");
        self.absorb(&second, &mut result);
        if !result.errors.is_empty() {
            return Ok(self.flushed(result));
        }
        // The plan as the task made it, if it ran (its output encodes
        // exactly that); else as the cache holds it.
        let made = made_plan.lock().unwrap_or_else(|e| e.into_inner()).take();
        let decoded = match made {
            Some(plan) => Ok(Ok(plan)),
            None => second
                .output(plan_id)
                .map(|bytes| serde_json::from_slice(&bytes)),
        };
        let plan: Plan = match decoded {
            Ok(Ok(plan)) => plan,
            Ok(Err(e)) => {
                result.errors.push(format!(
                    "error: the cached plan is unreadable (please report this bug): {e}"
                ));
                return Ok(self.flushed(result));
            }
            Err(e) => {
                result.errors.push(format!("error: {e}"));
                return Ok(self.flushed(result));
            }
        };

        for planned in &plan.deployments {
            for service in &planned.services {
                for path in service.sources.iter().chain(&service.watch) {
                    result.inputs.push(self.workspace.root.join(path));
                }
            }
        }
        // Stage 3a: realize the Nix packages the planned services name.
        let realized = self.realize(&engine, &plan, &mut result)?;
        result.inputs.sort();
        result.inputs.dedup();
        if !result.errors.is_empty() || result.summary.failed > 0 {
            return Ok(self.flushed(result));
        }

        // Stage 3: resolve, render, assemble.
        let planned_services: usize = plan
            .deployments
            .iter()
            .map(|d| d.services.len() * d.targets.len())
            .sum();
        // Per service and target a Render and at most a Resolve, with a
        // few edges each; the Evals imported; an Assemble per target.
        let mut graph = Graph::with_capacity(
            2 * planned_services + evals.len() + plan.deployments.len() * 4,
            4 * planned_services,
        );
        let mut imported_realizations: HashMap<&str, TaskId> = HashMap::new();
        let mut layers: HashMap<String, TaskId> = HashMap::new();
        let mut imported_evals: HashMap<&str, TaskId> = HashMap::new();
        let mut assembles = Vec::new();
        let mut units = Vec::new();
        for planned in &plan.deployments {
            let deployment = Arc::new(Deployment {
                package: planned.label.package.clone(),
                name: planned.label.name.clone(),
                namespace: planned.namespace.clone(),
                services: planned.services.iter().map(|s| s.name.clone()).collect(),
                base_layer: self.workspace.settings.base_layer.clone(),
            });
            let deployment_digest = deployment_digest(&deployment);
            // The deployment's Resolves by environment (targets of one
            // environment share them), by service.
            let mut resolves: Vec<(String, Vec<Option<TaskId>>)> = Vec::new();
            for target in &planned.targets {
                let rule = self.declared().rules[target.as_str()].clone();
                let env = rule.env().id();
                let env_slot = match resolves.iter().position(|(known, _)| *known == env) {
                    Some(slot) => slot,
                    None => {
                        resolves.push((env.clone(), vec![None; planned.services.len()]));
                        resolves.len() - 1
                    }
                };
                let deployment_inputs = rule.deployment_inputs(&deployment);
                let mut renders = Vec::new();
                let mut unit_services = Vec::new();
                let mut eligible = true;
                // The Layer tasks this target's images stack, by key.
                let mut deployment_layers: BTreeMap<String, TaskId> = BTreeMap::new();
                for (service_index, service) in planned.services.iter().enumerate() {
                    eligible &= service.nix.is_empty();
                    // The packages the Resolve reads, in dependency order.
                    let resolve_packages: Vec<String> = service
                        .packages
                        .iter()
                        .filter(|p| evals.contains_key(*p))
                        .cloned()
                        .collect();
                    let resolve = match resolves[env_slot].1[service_index] {
                        Some(id) => id,
                        None => {
                            let mut dependencies = Vec::new();
                            // As `resolve_packages`, borrowed from the plan
                            // for `imported_evals`.
                            for package in
                                service.packages.iter().filter(|p| evals.contains_key(*p))
                            {
                                let eval = evals[package];
                                let id = match imported_evals.get(package.as_str()) {
                                    Some(&id) => id,
                                    None => {
                                        let id =
                                            graph.import(&first, eval).expect("stage 1 succeeded");
                                        imported_evals.insert(package.as_str(), id);
                                        id
                                    }
                                };
                                dependencies.push(id);
                            }
                            let mut count = 0;
                            for installable in &service.nix {
                                let Some(entry) = realized.get(installable) else {
                                    continue;
                                };
                                let id = *imported_realizations
                                    .entry(installable.as_str())
                                    .or_insert_with(|| {
                                        graph
                                            .import(&entry.report, entry.task)
                                            .expect("the realization succeeded")
                                    });
                                dependencies.push(id);
                                count += 1;
                            }
                            let id = graph.add(
                                ResolveTask {
                                    realized: count,
                                    packages: resolve_packages.clone(),
                                    identity: format!(
                                        "resolve {} in {} ({env})",
                                        service.label, planned.label
                                    ),
                                    deployment: planned.label.clone(),
                                    service: service.name.clone(),
                                    rule: rule.clone(),
                                    options_digest: self.declared().digest.clone(),
                                    universe: universe.clone(),
                                },
                                &dependencies,
                            );
                            resolves[env_slot].1[service_index] = Some(id);
                            id
                        }
                    };
                    // Layers built as tasks of their own (oci): the
                    // deployment's base, the store paths of every Nix package
                    // the service may use, its local programs.
                    let mut closures = BTreeMap::new();
                    let mut shells = BTreeMap::new();
                    let mut layer_keys = Vec::new();
                    let mut render_dependencies = vec![resolve];
                    if target == "oci" {
                        let mut closure = Vec::new();
                        for installable in &service.nix {
                            if let Some(entry) = realized.get(installable) {
                                closures.insert(
                                    entry.realization.out.clone(),
                                    entry.realization.closure.clone(),
                                );
                                if let Some(shell) =
                                    crate::nix::shell_of(&entry.realization.closure)
                                {
                                    shells.insert(entry.realization.out.clone(), shell);
                                }
                                closure.extend(entry.realization.closure.iter().cloned());
                            }
                        }
                        let mut specs = n2d_rules::oci::path_layer_specs(
                            deployment.base_layer.as_deref(),
                            &closure,
                            None,
                        );
                        for program in &service.programs {
                            specs.extend(n2d_rules::oci::path_layer_specs(
                                None,
                                &[],
                                Some(program),
                            ));
                        }
                        for spec in specs {
                            let Some(task) = crate::layers::LayerTask::new(spec, root) else {
                                continue;
                            };
                            if layer_keys.contains(&task.key) {
                                continue;
                            }
                            let key = task.key.clone();
                            let id = *layers
                                .entry(key.clone())
                                .or_insert_with(|| graph.add(task, &[]));
                            deployment_layers.insert(key.clone(), id);
                            layer_keys.push(key);
                            render_dependencies.push(id);
                        }
                    }
                    let sources: Vec<String> = service
                        .sources
                        .iter()
                        .chain(&deployment_inputs)
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .cloned()
                        .collect();
                    eligible &= layer_keys.is_empty();
                    let render = graph.add(
                        RenderTask {
                            layers: layer_keys,
                            closures,
                            shells,
                            identity: format!(
                                "render {} in {} ({target})",
                                service.label, planned.label
                            ),
                            rule: rule.clone(),
                            deployment: deployment.clone(),
                            deployment_digest,
                            sources: sources.iter().map(|s| (s.clone(), root.join(s))).collect(),
                        },
                        &render_dependencies,
                    );
                    renders.push(render);
                    unit_services.push(crate::delta::ServiceRecord {
                        label: service.label.to_string(),
                        packages: resolve_packages,
                        sources,
                        resolve,
                        render,
                    });
                }
                let mut assemble_dependencies = renders;
                let layer_ids: Vec<TaskId> = deployment_layers.values().copied().collect();
                let layer_count = layer_ids.len();
                assemble_dependencies.extend(layer_ids);
                let assemble = graph.add(
                    AssembleTask {
                        identity: format!("assemble {} ({target})", planned.label),
                        rule: rule.clone(),
                        deployment: deployment.clone(),
                        deployment_digest,
                        layers: layer_count,
                    },
                    &assemble_dependencies,
                );
                assembles.push((planned.label.clone(), target.clone(), assemble));
                units.push(crate::delta::UnitRecord {
                    label: planned.label.clone(),
                    target: target.clone(),
                    deployment: deployment.clone(),
                    services: unit_services,
                    tree: None,
                    eligible: eligible && layer_count == 0,
                });
            }
        }
        let third = engine.run_unflushed(graph)?;
        crate::trace::phase("stage 3: resolve, render, assemble");
        self.absorb(&third, &mut result);
        let renders: Vec<TaskId> = third
            .executed()
            .filter(|&id| third.kind(id) == "render")
            .collect();
        let warnings: Vec<Vec<String>> = renders
            .par_iter()
            .map(|&id| {
                let Ok(bytes) = third.output(id) else {
                    return Vec::new();
                };
                crate::codec::rendered_parts(&bytes)
                    .map(|parts| {
                        parts
                            .warnings
                            .iter()
                            .map(|warning| format!("{}: {warning}", third.identity(id)))
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        result.warnings.extend(warnings.into_iter().flatten());

        // Stage 4: materialize what is out of sync. A folder is named by
        // the digest of its files (`codec::tree_digest`), which the delta
        // path can compute without the files it did not change.
        let trees: Vec<Option<n2d_cache::Digest>> = assembles
            .par_iter()
            .map(|(_, _, assemble)| {
                third.outcome(*assemble).output?;
                let bytes = third.output(*assemble).ok()?;
                let tree = crate::codec::assembled_tree(&bytes).ok()?;
                Some(crate::codec::tree_digest(tree.iter()))
            })
            .collect();
        for (unit, tree) in units.iter_mut().zip(&trees) {
            unit.tree = *tree;
        }
        let mut graph = Graph::new();
        let mut in_sync = 0;
        let mut stamped_outputs = Vec::new();
        for ((label, target, assemble), tree) in assembles.iter().zip(&trees) {
            let Some(tree) = tree else {
                continue;
            };
            let dir = self.target_dir(&label.package, &label.name, target);
            let assembled = tree.to_hex();
            result.outputs.push(dir.clone());
            // A folder found in sync goes into the stamp as found.
            let state = materialize::in_sync(&dir, &assembled);
            let found_in_sync = state.is_some();
            stamped_outputs.push((dir.clone(), assembled.clone(), state));
            if found_in_sync {
                in_sync += 1;
                continue;
            }
            let dependency = graph
                .import(&third, *assemble)
                .expect("the assemble has an output");
            graph.add(
                MaterializeTask {
                    identity: format!("materialize {label} ({target})"),
                    dir,
                    assembled,
                },
                &[dependency],
            );
        }
        let fourth = engine.run_unflushed(graph)?;
        crate::trace::phase("stage 4: materialize");
        self.absorb(&fourth, &mut result);
        if in_sync > 0 {
            result.summary.cached += in_sync;
            result
                .summary
                .by_kind
                .entry("materialize")
                .or_default()
                .cached += in_sync;
        }
        result.ok = result.errors.is_empty() && result.summary.failed == 0;
        result.explanations = follow_across_stages(std::mem::take(&mut result.explanations));
        // The cache is flushed once, for all stages, while the snapshot and
        // the stamp are written (they do not depend on it: a crash before
        // the flush loses recent cache entries only). With one job, after.
        let cache = self.cache()?.clone();
        let jobs = request.jobs.unwrap_or_else(|| EngineConfig::default().jobs);
        let flushed = std::thread::scope(|scope| {
            let flush = (jobs > 1).then(|| scope.spawn(|| cache.flush()));
            if result.ok {
                crate::delta::record(
                    self,
                    stamp,
                    started_at,
                    crate::delta::PackagesStage {
                        report: &first,
                        parses: &parses,
                        evals: &evals,
                        interfaces: &interfaces,
                    },
                    &third,
                    &units,
                );
                crate::stamp::record(
                    stamp,
                    started_at,
                    &self.package_files(),
                    self.workspace.folders.as_deref(),
                    &result.inputs,
                    &stamped_outputs,
                    &result.summary,
                );
            }
            match flush {
                Some(flush) => flush.join().expect("the flush does not panic"),
                None => cache.flush(),
            }
        });
        crate::trace::phase("snapshot, stamp and cache flush");
        if let Err(error) = flushed {
            result.notices.push(cache_failed(&error));
        }
        self.retire((engine, first, second, third, fourth, universe, plan, units));
        Ok(result)
    }

    /// `result`, once the cache holds what its build wrote (a full build
    /// that stopped early).
    fn flushed(&self, mut result: BuildResult) -> BuildResult {
        if let Some(Err(error)) = self.cache.get().map(|cache| cache.flush()) {
            result.notices.push(cache_failed(&error));
        }
        result
    }

    /// Removes the no-op stamps of every request (see `stamp::forget_all`).
    pub fn forget_stamps(&self) -> usize {
        crate::stamp::forget_all(&self.cache_dir)
    }

    /// Builds `request`, then launches the folder of `launch` with its
    /// detached manager: a Launch task, added only when the folder holds an
    /// output other than the one launched last (or `launch.force`).
    pub fn up(
        &self,
        request: &BuildRequest,
        launch: &LaunchRequest,
        progress: Option<ProgressFn>,
    ) -> Result<BuildResult, SessionError> {
        let mut result = self.build(request, progress.clone())?;
        if !result.ok {
            return Ok(result);
        }
        let dir = self.target_dir(
            &launch.deployment.package,
            &launch.deployment.name,
            &launch.target,
        );
        let Some(assembled) =
            materialize::recorded_source(&dir).and_then(|hex| n2d_cache::Digest::from_hex(&hex))
        else {
            result.ok = false;
            result.errors.push(format!(
                "error: {} holds no finished build of the `{}` target",
                dir.display(),
                launch.target
            ));
            return Ok(result);
        };
        let cache = self.cache()?.clone();
        if !launch.force && cache.launch_record(&launch.record())? == Some(assembled) {
            result.summary.cached += 1;
            result.summary.by_kind.entry("launch").or_default().cached += 1;
            return Ok(result);
        }
        let mut engine = Engine::new(cache.clone(), EngineConfig::default())?;
        if let Some(progress) = progress {
            engine.on_progress(move |event| progress(event));
        }
        let mut graph = Graph::new();
        graph.add(
            LaunchTask {
                identity: format!(
                    "launch //{}:{} ({}) with {}",
                    launch.deployment.package,
                    launch.deployment.name,
                    launch.target,
                    launch.manager.name()
                ),
                request: launch.clone(),
                dir,
                assembled,
                cache,
            },
            &[],
        );
        let report = engine.run(graph)?;
        self.absorb(&report, &mut result);
        result.ok = result.errors.is_empty() && result.summary.failed == 0;
        Ok(result)
    }

    /// Realizes every Nix installable of the plan (a stage of its own: the
    /// Resolve and Render tasks after it depend on the outputs). A cached
    /// realization whose output is gone from the store (collected) is run
    /// again under a retry key.
    fn realize(
        &self,
        engine: &Engine,
        plan: &Plan,
        result: &mut BuildResult,
    ) -> Result<BTreeMap<String, RealizedEntry>, SessionError> {
        let installables: std::collections::BTreeSet<&String> = plan
            .deployments
            .iter()
            .flat_map(|d| &d.services)
            .flat_map(|s| &s.nix)
            .collect();
        let mut realized = BTreeMap::new();
        if installables.is_empty() {
            return Ok(realized);
        }
        let root = &self.workspace.root;
        let mut pending: Vec<&String> = installables.into_iter().collect();
        for retry in [false, true] {
            let mut graph = Graph::new();
            let mut ids = Vec::new();
            for installable in &pending {
                let Some(mut task) = crate::nix::RealizeTask::new(root, installable) else {
                    continue;
                };
                task.retry = retry;
                result
                    .inputs
                    .extend(task.files.iter().map(|(_, path)| path.clone()));
                ids.push(((*installable).clone(), graph.add(task, &[])));
            }
            let report = Arc::new(engine.run(graph)?);
            self.absorb(&report, result);
            let mut gone = Vec::new();
            for (installable, task) in ids {
                let Ok(bytes) = report.output(task) else {
                    continue; // failed: reported by `absorb`
                };
                let realization: n2d_modules::nix::Realization = match serde_json::from_slice(
                    &bytes,
                ) {
                    Ok(realization) => realization,
                    Err(e) => {
                        result.errors.push(format!(
                                "error: the realization of `{installable}` is unreadable (please report this bug): {e}"
                            ));
                        continue;
                    }
                };
                if !crate::nix::is_present(&realization) && !retry {
                    gone.push(installable);
                    continue;
                }
                // The outputs are inputs of the no-op stamp: one collected
                // by Nix's garbage collector makes the next build realize it
                // again instead of trusting the stamp.
                result
                    .inputs
                    .extend(realization.outputs.values().map(PathBuf::from));
                realized.insert(
                    installable,
                    RealizedEntry {
                        report: report.clone(),
                        task,
                        realization,
                    },
                );
            }
            if gone.is_empty() {
                break;
            }
            pending.retain(|i| gone.contains(i));
        }
        Ok(realized)
    }

    /// Adds a stage's counts, explanations, errors and notices.
    fn absorb(&self, report: &Report, result: &mut BuildResult) {
        result.summary.merge(report.summary());
        for id in report.ids() {
            match &report.outcome(id).status {
                Status::Executed(_) => {
                    if let Some(why) = report.explain(id) {
                        result
                            .explanations
                            .push((report.identity(id).to_string(), why));
                    }
                }
                Status::Failed(error) => result
                    .errors
                    .push(describe_failure(report.identity(id), error)),
                _ => {}
            }
        }
        result
            .notices
            .extend(report.notices().iter().map(|n| n.message.clone()));
        result.notices.extend(
            self.cache
                .get()
                .into_iter()
                .flat_map(|c| c.take_notices())
                .map(|n| n.message),
        );
    }
}

/// A realized Nix package: the stage report holding its task, and what it
/// gave.
struct RealizedEntry {
    report: Arc<Report>,
    task: TaskId,
    realization: n2d_modules::nix::Realization,
}

fn root_file(workspace: &Workspace) -> PathBuf {
    workspace.root.join(n2d_modules::workspace::WORKSPACE_FILE)
}

/// The rules by target.
type Rules = BTreeMap<&'static str, Arc<dyn Rule>>;

/// The rules by target and the option set they extend: the core
/// declarations and each target's.
pub(crate) struct Declared {
    pub(crate) rules: Rules,
    pub(crate) options: Arc<OptionSet>,
    /// Identifies the declarations: part of Plan and Resolve keys.
    pub(crate) digest: String,
}

impl Declared {
    /// Every declaration is a constant of this executable (tested for each
    /// target), so an invalid one is a bug, reported as `OptionSet::core`
    /// reports one of its own.
    fn new() -> Declared {
        let mut options = OptionSet::core();
        // Their texts identify them, without writing the parsed set out
        // as the option reference to hash it.
        let mut hasher = blake3::Hasher::new();
        hasher.update(n2d_modules::options::CORE_OPTIONS.as_bytes());
        let mut rules = BTreeMap::new();
        for rule in n2d_rules::all() {
            let declarations = rule.options();
            if !declarations.is_empty() {
                options
                    .extend(rule.target(), declarations)
                    .unwrap_or_else(|error| {
                        panic!(
                            "the options of the `{}` target are invalid (a bug):\n{error}",
                            rule.target()
                        )
                    });
            }
            hasher.update(rule.target().as_bytes());
            hasher.update(declarations.as_bytes());
            rules.insert(rule.target(), rule);
        }
        Declared {
            rules,
            options: Arc::new(options),
            digest: hasher.finalize().to_hex().to_string(),
        }
    }
}

/// The option set with every target's declarations: what `n2d show` and
/// `n2d options` use outside a build.
pub fn option_set() -> OptionSet {
    (*Declared::new().options).clone()
}

/// The engine explains a task within its stage; a task of a later stage
/// that ran because an imported output changed ("output of eval //web
/// changed") is explained by the reason that earlier task ran, down to the
/// file or value that changed.
fn follow_across_stages(explanations: Vec<(String, String)>) -> Vec<(String, String)> {
    const OUTPUT_OF: &str = "output of ";
    // Only reasons naming an earlier output need following: on a cold
    // build, none do (23,000 explanations, read on one thread between the
    // last stage and the snapshot).
    if !explanations.iter().any(|(_, why)| why.contains(OUTPUT_OF)) {
        return explanations;
    }
    let known: HashMap<&str, &str> = explanations
        .iter()
        .map(|(identity, why)| (identity.as_str(), why.as_str()))
        .collect();
    let expand = |why: &str| -> String {
        if !why.contains(OUTPUT_OF) {
            return why.to_string();
        }
        let mut causes: Vec<&str> = Vec::new();
        let mut todo: Vec<&str> = why.split(", ").collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(cause) = todo.pop() {
            if !seen.insert(cause) {
                continue;
            }
            let earlier = cause
                .strip_prefix(OUTPUT_OF)
                .and_then(|rest| rest.strip_suffix(" changed"))
                .and_then(|identity| known.get(identity));
            match earlier {
                Some(reason) => todo.extend(reason.split(", ")),
                None if !causes.contains(&cause) => causes.push(cause),
                None => {}
            }
        }
        causes.reverse();
        causes.join(", ")
    };
    explanations
        .par_iter()
        .map(|(identity, why)| (identity.clone(), expand(why)))
        .collect()
}

/// One message for a failed task: a module error is already a full
/// rustc-style message; anything else gets the task's identity.
fn describe_failure(identity: &str, error: &TaskError) -> String {
    if let TaskError::Run(inner) = error {
        if let Some(module_error) = inner.downcast_ref::<n2d_modules::Error>() {
            return module_error.to_string();
        }
        return format!("error: {identity}: {inner}");
    }
    format!("error: {identity}: {error}")
}

/// The notice of a cache that failed to flush: the build's outputs stand,
/// the next build may run again what this one ran.
fn cache_failed(error: &n2d_cache::CacheError) -> String {
    format!("the cache failed ({error}); the build goes on without it")
}
