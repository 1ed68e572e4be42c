//! The n2d build graph: the tasks that join the module system, the rules,
//! the engine and the cache (Parse → Eval → Plan → Resolve → Render →
//! Assemble → Materialize), and materialization of outputs on disk.
//!
//! `session` runs a build in stages; `tasks` holds one struct per task
//! kind; `plan` decides what a request builds; `codec` encodes render
//! outputs for the cache; `materialize` writes target folders.
mod binary;
mod codec;
mod delta;
mod direct;
mod interface;
mod launch;
mod layers;
pub mod materialize;
pub mod nix;
mod pages;
pub mod plan;
mod replace;
mod session;
mod stamp;
mod tasks;
mod trace;

pub use direct::evaluate_workspace;
pub use launch::LaunchRequest;
pub use pages::{allow_huge_pages, small_pages};
pub use session::{
    build_workspace, option_set, BuildRequest, BuildResult, ProgressFn, Session, SessionError,
};
pub use trace::enable_trace;

/// Bounds the threads every part of n2d works on to `jobs`, not only the
/// engine's tasks (whose pool follows `BuildRequest::jobs`): discovery,
/// stamp checks, materialization and snapshot writes run on rayon's global
/// pool, which `--jobs 1` keeps to one thread too. Call it before any
/// work: once the pool exists, it changes nothing.
pub fn limit_threads(jobs: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build_global();
}
