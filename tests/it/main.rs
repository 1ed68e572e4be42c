//! The integration tests of the `n2d` binary: one binary, one module per
//! behaviour, each running `n2d` in temporary workspaces.
mod build;
mod delta;
mod examples;
mod images;
mod incremental;
mod inspect;
mod launch;
mod nix;
mod nixlib;
mod support;
mod up;
mod watch;
