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
