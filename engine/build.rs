//! Records the commit the binary is built from (`HELORA_GIT_COMMIT`, "unknown" outside a
//! git checkout or without git), for the provenance of every benchmark report; compiles the
//! remote protocol (proto/helora/v1) into Rust.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

fn record_commit() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=HELORA_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself, the branch it names, and packed refs. Only
    // files that exist are named (a missing one would rerun this script on every build).
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        if Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// protox parses the .proto files in pure Rust, so a build needs no system protoc (and no
/// protoc binary is downloaded or vendored).
fn compile_protocol() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/helora/v1/helora.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["../proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    record_commit();
    compile_protocol()?;
    println!("cargo:rerun-if-changed=build.rs");
    Ok(())
}
