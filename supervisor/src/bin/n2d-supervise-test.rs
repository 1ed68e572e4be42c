//! `n2d-supervise DIR`: runs the supervisor on a procfile target folder in a
//! process of its own, for this crate's tests, which signal or kill it.
//! Users get the same loop from `n2d up` (`n2d __supervise`).
//! `--timestamps` adds times to the log prefixes. Exits with the run's status.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut dir = None;
    let mut options = n2d_supervisor::Options::from_env();
    for argument in std::env::args_os().skip(1) {
        if argument == "--timestamps" {
            options.timestamps = true;
        } else if dir.is_none() {
            dir = Some(PathBuf::from(argument));
        } else {
            eprintln!("usage: n2d-supervise [--timestamps] DIR");
            return ExitCode::from(2);
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: n2d-supervise [--timestamps] DIR");
        return ExitCode::from(2);
    };
    match n2d_supervisor::run(&dir, options) {
        Ok(outcome) => {
            eprintln!("n2d-supervise: {}", outcome.summary);
            ExitCode::from(u8::try_from(outcome.code).unwrap_or(1))
        }
        Err(error) => {
            let mut text = format!("n2d-supervise: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            eprintln!("{text}");
            ExitCode::from(1)
        }
    }
}
