//! `n2d watch`: build, launch with the built-in supervisor, then re-build on
//! every saved change and apply the difference to the running services.
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::WatchArgs;

pub fn run(_cwd: &Path, _args: WatchArgs) -> Result<ExitCode> {
    anyhow::bail!("n2d watch is being written")
}
