//! The full GPU build (feature `gpu`) as a user runs it: `--device cuda` of `generate` and
//! `bench token` is a clean "no usable CUDA driver or device" error on a machine without
//! a GPU (CI runs the binary with scripts/cuda-stubs.sh's libraries), `--device cpu` still
//! runs, and on a GPU the documented results come back. Where the GPU part needs a GPU
//! that is missing, a test prints "skipped: <reason>" and passes, unless
//! HELORA_REQUIRE_GPU=1.

mod common;

use common::{helora, require_gpu, skip_gpu};

/// The run's JSON if it succeeded; otherwise checks the failure is the clean no-GPU
/// error, prints why the GPU part is skipped (a failure under HELORA_REQUIRE_GPU=1) and
/// returns None.
fn gpu_json(args: &[&str]) -> Option<serde_json::Value> {
    let out = helora(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    if out.status.success() {
        return Some(serde_json::from_slice(&out.stdout).expect("one JSON object on stdout"));
    }
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout after an error");
    let reason = stderr.trim().to_owned();
    assert!(
        reason.contains("--device cuda") && reason.contains("CUDA driver or device"),
        "{args:?}: {reason}"
    );
    assert!(
        !require_gpu(),
        "HELORA_REQUIRE_GPU=1 but {args:?} failed: {reason}"
    );
    skip_gpu(&reason);
    None
}

fn json(args: &[&str]) -> serde_json::Value {
    let out = helora(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

const TOKEN_KEYS: [&str; 8] = [
    "ms_per_token",
    "p90_ms_per_token",
    "mean_ms_per_token",
    "prefill_ms",
    "tokens_per_s",
    "lora_ms_per_token",
    "overhead_ratio",
    "overlap",
];

#[test]
fn bench_token_device_cuda() {
    let args = [
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--device",
        "cuda",
        "--mode",
        "lora",
        "--tokens",
        "4",
        "--prompt-tokens",
        "4",
        "--json",
    ];
    let Some(v) = gpu_json(&args) else { return };
    assert_eq!(v["device"], "cuda");
    assert_eq!(v["weight_dtype"], "bf16");
    assert_eq!(v["mode"], "lora");
    assert_eq!(v["he_only"], false);
    for key in TOKEN_KEYS {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert!(v["breakdown"]["base_forward"]
        .as_f64()
        .is_some_and(|x| x > 0.0));
}

#[test]
fn bench_token_device_cpu_still_runs_in_the_gpu_build() {
    let v = json(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--device",
        "cpu",
        "--mode",
        "lora",
        "--tokens",
        "2",
        "--prompt-tokens",
        "2",
        "--json",
    ]);
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["weight_dtype"], "f32");
    // The report names the build that made it.
    assert_eq!(v["run"]["features"], serde_json::json!(["cuda", "gpu"]));
    for key in TOKEN_KEYS {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
}

#[test]
fn he_only_is_not_for_the_gpu() {
    let out = helora(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--device",
        "cuda",
        "--he-only",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("drop --he-only"), "{stderr}");
}

/// `generate` on the default model and the demo adapter, greedy, lora mode: the same
/// tokens on the GPU as on the CPU (f32 weights on both).
#[test]
fn generate_device_cuda_gives_the_cpu_tokens() {
    let run = |device: &'static str| {
        vec![
            "generate",
            "--mode",
            "lora",
            "--max-tokens",
            "12",
            "--device",
            device,
            "--json",
        ]
    };
    // Without a GPU this fails before the model is looked for.
    let model = helora_engine::model::fetch::default_model_location();
    let cached = model.as_ref().is_ok_and(|p| p.is_file());
    // With a GPU the run would get past the device and fail on the missing model instead.
    let gpu_here = require_gpu() || candle_core::Device::new_cuda(0).is_ok();
    if !cached && gpu_here {
        // The GPU machine has no network to fetch it: the library-level comparison
        // (tests/gpu.rs) covers the model on the GPU there.
        skip_gpu(&format!(
            "the default model is not in the cache ({}); set HELORA_CACHE_DIR to a cache \
             that holds it",
            model.map_or_else(|e| e.to_string(), |p| p.display().to_string())
        ));
        return;
    }
    let Some(gpu) = gpu_json(&run("cuda")) else {
        return;
    };
    let cpu = json(&run("cpu"));
    assert_eq!(gpu["device"], "cuda");
    assert_eq!(cpu["device"], "cpu");
    let tokens = |v: &serde_json::Value| v["tokens"].clone();
    assert!(
        tokens(&cpu).as_array().is_some_and(|t| !t.is_empty()),
        "{cpu}"
    );
    assert_eq!(
        tokens(&gpu),
        tokens(&cpu),
        "greedy tokens on the GPU and the CPU"
    );
}
