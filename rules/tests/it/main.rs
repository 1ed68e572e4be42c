//! The integration tests of `n2d-rules`: one binary, one module per behaviour.
mod container_targets;
mod local_targets;
mod managers;
mod support;
