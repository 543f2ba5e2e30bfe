//! The `helora` command. Everything lives in the library; this file only maps the
//! outcome to an exit code, so that errors are reported once, on stderr, without a panic.

use clap::Parser;

// HE polynomials are hundreds of kilobytes and short-lived: glibc's allocator trims and
// re-faults them on every operation (a LoRA apply ran 2.7× slower); mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
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
