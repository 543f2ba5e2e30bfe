//! The `helora` binary as a user runs it: exit codes, stdout/stderr separation, JSON shape.

use std::process::{Command, Output};

fn helora(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_helora"))
        .args(args)
        .output()
        .expect("the helora binary runs")
}

#[test]
fn bench_ops_json_is_one_object_on_stdout() {
    let out = helora(&["bench", "ops", "--n", "8192", "--iters", "2", "--json"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).expect("stdout is exactly one JSON value");
    assert!(v.is_object());
    assert_eq!(v["n"], 8192);
    assert_eq!(v["limbs"], 3);
    assert_eq!(v["special_primes"], 1);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["iters"], 2);
    assert_eq!(v["iters_mode"], "fixed");
    for key in [
        "ntt_us",
        "intt_us",
        "encrypt_us",
        "decrypt_us",
        "ct_pt_mul_us",
        "ct_ct_mul_relin_us",
        "rescale_us",
        "rotate_us",
        "hoisted_rotate_8_us",
        "keygen_ms",
        "hoisted_extra_step_ratio",
        "log_qp",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert!(v["definitions"]["ntt_us"]
        .as_str()
        .is_some_and(|d| d.contains("one limb")));
    assert!(v["cpu"].is_string() && v["simd"].is_string() && v["simd_cpu"].is_string());
}

#[test]
fn bench_ops_table_lists_every_operation() {
    let out = helora(&["bench", "ops", "--iters", "1"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).expect("UTF-8 output");
    for key in [
        "ntt_us",
        "rotate_us",
        "hoisted_rotate_8_us",
        "hoisted_extra_step_ratio",
    ] {
        assert!(table.contains(key), "{key} missing from:\n{table}");
    }
}

#[test]
fn unsupported_n_fails_cleanly() {
    let out = helora(&["bench", "ops", "--n", "4096"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("8192") && stderr.contains("65536") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_are_usage_errors() {
    for args in [
        &["bench", "ops", "--iters", "0"][..],
        &["bench", "ops", "--n", "lots"],
        &["bench", "nothing"],
    ] {
        let out = helora(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}
