//! The n2d build graph: the tasks that join the module system, the rules,
//! the engine and the cache (Parse → Eval → Plan → Resolve → Render →
//! Assemble → Materialize), and materialization of outputs on disk.
pub mod materialize;
