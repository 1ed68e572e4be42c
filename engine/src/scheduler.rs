//! [`Engine`]: runs a [`Graph`] on a rayon thread pool, task by task:
//! skip if a dependency failed, declare inputs, hash files, compute the key,
//! serve from the cache or run, record.
//!
//! Scheduling: every task has a counter of unfinished dependencies; a task
//! whose counter reaches zero is ready. A worker that finishes a task keeps
//! one newly ready dependant for itself and spawns the others, so a cached
//! chain runs without going through the pool's queues while independent work
//! spreads over every thread.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use n2d_cache::{ActionRecord, Cache, CacheError, Digest, IdentityLookup};

use crate::explain::{self, CurrentInputs};
use crate::files;
use crate::graph::{Graph, TaskId, Work};
use crate::key::{self, KeyParts};
use crate::report::{Outcome, Reason, Report, RunState, SkipReason, Status, Summary};
use crate::task::{Caching, Inputs, RunContext, Task};
use crate::{EngineError, TaskError};

/// How an [`Engine`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Worker threads; at least 1.
    pub jobs: usize,
    pub on_failure: OnFailure,
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            on_failure: OnFailure::Stop,
        }
    }
}

/// What happens to the rest of the graph after a task fails. Its dependants
/// are skipped either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    /// No new task starts; the ones running finish.
    Stop,
    /// Every task that does not depend on a failure still runs.
    KeepGoing,
}

/// Reported to the progress callback. The engine itself prints nothing.
#[derive(Debug)]
pub enum Progress<'a> {
    /// A task is about to run (it was not found in the cache).
    Started {
        id: TaskId,
        kind: &'static str,
        identity: &'a str,
    },
    /// A task is done, whatever its outcome (imported outputs excepted).
    Finished {
        id: TaskId,
        identity: &'a str,
        outcome: &'a Outcome,
    },
}

/// Runs graphs against one cache. Reusable: staged builds call
/// [`Engine::run`] once per stage.
pub struct Engine {
    cache: Arc<Cache>,
    pool: rayon::ThreadPool,
    on_failure: OnFailure,
    progress: Option<ProgressCallback>,
    after_read: Option<ReadHook>,
}

