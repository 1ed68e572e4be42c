//! A generic, incremental task engine. It knows nothing of services, targets
//! or labels: it runs any [`Task`].
//!
//! The caller builds a [`Graph`] of tasks (each declares its [`Inputs`]:
//! named values and files; dependencies are given when adding it), then
//! [`Engine::run`] executes it on a rayon pool and returns a [`Report`].
//! For each task the engine computes a key (`key`: blake3 over kind,
//! version, inputs and the OUTPUT digests of its dependencies), looks it up
//! in the [`n2d_cache::Cache`] and runs the task only on a miss. Because
//! dependants see output digests, a task that ran again but produced the same
//! bytes stops propagation (early cutoff).
//!
//! The cached path reads no blob: a cached task's output is loaded only when
//! a dependant runs or the caller asks ([`Report::output`]). An output that is
//! damaged or gone by then is rebuilt by running its task again.
//!
//! Staged builds: run a graph, read outputs from its report, then build a
//! second graph whose tasks depend on first-stage outputs through
//! [`Graph::import`] (or take them as named values); [`Summary::merge`] adds
//! the counts of the stages.
//!
//! Invariant kept by tasks: outputs hold no secret values (they are stored in
//! the cache as they are).
mod detached;
mod explain;
mod files;
mod graph;
mod key;
mod report;
mod scheduler;
mod task;

pub use detached::run_detached;
pub use graph::{Graph, TaskId};
pub use report::{Change, KindCounts, Outcome, Reason, Report, SkipReason, Status, Summary};
pub use scheduler::{Engine, EngineConfig, OnFailure, Progress};
pub use task::{Caching, Inputs, RunContext, RunError, Task};

use std::path::PathBuf;

/// Why a graph cannot run at all.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start {jobs} worker threads")]
    ThreadPool {
        jobs: usize,
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    #[error("dependency cycle between {}", tasks.join(", "))]
    Cycle { tasks: Vec<String> },
    #[error("two tasks have the identity `{identity}`")]
    DuplicateIdentity { identity: String },
}

/// Why a task failed (or why its output cannot be had).
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task's own error.
    #[error(transparent)]
    Run(RunError),
    #[error("input `{name}` is declared twice")]
    DuplicateInput { name: String },
    #[error("cannot read input file `{name}` from `{path}`")]
    InputFile {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot get the output of {identity}")]
    DependencyOutput {
        identity: String,
        #[source]
        source: Box<TaskError>,
    },
    #[error("{identity} has no output: it failed or was skipped")]
    NoOutput { identity: String },
    /// A lost output was rebuilt but came out different: the task reads
    /// something it does not declare.
    #[error("the output of {identity} was lost from the cache and running it again gave different bytes: the task is not deterministic")]
    Irreproducible { identity: String },
    #[error("the task panicked: {message}")]
    Panicked { message: String },
}
