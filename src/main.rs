//! The `authfault` binary: parse flags, start logging, run, exit.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = authfault::cli::Args::parse(); // clap prints usage and exits 2 itself
    let log = authfault::logging::init(authfault::cli::log_format(&args));
    let result = authfault::cli::run(args);
    drop(log); // flushes the log lines before the final message
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("authfault: {err:#}");
            ExitCode::from(2)
        }
    }
}
