//! The `n2d` command line: glue between the library crates. Parses the
//! command line (clap), finds the workspace, calls the libraries, prints
//! their results and maps them to exit codes: 0 ok, 1 the definitions or a
//! task failed, 2 usage.
mod cli;
mod commands;
mod progress;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
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
