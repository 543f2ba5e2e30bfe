//! `--device cuda` of `helora bench ops` and `bench lora` as a user runs them: a clear error
//! (never a panic) in a binary without the `cuda` feature or on a machine without a GPU,
//! and the documented JSON keys where there is one. Where the happy path needs a GPU that
//! is missing, a test prints "skipped: <reason>" and passes, unless HELORA_REQUIRE_GPU=1.
//! On the stand-in driver (cuda-emu, CI) the benchmarks run all their work and print a
//! notice instead of their timings.

mod common;

use common::{helora, require_gpu, skip_gpu};

use std::io::Write;

/// The run's JSON if it succeeded; otherwise checks the failure is a clean error, prints
/// why the GPU part is skipped (a failure under HELORA_REQUIRE_GPU=1) and returns None.
fn gpu_json(args: &[&str]) -> Option<serde_json::Value> {
    let out = helora(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    if out.status.success() {
        // On the stand-in driver (cuda-emu) the whole benchmark ran, and a notice replaces
        // the report: its timings would be an emulation's, not a GPU's.
        let stdout = String::from_utf8_lossy(&out.stdout);
        if stdout.contains("cuda-emu") {
            assert!(
                stdout.contains("no timing is reported") && !stdout.contains('{'),
                "{args:?} on the stand-in driver: {stdout}"
            );
            let _ = writeln!(
                std::io::stderr(),
                "ran on the stand-in driver: {}",
                stdout.trim()
            );
            return None;
        }
        return Some(serde_json::from_slice(&out.stdout).expect("one JSON object on stdout"));
    }
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout after an error");
    let reason = stderr.trim().to_owned();
    if cfg!(feature = "cuda") {
        // Only a missing GPU is a skip; any other error is a failure.
        assert!(
            reason.contains("no usable CUDA driver or device"),
            "{reason}"
        );
    } else {
        assert!(
            reason.contains("built without CUDA support; rebuild with --features cuda"),
            "{reason}"
        );
    }
    assert!(
        !require_gpu(),
        "HELORA_REQUIRE_GPU=1 but {args:?} failed: {reason}"
    );
    skip_gpu(&reason);
    None
}

#[test]
fn bench_ops_device_cuda() {
    let args = [
        "bench", "ops", "--device", "cuda", "--n", "8192", "--iters", "2", "--json",
    ];
    let Some(v) = gpu_json(&args) else { return };
    assert_eq!(v["backend"], "cuda");
    assert!(v["device"].is_string());
    for key in [
        "ntt_us",
        "intt_us",
        "ntt_batch_us",
        "ct_pt_mul_us",
        "ct_ct_mul_relin_us",
        "rescale_us",
        "key_switch_us",
        "rotate_us",
        "hoisted_rotate_8_us",
        "encrypt_us",
        "decrypt_us",
        "copy_bandwidth_gbs",
        "key_switch_floor_us",
        "key_switch_floor_ratio",
        "hoisted_rotate_8_floor_ratio",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert!(v["ntt_batch_limbs"].as_u64().is_some_and(|l| l >= 1024));
    assert!(
        v.get("encrypt_floor_us").is_none(),
        "encryption is host-side"
    );
}

#[test]
fn bench_lora_device_cuda() {
    let args = [
        "bench", "lora", "--device", "cuda", "--d-in", "256", "--d-out", "256", "--r", "4",
        "--batch", "2", "--iters", "2", "--json",
    ];
    let Some(v) = gpu_json(&args) else { return };
    assert_eq!(v["backend"], "cuda");
    assert_eq!(v["batch"], 2);
    assert_eq!(v["host_syncs_in_apply"], 0);
    for key in [
        "ms_per_apply",
        "apply_us",
        "apply_path_us",
        "token_layer_us",
        "applies_per_s",
        "apply_floor_us",
        "apply_floor_ratio",
        "batch_floor_ratio",
        "copy_bandwidth_gbs",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    // As on the CPU at these small shapes (6e-5 to 7.5e-5: the compact reply's rounding).
    assert!(
        v["relative_error"].as_f64().is_some_and(|e| e < 3e-4),
        "{}",
        v["relative_error"]
    );
}

#[test]
fn batch_is_only_for_the_gpu() {
    let out = helora(&["bench", "lora", "--batch", "4"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--batch is for --device cuda"), "{stderr}");
}