type ProgressCallback = Box<dyn Fn(Progress<'_>) + Send + Sync>;
type ReadHook = Box<dyn Fn(&Path) + Send + Sync>;

impl Engine {
    pub fn new(cache: Arc<Cache>, config: EngineConfig) -> Result<Engine, EngineError> {
        let jobs = config.jobs.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|index| format!("n2d-worker-{index}"))
            .build()
            .map_err(|source| EngineError::ThreadPool { jobs, source })?;
        Ok(Engine {
            cache,
            pool,
            on_failure: config.on_failure,
            progress: None,
            after_read: None,
        })
    }

    /// Calls `callback` from worker threads as tasks start and finish.
    pub fn on_progress(&mut self, callback: impl Fn(Progress<'_>) + Send + Sync + 'static) {
        self.progress = Some(Box::new(callback));
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Test hook: called with the path of each input file the engine reads
    /// while hashing, between the read and the second stat, to simulate a
    /// file that changes while the build reads it.
    #[doc(hidden)]
    pub fn set_after_read_hook_for_tests(&mut self, hook: impl Fn(&Path) + Send + Sync + 'static) {
        self.after_read = Some(Box::new(hook));
    }

    /// Runs every task of `graph`. Task failures are outcomes in the report;
    /// an error means the graph itself is wrong (a cycle, an identity used
    /// twice). Flushes the cache at the end.
    pub fn run(&self, graph: Graph) -> Result<Report, EngineError> {
        self.run_graph(graph, true)
    }

    /// Runs `graph` as [`Engine::run`] does, but leaves the cache's flush
    /// to the caller: one that runs several graphs as one build flushes
    /// once, at its end, instead of once per graph on its critical path.
    pub fn run_unflushed(&self, graph: Graph) -> Result<Report, EngineError> {
        self.run_graph(graph, false)
    }

    fn run_graph(&self, graph: Graph, flush: bool) -> Result<Report, EngineError> {
        graph.validate()?;
        let count = graph.nodes.len();
        let state = Arc::new(RunState {
            nodes: graph.nodes,
            outcomes: (0..count).map(|_| OnceLock::new()).collect(),
            outputs: (0..count).map(|_| Mutex::new(None)).collect(),
            cache: self.cache.clone(),
        });
        let run = Run {
            engine: self,
            state: &state,
            pending: state
                .nodes
                .iter()
                .map(|node| AtomicUsize::new(node.dependencies.len()))
                .collect(),
            unfinished_dependants: state
                .nodes
                .iter()
                .map(|node| {
                    let frees = matches!(&node.work, Work::Run(task) if task.frees_output());
                    AtomicUsize::new(if frees { node.dependants.len() } else { 0 })
                })
                .collect(),
            stopped: AtomicBool::new(false),
            cache_problem_reported: AtomicBool::new(false),
        };
        let roots: Vec<TaskId> = (0..count as u32)
            .map(TaskId)
            .filter(|id| state.nodes[id.index()].dependencies.is_empty())
            .collect();
        self.pool.scope(|scope| {
            for root in roots {
                let run = &run;
                scope.spawn(move |scope| run.process_chain(scope, root));
            }
        });
        if flush {
            if let Err(error) = self.cache.flush() {
                run.cache_problem(&error);
            }
        }
        let mut summary = Summary::default();
        for id in 0..count as u32 {
            summary.count(state.outcome(TaskId(id)));
        }
        Ok(Report {
            state,
            summary,
            notices: self.cache.take_notices(),
        })
    }
}

/// The mutable side of one run.
struct Run<'e> {
    engine: &'e Engine,
    state: &'e RunState,
    /// Unfinished dependency edges per task; ready at zero.
    pending: Vec<AtomicUsize>,
    /// Per task whose output is freed after use ([`Task::frees_output`]),
    /// its dependency edges to dependants that have not finished; zero for
    /// the other tasks.
    unfinished_dependants: Vec<AtomicUsize>,
    /// Set by the first failure; with [`OnFailure::Stop`] no task starts after.
    stopped: AtomicBool,
    cache_problem_reported: AtomicBool,
}

impl<'e> Run<'e> {
    fn process_chain<'s>(&'s self, scope: &rayon::Scope<'s>, first: TaskId) {
        let mut next = Some(first);
        while let Some(id) = next.take() {
            let outcome = self.process(id);
            if !matches!(outcome.status, Status::Imported) {
                self.progress(Progress::Finished {
                    id,
                    identity: self.state.nodes[id.index()].work.identity(),
                    outcome: &outcome,
                });
            }
            // The outcome is set before dependants are released: the
            // AcqRel decrement publishes it to whoever processes them.
            let _ = self.state.outcomes[id.index()].set(outcome);
            self.release_dependencies(id);
            for &dependant in &self.state.nodes[id.index()].dependants {
                if self.pending[dependant.index()].fetch_sub(1, Ordering::AcqRel) == 1 {
                    if next.is_none() {
                        next = Some(dependant);
                    } else {
                        scope.spawn(move |scope| self.process_chain(scope, dependant));
                    }
                }
            }
        }
    }

    /// Frees the outputs that `id`, now finished, was the last dependant to
    /// need (a dependant holds its own reference while it runs).
    fn release_dependencies(&self, id: TaskId) {
        for &dependency in &self.state.nodes[id.index()].dependencies {
            let unfinished = &self.unfinished_dependants[dependency.index()];
            if unfinished.load(Ordering::Relaxed) > 0
                && unfinished.fetch_sub(1, Ordering::AcqRel) == 1
            {
                *self.state.outputs[dependency.index()]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
            }
        }
    }

    fn process(&self, id: TaskId) -> Outcome {
        let node = &self.state.nodes[id.index()];
        let kind = node.work.kind();
        let skipped = |reason| Outcome {
            kind,
            status: Status::Skipped(reason),
            output: None,
            key: None,
            duration: Duration::ZERO,
            files: Vec::new(),
        };
        for &dependency in &node.dependencies {
            match &self.state.outcome(dependency).status {
                Status::Failed(_) => {
                    let failed = self.state.nodes[dependency.index()].work.identity();
                    return skipped(SkipReason::DependencyFailed(failed.to_owned()));
                }
                Status::Skipped(reason) => return skipped(reason.clone()),
                _ => {}
            }
        }
        if self.engine.on_failure == OnFailure::Stop && self.stopped.load(Ordering::Acquire) {
            return skipped(SkipReason::BuildStopped);
        }
        match &node.work {
            Work::Imported { kind, output, .. } => Outcome {
                kind,
                status: Status::Imported,
                output: Some(*output),
                key: None,
                duration: Duration::ZERO,
                files: Vec::new(),
            },
            Work::Run(task) => {
                let start = Instant::now();
                let TaskResult {
                    status,
                    output,
                    key,
                    files,
                } = match catch_unwind(AssertUnwindSafe(|| self.process_task(id, &**task))) {
                    Ok(result) => result,
                    Err(panic) => TaskResult::failed(panicked(panic), None),
                };
                if matches!(status, Status::Failed(_)) {
                    self.stopped.store(true, Ordering::Release);
                }
                Outcome {
                    kind,
                    status,
                    output,
                    key,
                    duration: start.elapsed(),
                    files,
                }
            }
        }
    }

    fn process_task(&self, id: TaskId, task: &dyn Task) -> TaskResult {
        let failed = |error: TaskError| TaskResult::failed(error, None);
        let cache = &*self.state.cache;
        let node = &self.state.nodes[id.index()];
        let identity = task.identity();

        let mut inputs = Inputs::default();
        task.inputs(&mut inputs);
        let Inputs {
            mut values,
            files: mut file_inputs,
        } = inputs;
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        file_inputs.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if let Some(name) = first_duplicate(values.iter().map(|v| &v.0))
            .or(first_duplicate(file_inputs.iter().map(|f| &f.name)))
        {
            return failed(TaskError::DuplicateInput { name: name.clone() });
        }

        let mut file_hashes = Vec::with_capacity(file_inputs.len());
        let mut file_bytes = Vec::with_capacity(file_inputs.len());
        let mut unstable: Option<String> = None;
        for input in &file_inputs {
            match files::hash_file(cache, &input.path, self.engine.after_read.as_deref()) {
                Ok((hashed, problem)) => {
                    if let Some(problem) = problem {
                        self.cache_problem(&problem);
                    }
                    if !hashed.stable && unstable.is_none() {
                        unstable = Some(input.name.clone());
                    }
                    file_hashes.push((input.name.clone(), hashed.hash));
                    file_bytes.push(hashed.bytes);
                }
                Err(source) => {
                    return failed(TaskError::InputFile {
                        name: input.name.clone(),
                        path: input.path.clone(),
                        source,
                    })
                }
            }
        }

        let dependency_digests: Vec<Digest> = node
            .dependencies
            .iter()
            .map(|&dependency| {
                self.state
                    .outcome(dependency)
                    .output
                    .expect("a dependency that neither failed nor was skipped has an output")
            })
            .collect();
        let version = task.version();
        let key = key::task_key(&KeyParts {
            kind: task.kind(),
            version,
            values: &values,
            files: &file_hashes,
            dependencies: &dependency_digests,
        });
        let named_dependencies = || -> Vec<(String, Digest)> {
            node.dependencies
                .iter()
                .zip(&dependency_digests)
                .map(|(&dependency, digest)| {
                    (
                        self.state.nodes[dependency.index()]
                            .work
                            .identity()
                            .to_owned(),
                        *digest,
                    )
                })
                .collect()
        };

        let caching = task.caching();
        // What the lookup read of the identity record, for the reason.
        let mut looked_up = None;
        if caching == Caching::Cached && unstable.is_none() {
            let lookup = self.lookup(identity, &key, || {
                let dependencies = named_dependencies();
                explain::record(
                    &CurrentInputs {
                        key,
                        version,
                        values: &values,
                        files: &file_hashes,
                        dependencies: &dependencies,
                    },
                    Digest([0; 32]),
                )
            });
            match lookup {
                Ok(output) => {
                    return TaskResult {
                        status: Status::Cached,
                        output: Some(output),
                        key: Some(key),
                        files: file_hashes,
                    }
                }
                Err(lookup) => looked_up = lookup,
            }
        }

        let dependencies = named_dependencies();
        let current = CurrentInputs {
            key,
            version,
            values: &values,
            files: &file_hashes,
            dependencies: &dependencies,
        };
        let reason = match (caching, &unstable) {
            (Caching::AlwaysRun, _) => Reason::AlwaysRuns,
            (Caching::Cached, Some(file)) => Reason::UnstableInput { file: file.clone() },
            (Caching::Cached, None) => {
                let previous = cache
                    .identity_record_after(identity, looked_up.as_ref())
                    .unwrap_or_else(|error| {
                        self.cache_problem(&error);
                        None
                    });
                explain::reason(previous.as_ref(), &current)
            }
        };
        self.progress(Progress::Started {
            id,
            kind: task.kind(),
            identity,
        });

        let mut dependency_outputs = Vec::with_capacity(node.dependencies.len());
        for &dependency in &node.dependencies {
            match self.state.load_output(dependency) {
                Ok(bytes) => dependency_outputs.push(bytes),
                Err(error) => {
                    return failed(TaskError::DependencyOutput {
                        identity: self.state.nodes[dependency.index()]
                            .work
                            .identity()
                            .to_owned(),
                        source: Box::new(error),
                    })
                }
            }
        }
        let mut consistent = unstable.is_none();
        let mut loaded = Vec::with_capacity(file_inputs.len());
        for ((input, (name, hash)), bytes) in file_inputs.iter().zip(&file_hashes).zip(file_bytes) {
            let bytes = match bytes {
                Some(bytes) => bytes,
                None => match files::read_for_run(&input.path, hash) {
                    Ok((bytes, matches)) => {
                        if !matches {
                            consistent = false;
                            if let Err(error) = cache.forget_file_state(&input.path) {
                                self.cache_problem(&error);
                            }
                            cache.notice(format!("{name} changed while the build read it; {identity} will run again in the next build"));
                        }
                        bytes
                    }
                    Err(source) => {
                        return failed(TaskError::InputFile {
                            name: name.clone(),
                            path: input.path.clone(),
                            source,
                        })
                    }
                },
            };
            loaded.push((name.clone(), bytes));
        }
        if let Some(file) = &unstable {
            cache.notice(format!("{file} changed while the build read it; {identity} will run again in the next build"));
        }

        let context = RunContext {
            dependencies: &dependency_outputs,
            files: &loaded,
        };
        let output = match task.run(&context) {
            Ok(output) => output,
            Err(error) => return TaskResult::failed(TaskError::Run(error), Some(key)),
        };
        let digest = Digest::of(&output);
        if caching == Caching::Cached && consistent {
            self.record(identity, &current, digest, &output);
        }
        *self.state.outputs[id.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Arc::from(output));
        TaskResult {
            status: Status::Executed(reason),
            output: Some(digest),
            key: Some(key),
            files: if consistent { file_hashes } else { Vec::new() },
        }
    }

    /// The cached output for `key`: by the identity's last key first (one
    /// lookup, the no-op path), else by the action cache, in which case the
    /// identity record is pointed at it for the next build. On a miss, what
    /// was read of the identity record (`None` if reading failed).
    fn lookup(
        &self,
        identity: &str,
        key: &Digest,
        record: impl FnOnce() -> n2d_cache::IdentityRecord,
    ) -> Result<Digest, Option<IdentityLookup>> {
        let cache = &*self.state.cache;
        // No blob-existence check here: records never outlive their blobs
        // (gc and verify delete both), and a blob lost anyway (a crash, outside
        // damage) is rebuilt when its bytes are needed (`load_output`).
        let looked_up = match cache.identity_lookup(identity) {
            Ok(lookup) => {
                if let Some(head) = lookup.head.filter(|head| head.key == *key) {
                    cache.note_use(identity, &head);
                    return Ok(head.output);
                }
                Some(lookup)
            }
            Err(error) => {
                self.cache_problem(&error);
                None
            }
        };
        match cache.action(key) {
            Ok(Some(action)) => {
                let identity_record = n2d_cache::IdentityRecord {
                    output: action.output,
                    ..record()
                };
                if let Err(error) = cache.put_identity(identity, &identity_record) {
                    self.cache_problem(&error);
                }
                cache.note_blob_use(&action.output);
                Ok(action.output)
            }
            Ok(None) => Err(looked_up),
            Err(error) => {
                self.cache_problem(&error);
                Err(looked_up)
            }
        }
    }

    /// Stores an executed task's output, action record and identity record,
    /// blob first: a crash in between leaves a record-less blob, never a
    /// record without its blob.
    fn record(&self, identity: &str, current: &CurrentInputs<'_>, digest: Digest, output: &[u8]) {
        let cache = &*self.state.cache;
        let result = cache
            .put_blob_with_digest(&digest, output)
            .and_then(|()| {
                cache.put_action(
                    &current.key,
                    &ActionRecord {
                        output: digest,
                        output_len: output.len() as u64,
                    },
                )
            })
            .and_then(|()| cache.put_identity(identity, &explain::record(current, digest)));
        if let Err(error) = result {
            self.cache_problem(&error);
        }
    }

    fn progress(&self, event: Progress<'_>) {
        if let Some(callback) = &self.engine.progress {
            callback(event);
        }
    }

    /// A cache that fails is bypassed (a miss, an unrecorded result) and
    /// reported once per run.
    fn cache_problem(&self, error: &CacheError) {
        if !self.cache_problem_reported.swap(true, Ordering::AcqRel) {
            self.state.cache.notice(format!(
                "the cache failed ({}); the build goes on without it",
                error_chain(error)
            ));
        }
    }
}

