//! `n2d-supervise-test [--timestamps] DIR`: the supervisor in a process of
//! its own for this crate's tests, which signal or kill it. The same entry
//! ([`n2d_supervisor::command_line::main`]) as the `n2d-supervise`
//! executable of the `n2d` package, which this crate cannot build (it would
//! depend on `n2d`), wrapped in std's runtime instead of its own.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(n2d_supervisor::command_line::main(
        std::env::args_os().skip(1),
    ))
}
