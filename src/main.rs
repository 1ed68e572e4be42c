//! The `n2d` command line: glue between the library crates. Parses the
//! command line (clap), finds the workspace, calls the libraries, prints
//! their results and maps them to exit codes: 0 ok, 1 the definitions or a
//! task failed, 2 usage.
//!
//! The built-in supervisor runs in a process of its own image: `n2d up`
//! execs it in place after its build, and `n2d watch` starts it as a child
//! ([`supervisor_command`]), so that the process that supervises never ran
//! a build: none of the build's heap, threads or code pages are in its
//! footprint, and forking a service from it is cheap. That image is the
//! small `n2d-supervise` executable installed next to this one; when it is
//! missing, this binary's hidden mode `n2d __supervise DIR` (recognised
//! before clap parses) runs the same supervisor.
/// A build allocates on every worker and frees across them; glibc's arenas
/// contend on that (ARCHITECTURE.md, "Dependencies").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;
mod commands;
mod progress;
mod watch;

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;

use n2d_supervisor::command_line::SUPERVISE_MODE;

/// The supervisor executable, next to this one.
const SUPERVISE_EXECUTABLE: &str = "n2d-supervise";

/// Transparent huge pages off before the first allocation (the runtime's,
/// before `main`): `n2d build` keeps them off (and turns them on in the
/// programs it starts), every other command turns them on again first
/// thing (`n2d_pipeline::pages`).
#[used]
#[link_section = ".init_array"]
static SMALL_PAGES_BEFORE_MAIN: extern "C" fn() = small_pages_before_main;

extern "C" fn small_pages_before_main() {
    n2d_pipeline::small_pages();
}

fn main() -> ExitCode {
    // Before clap: the supervisor's image must not touch the CLI's code.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == SUPERVISE_MODE)
    {
        n2d_pipeline::allow_huge_pages();
        return supervise(std::env::args_os().skip(2).collect());
    }
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Build(_)) {
        n2d_pipeline::allow_huge_pages();
    }
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
/// folder `dir`: `n2d-supervise` next to this executable, told which
/// supervisor build this `n2d` has and where to fall back to when it has
/// another (`n2d_supervisor::command_line`). Without it, this very binary's
/// hidden mode: `/proc/self/exe` rather than the path we were started as,
/// which a rebuild may have replaced meanwhile.
pub fn supervisor_command(dir: &Path, timestamps: bool, when_idle: WhenIdle) -> Command {
    let mut command = match supervise_executable() {
        Some((executable, n2d)) => {
            let mut command = Command::new(executable);
            command
                .arg("--build")
                .arg(n2d_supervisor::command_line::BUILD)
                .arg("--fallback")
                .arg(n2d);
            command
        }
        None => {
            let mut command = Command::new("/proc/self/exe");
            command.arg0(std::env::args_os().next().unwrap_or_else(|| "n2d".into()));
            command.arg(SUPERVISE_MODE);
            command
        }
    };
    if timestamps {
        command.arg("--timestamps");
    }
    if when_idle == WhenIdle::Stay {
        command.arg("--stay");
    }
    command.arg("--").arg(dir);
    command
}

/// `n2d-supervise` in this executable's folder, and this executable.
fn supervise_executable() -> Option<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let n2d = std::env::current_exe().ok()?;
    let executable = n2d.parent()?.join(SUPERVISE_EXECUTABLE);
    let metadata = executable.metadata().ok()?;
    (metadata.is_file() && metadata.permissions().mode() & 0o111 != 0).then_some((executable, n2d))
}

/// `n2d __supervise [--timestamps] [--stay] -- DIR`: supervises until the
/// run ends, prints its one-line summary and exits with its status.
fn supervise(arguments: Vec<OsString>) -> ExitCode {
    ExitCode::from(n2d_supervisor::command_line::main(arguments))
}