impl RunState {
    /// The output bytes of a finished task: from memory, else from the CAS
    /// (verified), else rebuilt by running the task again.
    pub(crate) fn load_output(&self, id: TaskId) -> Result<Arc<[u8]>, TaskError> {
        // Held while rebuilding, so that a lost output is rebuilt once; the
        // graph is acyclic, so nested loads cannot wait on each other in a
        // circle.
        let mut slot = self.outputs[id.index()]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(bytes) = &*slot {
            return Ok(bytes.clone());
        }
        let node = &self.nodes[id.index()];
        let no_output = || TaskError::NoOutput {
            identity: node.work.identity().to_owned(),
        };
        let digest = self.outcomes[id.index()]
            .get()
            .and_then(|outcome| outcome.output)
            .ok_or_else(no_output)?;
        let bytes = match &node.work {
            Work::Imported {
                source, source_id, ..
            } => source.load_output(*source_id)?,
            Work::Run(task) => match self.cache.get_blob(&digest) {
                Ok(Some(bytes)) => Arc::from(bytes),
                Ok(None) | Err(_) => self.rebuild(id, &**task, digest).inspect_err(|_| {
                    // Not rebuildable now: the next build must run the task
                    // rather than trust records of an output that is gone.
                    if let Some(key) = self.outcomes[id.index()].get().and_then(|o| o.key) {
                        let _ = self.cache.forget_task(task.identity(), &key);
                    }
                })?,
            },
        };
        *slot = Some(bytes.clone());
        Ok(bytes)
    }

