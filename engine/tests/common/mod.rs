//! Helpers shared by the engine's integration tests (each test binary uses its own subset).
#![allow(dead_code)]

use std::process::{Command, Output};

/// Runs the `helora` binary with `args`: the one cargo built for this test, or the one
/// `HELORA_BIN` names (scripts/gpu-run.sh runs a copied binary on the GPU machine).
pub fn helora(args: &[&str]) -> Output {
    let binary = std::env::var_os("HELORA_BIN").unwrap_or(env!("CARGO_BIN_EXE_helora").into());
    Command::new(binary)
        .args(args)
        .output()
        .expect("the helora binary runs")
}

/// Whether this run must not skip GPU tests (HELORA_REQUIRE_GPU=1: the GPU machine's and
/// the stand-in driver's runs).
pub fn require_gpu() -> bool {
    std::env::var("HELORA_REQUIRE_GPU").as_deref() == Ok("1")
}

/// The GPU skip policy: prints why a GPU test is skipped, straight to the stderr handle
/// (libtest captures `eprintln!` of passing tests, and a skip must show in every run's log),
/// or fails under [`require_gpu`].
pub fn skip_gpu(reason: &str) {
    assert!(
        !require_gpu(),
        "HELORA_REQUIRE_GPU=1 but there is no usable GPU: {reason}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {reason}");
}
