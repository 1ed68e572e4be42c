//! Integration tests of the engine: toy tasks that log each execution, so
//! that every test asserts the SET of tasks that ran (salsa style).
mod damage;
mod failure;
mod files;
mod gc;
mod graph_errors;
mod incremental;
mod keys;
mod memory;
mod parallel;
mod random_dags;
mod staged;
mod support;
