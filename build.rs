//! Compiles the CUDA kernels (kernels/*.cu) to PTX for sm_90 when nvcc is found, so that a
//! kernel that does not compile, or that spills registers, fails the build (and CI).
//!
//! nvcc is looked for in `NVCC`, then `CUDA_HOME/bin/nvcc`, then `PATH`. When found, each
//! kernel becomes `OUT_DIR/<name>.ptx` (embedded by src/backend/cuda/sources.rs) and the crate is
//! built with `cfg(helora_ptx)`; the PTX is also assembled to sm_90 cubin with `ptxas -v`,
//! whose register/spill report lands in `OUT_DIR/ptxas-report.txt`. Without nvcc the build
//! goes on and the kernels are compiled from their embedded sources by NVRTC at run time,
//! unless `HELORA_REQUIRE_NVCC=1` (CI) asks for nvcc.
//!
//! std only, and cargo reruns it only when kernels/ or one of those variables changes.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The GPU generation the PTX targets: the H100/H200 machines (the driver JIT-compiles it
/// for newer ones).
const ARCH: &str = "sm_90";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    for var in ["NVCC", "CUDA_HOME", "PATH", "HELORA_REQUIRE_NVCC"] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(helora_ptx)");
    if let Err(message) = run() {
        // Cargo shows a failed build script's stderr; keep the compiler's own words.
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_path("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_path("OUT_DIR")?);
    let required = env::var("HELORA_REQUIRE_NVCC").is_ok_and(|v| v == "1");
    let Some(nvcc) = find_nvcc()? else {
        if required {
            return Err(
                "HELORA_REQUIRE_NVCC=1 but no nvcc was found (looked at NVCC, \
                        CUDA_HOME/bin/nvcc and PATH); run `eval \"$(bash \
                        scripts/install-cuda.sh --env)\"` first"
                    .into(),
            );
        }
        return Ok(());
    };
    let kernel_dir = manifest_dir.join("kernels");
    let kernels = list_kernels(&kernel_dir)?;
    let include_flags = include_flags(&kernel_dir, &nvcc);

    // .cu → .ptx, all kernels at once (one nvcc each; they are independent).
    let ptx: Vec<PathBuf> = kernels
        .iter()
        .map(|name| out_dir.join(format!("{name}.ptx")))
        .collect();
    let jobs = kernels
        .iter()
        .zip(&ptx)
        .map(|(name, ptx)| {
            let mut cmd = Command::new(&nvcc);
            cmd.arg(format!("-arch={ARCH}"))
                .arg("-ptx")
                .args(&include_flags)
                .arg(kernel_dir.join(format!("{name}.cu")))
                .arg("-o")
                .arg(ptx);
            (format!("kernels/{name}.cu"), cmd)
        })
        .collect();
    run_all(jobs)?;

    // .ptx → sm_90 cubin: only for ptxas's register and spill report on exactly the PTX
    // that is embedded.
    let jobs = kernels
        .iter()
        .zip(&ptx)
        .map(|(name, ptx)| {
            let mut cmd = Command::new(&nvcc);
            cmd.arg(format!("-arch={ARCH}"))
                .args(["-cubin", "-Xptxas", "-v"])
                .arg(ptx)
                .arg("-o")
                .arg(out_dir.join(format!("{name}.cubin")));
            (format!("ptxas on {name}.ptx"), cmd)
        })
        .collect();
    let reports = run_all(jobs)?;

    let mut report = String::new();
    let mut spills = Vec::new();
    for (name, stderr) in kernels.iter().zip(&reports) {
        let functions = parse_ptxas(stderr);
        if functions.is_empty() {
            // Every kernel file has entry points; no report means its format changed.
            return Err(format!(
                "could not read ptxas's report for {name}.ptx:\n{stderr}"
            ));
        }
        for f in functions {
            let _ = writeln!(
                report,
                "{name}.cu {}: {} registers, {} bytes stack, {} bytes spill stores, {} bytes spill loads",
                f.name, f.registers, f.stack, f.spill_stores, f.spill_loads
            );
            if f.spill_stores > 0 || f.spill_loads > 0 {
                spills.push(format!(
                    "{name}.cu {}: {} bytes spill stores, {} bytes spill loads",
                    f.name, f.spill_stores, f.spill_loads
                ));
            }
        }
    }
    write(&out_dir.join("ptxas-report.txt"), &report)?;
    if !spills.is_empty() {
        return Err(format!(
            "ptxas reports register spills for {ARCH} (slow local memory on every access):\n  {}\n\
             full report:\n{report}",
            spills.join("\n  ")
        ));
    }
    println!("cargo::rustc-cfg=helora_ptx");
    Ok(())
}

fn env_path(var: &str) -> Result<std::ffi::OsString, String> {
    env::var_os(var).ok_or_else(|| format!("{var} is not set (is this run by cargo?)"))
}

/// nvcc from `NVCC` (which must then exist), else `CUDA_HOME/bin/nvcc`, else `PATH`.
fn find_nvcc() -> Result<Option<PathBuf>, String> {
    if let Some(nvcc) = env::var_os("NVCC").filter(|v| !v.is_empty()) {
        let nvcc = PathBuf::from(nvcc);
        // A bare name is looked up in PATH, as a shell would.
        let found = if nvcc.components().count() == 1 {
            search_path(&nvcc)
        } else {
            nvcc.is_file().then(|| nvcc.clone())
        };
        return found
            .map(Some)
            .ok_or_else(|| format!("NVCC={} is not a file", nvcc.display()));
    }
    if let Some(home) = env::var_os("CUDA_HOME").filter(|v| !v.is_empty()) {
        let nvcc = Path::new(&home).join("bin").join("nvcc");
        if nvcc.is_file() {
            return Ok(Some(nvcc));
        }
    }
    Ok(search_path(Path::new("nvcc")))
}

fn search_path(name: &Path) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The `*.cu` file stems in `dir`, sorted (so the report's order is stable).
fn list_kernels(dir: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "cu") {
            let stem = path.file_stem().and_then(|s| s.to_str());
            let stem = stem.ok_or_else(|| format!("{}: not a UTF-8 name", path.display()))?;
            names.push(stem.to_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// kernels/ for the shared headers, and the CCCL headers where the pip-installed toolkit
/// keeps them (`cuda_fp16.h` and friends need them).
fn include_flags(kernel_dir: &Path, nvcc: &Path) -> Vec<String> {
    let mut flags = vec![format!("-I{}", kernel_dir.display())];
    if let Some(home) = nvcc.parent().and_then(Path::parent) {
        let cccl = home.join("include").join("cccl");
        if cccl.is_dir() {
            flags.push(format!("-I{}", cccl.display()));
        }
    }
    flags
}

/// Runs the commands side by side; returns each one's stderr, or the first failure with
/// its compiler output.
fn run_all(jobs: Vec<(String, Command)>) -> Result<Vec<String>, String> {
    let children: Vec<(String, Result<Child, std::io::Error>)> = jobs
        .into_iter()
        .map(|(what, mut cmd)| {
            let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
            (what, child)
        })
        .collect();
    let mut outputs = Vec::new();
    let mut failures = Vec::new();
    for (what, child) in children {
        let output = child
            .and_then(Child::wait_with_output)
            .map_err(|e| format!("could not run nvcc for {what}: {e}"))?;
        let text = String::from_utf8_lossy(&output.stderr).into_owned();
        if output.status.success() {
            outputs.push(text);
        } else {
            let stdout = String::from_utf8_lossy(&output.stdout);
            failures.push(format!(
                "nvcc failed on {what} ({}):\n{stdout}{text}",
                output.status
            ));
        }
    }
    if failures.is_empty() {
        Ok(outputs)
    } else {
        Err(failures.join("\n"))
    }
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// One function in ptxas's `-v` report.
#[derive(Default)]
struct FunctionReport {
    name: String,
    registers: u64,
    stack: u64,
    spill_stores: u64,
    spill_loads: u64,
}

/// Reads ptxas's `-v` lines:
///   ptxas info    : Function properties for NAME
///       0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
///   ptxas info    : Used 30 registers, used 1 barriers, ...
fn parse_ptxas(text: &str) -> Vec<FunctionReport> {
    let mut out: Vec<FunctionReport> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.split("Function properties for ").nth(1) {
            out.push(FunctionReport {
                name: name.trim().to_owned(),
                ..Default::default()
            });
        } else if line.contains("bytes spill") || line.contains("registers") {
            // A figure without its header still counts (a spill must never go unseen).
            if out.is_empty() {
                out.push(FunctionReport {
                    name: "(unnamed)".into(),
                    ..Default::default()
                });
            }
            let Some(f) = out.last_mut() else { continue };
            if line.contains("bytes spill") {
                f.stack = number_before(line, "bytes stack frame");
                f.spill_stores = number_before(line, "bytes spill stores");
                f.spill_loads = number_before(line, "bytes spill loads");
            } else if line.contains("registers") {
                f.registers = number_before(line, "registers");
            }
        }
    }
    out
}

/// The integer just before `label` in `line` (0 if absent).
fn number_before(line: &str, label: &str) -> u64 {
    line.split(label)
        .next()
        .filter(|head| head.len() < line.len())
        .and_then(|head| head.split([' ', ',']).rfind(|w| !w.is_empty()))
        .and_then(|w| w.parse().ok())
        .unwrap_or(0)
}
