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
pub mod plan;
mod session;
mod stamp;
mod tasks;

pub use direct::evaluate_workspace;
pub use launch::LaunchRequest;
pub use session::{option_set, BuildRequest, BuildResult, ProgressFn, Session, SessionError};