    fn rebuild(
        &self,
        id: TaskId,
        task: &dyn Task,
        expected: Digest,
    ) -> Result<Arc<[u8]>, TaskError> {
        let node = &self.nodes[id.index()];
        let dependencies = node
            .dependencies
            .iter()
            .map(|&dependency| self.load_output(dependency))
            .collect::<Result<Vec<_>, _>>()?;
        let output = crate::detached::run_detached(task, &dependencies)?;
        if Digest::of(&output) != expected {
            return Err(TaskError::Irreproducible {
                identity: task.identity().to_owned(),
            });
        }
        // Rebuilt: store it again so that the next build finds it. A cache
        // that fails here only costs another rebuild later.
        let _ = self.cache.put_blob_with_digest(&expected, &output);
        Ok(Arc::from(output))
    }
}

/// What processing one task gave, before timing is added.
struct TaskResult {
    status: Status,
    output: Option<Digest>,
    key: Option<Digest>,
    files: Vec<(String, Digest)>,
}

impl TaskResult {
    fn failed(error: TaskError, key: Option<Digest>) -> TaskResult {
        TaskResult {
            status: Status::Failed(Arc::new(error)),
            output: None,
            key,
            files: Vec::new(),
        }
    }
}

fn first_duplicate<'a>(mut sorted: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    let mut previous = sorted.next()?;
    for name in sorted {
        if name == previous {
            return Some(name);
        }
        previous = name;
    }
    None
}

pub(crate) fn panicked(panic: Box<dyn std::any::Any + Send>) -> TaskError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    TaskError::Panicked { message }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
