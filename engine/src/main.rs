//! The `helora` command. Everything lives in the library; this file only maps the
//! outcome to an exit code, so that errors are reported once, on stderr, without a panic.

use clap::Parser;

// HE polynomials are hundreds of kilobytes and short-lived: glibc's allocator trims and
// re-faults them on every operation (a LoRA apply ran 2.7× slower); mimalloc keeps them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use helora_engine::cli::{self, Cli};
use std::process::ExitCode;

/// `mi_option_purge_decommits` in mimalloc.h's `mi_option_e` (v2 and v3); the sys crate
/// exports no constant for it.
const MI_OPTION_PURGE_DECOMMITS: libmimalloc_sys::mi_option_t = 5;

fn main() -> ExitCode {
    // mimalloc purges pages that stay free for 10 ms by decommitting them, and the next
    // token faults them back in (zeroed by the kernel: 15 % of a secure decode's CPU
    // time). Purging by reset instead leaves the pages mapped until the system needs them.
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
