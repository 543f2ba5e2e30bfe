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
    // Errors are reported as one line each. candle (and anyhow) capture a backtrace into
    // their errors when RUST_BACKTRACE is set, and candle's message prints it: keep those
    // for panics only, unless the user asks for them with RUST_LIB_BACKTRACE.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // Sound here: no other thread exists yet.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    // mimalloc purges pages that stay free for 10 ms by decommitting them, and the next
    // token faults them back in (zeroed by the kernel: 15 % of a secure decode's CPU
    // time). Purging by reset instead leaves the pages mapped until the system needs them.
    // SAFETY: sets a plain integer option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DECOMMITS, 0) };
    // Chat templates render in a child run of this binary, with bounded memory.
    helora_engine::model::chat_process::render_in_children_of_this_binary();
    match cli::run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
