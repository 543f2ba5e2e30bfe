//! Helpers shared by the HE crate's integration tests (each test binary uses its own subset).
#![allow(dead_code)]

use std::io::Write;

/// The GPU skip policy: prints why a GPU test is skipped, straight to the stderr handle
/// (libtest captures `eprintln!` of passing tests, and a skip must show in every run's log),
/// or fails when HELORA_REQUIRE_GPU=1 (the GPU machine's and the stand-in driver's runs).
pub fn skip_gpu(reason: &str) {
    assert_ne!(
        std::env::var("HELORA_REQUIRE_GPU").as_deref(),
        Ok("1"),
        "HELORA_REQUIRE_GPU=1 but the CUDA backend is not available: {reason}"
    );
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}
