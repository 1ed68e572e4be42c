//! The `n2d` command line: glue between the library crates. Parses the
//! command line (clap), finds the workspace, calls the libraries, prints
//! their results and maps them to exit codes: 0 ok, 1 the definitions or a
//! task failed, 2 usage.
//!
//! One hidden mode bypasses all of that: `n2d __supervise DIR` runs the
//! built-in supervisor on a procfile target folder ([`supervisor_command`]).
//! `n2d up` execs it in place after its build, and `n2d watch` starts it as
//! a child, so that the process that supervises is a fresh image of this
//! binary that never ran a build: none of the build's heap, threads or
//! code pages are in its footprint, and forking a service from it is cheap.
mod cli;
mod commands;
mod progress;
mod watch;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;

/// The first argument of the hidden supervise mode.
const SUPERVISE_MODE: &str = "__supervise";

fn main() -> ExitCode {
    // Before clap: the supervisor's image must not touch the CLI's code.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == SUPERVISE_MODE)
    {
        return supervise(std::env::args_os().skip(2).collect());
    }
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(error) => {
            // A library error already says what and where; print it once.
            let mut message = error.to_string();
            for cause in error.chain().skip(1) {
                message.push_str(&format!("\ncaused by: {cause}"));
            }
            if message.starts_with("error") {
                eprintln!("{message}");
            } else {
                eprintln!("error: {message}");
            }
            ExitCode::from(1)
        }
    }
}

/// Whether the supervisor keeps running when every service has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenIdle {
    /// `n2d up`: the run is over.
    Exit,
    /// `n2d watch`: the next build may start services again.
    Stay,
}

/// The command that runs the built-in supervisor on the procfile target
/// folder `dir` in the hidden mode of this very binary. `/proc/self/exe`
/// rather than the path we were started as: it is still this binary when
/// that path was replaced by a rebuild meanwhile.
pub fn supervisor_command(dir: &Path, timestamps: bool, when_idle: WhenIdle) -> Command {
    let mut command = Command::new("/proc/self/exe");
    command.arg0(std::env::args_os().next().unwrap_or_else(|| "n2d".into()));
    command.arg(SUPERVISE_MODE);
    if timestamps {
        command.arg("--timestamps");
    }
    if when_idle == WhenIdle::Stay {
        command.arg("--stay");
    }
    command.arg("--").arg(dir);
    command
}

/// `n2d __supervise [--timestamps] [--stay] -- DIR`: supervises until the
/// run ends, prints its one-line summary and exits with its status.
fn supervise(arguments: Vec<OsString>) -> ExitCode {
    let mut options = n2d_supervisor::Options::from_env();
    let mut dir: Option<PathBuf> = None;
    let mut rest = arguments.into_iter();
    while let Some(argument) = rest.next() {
        match argument.to_str() {
            Some("--timestamps") => options.timestamps = true,
            Some("--stay") => options.stay_when_idle = true,
            Some("--") => dir = rest.next().map(PathBuf::from),
            _ => {
                eprintln!("error: unexpected argument {argument:?} to {SUPERVISE_MODE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("error: {SUPERVISE_MODE} needs a target folder");
        return ExitCode::from(2);
    };
    match n2d_supervisor::run(&dir, options) {
        Ok(outcome) => {
            if !outcome.summary.is_empty() {
                eprintln!("{}", outcome.summary);
            }
            ExitCode::from(outcome.code.clamp(0, 255) as u8)
        }
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str(&format!("\ncaused by: {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}
