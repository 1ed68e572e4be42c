//! The supervisor as a process: `[--timestamps] [--stay] [--] DIR`, the
//! arguments of the `n2d-supervise` executable that `n2d up` and `n2d
//! watch` start, and of its fallback `n2d __supervise` ([`SUPERVISE_MODE`]).
//!
//! `n2d` also passes `--build <BUILD> --fallback <n2d>`: a supervisor of
//! another build (a stale `n2d-supervise` next to a rebuilt `n2d`: `cargo
//! run` builds only the binary it runs) does not run but execs `<n2d>
//! __supervise` with the same arguments, so the supervisor that runs is
//! always the one `n2d` was built with.
//!
//! [`main`] does itself the little that Rust's runtime would otherwise do
//! before `main`, because `n2d-supervise` skips that runtime (see its
//! source): ignore SIGPIPE, so that a vanished reader is an error and not
//! death, and make sure descriptors 0–2 are open, so that no pipe of ours
//! becomes someone's stdout.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::{run, Options};

/// The first argument of `n2d`'s hidden mode that runs [`main`].
pub const SUPERVISE_MODE: &str = "__supervise";

/// This build of the supervisor: a digest of the crate's sources.
pub const BUILD: &str = env!("N2D_SUPERVISOR_BUILD");

/// The command line, parsed.
#[derive(Debug, Default)]
struct Arguments {
    timestamps: bool,
    stay: bool,
    build: Option<OsString>,
    fallback: Option<PathBuf>,
    dir: Option<PathBuf>,
}

/// Runs the supervisor as this process's job; returns the exit status.
/// The summary (or the error) goes to stderr.
pub fn main(arguments: impl IntoIterator<Item = OsString>) -> u8 {
    prepare_process();
    let arguments = match parse(arguments) {
        Ok(arguments) => arguments,
        Err(problem) => {
            eprintln!("error: {problem}");
            eprintln!("usage: n2d-supervise [--timestamps] [--stay] [--] DIR");
            return 2;
        }
    };
    if let Some(build) = &arguments.build {
        if build != BUILD {
            return fall_back(&arguments);
        }
    }
    let Some(dir) = &arguments.dir else {
        eprintln!("usage: n2d-supervise [--timestamps] [--stay] [--] DIR");
        return 2;
    };
    let mut options = Options::from_env();
    options.timestamps = arguments.timestamps;
    options.stay_when_idle = arguments.stay;
    match run(dir, options) {
        Ok(outcome) => {
            if !outcome.summary.is_empty() {
                eprintln!("{}", outcome.summary);
            }
            outcome.code.clamp(0, 255) as u8
        }
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                message.push_str("\ncaused by: ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            eprintln!("{message}");
            1
        }
    }
}

fn parse(arguments: impl IntoIterator<Item = OsString>) -> Result<Arguments, String> {
    let mut parsed = Arguments::default();
    let mut rest = arguments.into_iter();
    while let Some(argument) = rest.next() {
        match argument.to_str() {
            Some("--timestamps") => parsed.timestamps = true,
            Some("--stay") => parsed.stay = true,
            Some("--build") => parsed.build = Some(rest.next().ok_or("--build needs a value")?),
            Some("--fallback") => {
                parsed.fallback = Some(rest.next().ok_or("--fallback needs a value")?.into());
            }
            Some("--") => {
                parsed.dir = Some(rest.next().ok_or("-- needs a target folder")?.into());
                break;
            }
            Some(flag) if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            _ if parsed.dir.is_none() => parsed.dir = Some(argument.into()),
            _ => return Err("one target folder only".into()),
        }
    }
    if rest.next().is_some() {
        return Err("one target folder only".into());
    }
    Ok(parsed)
}

/// Execs `<fallback> __supervise` with the same options; returns only on failure.
fn fall_back(arguments: &Arguments) -> u8 {
    let Some(fallback) = &arguments.fallback else {
        eprintln!("error: this supervisor is build {BUILD}, not the one asked for");
        return 2;
    };
    let mut command = std::process::Command::new(fallback);
    command.arg(SUPERVISE_MODE);
    if arguments.timestamps {
        command.arg("--timestamps");
    }
    if arguments.stay {
        command.arg("--stay");
    }
    if let Some(dir) = &arguments.dir {
        command.arg("--").arg(dir);
    }
    let error = command.exec();
    eprintln!("error: cannot run {}: {error}", fallback.display());
    1
}

fn prepare_process() {
    // SAFETY: plain system calls on descriptors 0–2 and the SIGPIPE disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        for fd in 0..3 {
            if libc::fcntl(fd, libc::F_GETFD) == -1 {
                // Lands on the lowest free descriptor: this one.
                libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            }
        }
    }
}
