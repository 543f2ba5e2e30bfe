//! The `helora` command. Everything lives in the library; this file only maps the
//! outcome to an exit code, so that errors are reported once, on stderr, without a panic.

use clap::Parser;
use helora_engine::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
