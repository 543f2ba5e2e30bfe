//! The `helora` binary as a user runs it: exit codes, stdout/stderr separation, JSON shape.

mod common;

use common::helora;

use std::process::Command;

/// Every bench report says which build made it and when.
fn check_provenance(v: &serde_json::Value) {
    let run = &v["run"];
    assert_eq!(run["helora_version"], env!("CARGO_PKG_VERSION"));
    let commit = run["git_commit"].as_str().expect("git_commit");
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    let profile = run["build_profile"].as_str().expect("build_profile");
    assert_eq!(profile == "debug", cfg!(debug_assertions), "{profile}");
    assert!(run["features"].is_array());
    let reported = run["reported_utc"].as_str().expect("reported_utc");
    assert!(
        reported.len() == 20 && reported.ends_with('Z') && reported.as_bytes()[10] == b'T',
        "{reported}"
    );
    assert!(run["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(run["threads"].as_u64().is_some_and(|t| t >= 1));
}

#[test]
fn bench_ops_json_is_one_object_on_stdout() {
    let v = helora_json(&["bench", "ops", "--n", "8192", "--iters", "2", "--json"]);
    assert!(v.is_object());
    check_provenance(&v);
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

#[test]
fn bench_lora_json_reports_counts_accuracy_and_bytes() {
    let v = helora_json(&[
        "bench", "lora", "--d-in", "576", "--d-out", "576", "--r", "8", "--tokens", "2", "--iters",
        "1", "--json",
    ]);
    assert_eq!(v["d_in"], 576);
    assert_eq!(v["rank"], 8);
    assert_eq!(v["depth"], 2);
    check_provenance(&v);
    // r' − 1 = 7 hoisted rotations per diagonal product, log2(1024/8) = 7 fold rotations.
    assert_eq!(v["keyswitches"], 7 + 7 + 7);
    assert_eq!(v["hoisted_keyswitches"], 14);
    assert_eq!(v["decompositions"], 1 + 7 + 1);
    assert_eq!(v["pt_muls"], 16);
    for key in [
        "ms_per_apply",
        "ms_per_token_batch",
        "tokens_per_s",
        "upload_bytes",
        "download_bytes",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert!(
        v["relative_error"].as_f64().is_some_and(|e| e < 1e-4),
        "{}",
        v["relative_error"]
    );
    // One seeded ciphertext over the 160 bits of Q_L (163 903 bytes, docs/format.md).
    assert!(v["upload_bytes"].as_u64().is_some_and(|b| b <= 170_000));
    assert!(v["download_bytes"].as_u64().is_some_and(|b| b <= 80_000));
}

#[test]
fn bench_lora_rejects_bad_shapes_with_a_message() {
    let out = helora(&["bench", "lora", "--r", "65"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects a rank above 64");
    let out = helora(&[
        "bench", "lora", "--n", "4096", "--d-in", "64", "--d-out", "64",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported ring degree"));
    assert!(out.stdout.is_empty());
}

/// Runs `helora` and parses its stdout as exactly one JSON object.
fn helora_json(args: &[&str]) -> serde_json::Value {
    let out = helora(args);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    serde_json::from_str(&stdout).expect("stdout is exactly one JSON value")
}

#[test]
fn generate_json_has_the_documented_keys() {
    // Secure mode with the demo adapter (the default model is fetched on first use).
    let v = helora_json(&["generate", "--max-tokens", "3", "--pll", "off", "--json"]);
    assert_eq!(v["mode"], "secure");
    assert!(v["text"].is_string());
    assert!(
        v["stop"] == "max_tokens" || v["stop"] == "eos",
        "{}",
        v["stop"]
    );
    let tokens = v["tokens"].as_array().expect("token ids");
    assert!(!tokens.is_empty() && tokens.len() <= 3);
    for key in [
        "prefill_ms",
        "ms_per_token",
        "he_encrypt_ms",
        "he_eval_ms",
        "he_decrypt_ms",
        "upload_bytes_per_token",
        "download_bytes_per_token",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }

    let v = helora_json(&[
        "generate",
        "--mode",
        "plain",
        "--prompt",
        "Name a colour.",
        "--max-tokens",
        "4",
        "--seed",
        "7",
        "--json",
    ]);
    assert_eq!(v["mode"], "plain");
    assert!(v["sampling"].as_str().is_some_and(|s| s.contains("seed 7")));
    assert!(v["he_eval_ms"].is_null() && v["upload_bytes_per_token"].is_null());
    assert!(v["prefill_ms"].as_f64().is_some_and(|x| x > 0.0));
}

/// A library error is one line even where RUST_BACKTRACE asks for panic backtraces: candle
/// would otherwise print the backtrace it captured inside its error's message.
#[test]
fn errors_stay_one_line_with_rust_backtrace_set() {
    let path = std::env::temp_dir().join(format!("helora-cli-rand-{}.gguf", std::process::id()));
    let bytes: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&path, bytes).expect("scratch file");
    let out = Command::new(env!("CARGO_BIN_EXE_helora"))
        .args([
            "generate",
            "--mode",
            "plain",
            "--max-tokens",
            "2",
            "--model",
        ])
        .arg(&path)
        .env("RUST_BACKTRACE", "1")
        .env_remove("RUST_LIB_BACKTRACE")
        .output()
        .expect("the helora binary runs");
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("GGUF"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn generate_reports_bad_inputs_without_a_panic() {
    for (args, expect) in [
        (
            vec!["generate", "--model", "/nonexistent/m.gguf"],
            "/nonexistent/m.gguf",
        ),
        (vec!["generate", "--device", "cuda"], "cuda"),
        (
            vec![
                "generate", "--mode", "plain", "--seed", "1", "--top-p", "1.5",
            ],
            "top",
        ),
        (vec!["generate", "--mode", "banana"], "banana"),
    ] {
        let out = helora(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?}: nothing on stdout after an error"
        );
    }
}

#[test]
fn bench_token_he_only_json() {
    let v = helora_json(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--he-only",
        "--tokens",
        "2",
        "--prompt-tokens",
        "1",
        "--json",
    ]);
    assert_eq!(v["preset"], "smollm2-135m");
    assert_eq!(v["adapted_projections_per_token"], 60);
    assert_eq!(v["requests_per_token"], 30);
    check_provenance(&v);
    for key in [
        "ms_per_token",
        "p90_ms_per_token",
        "prefill_ms",
        "upload_bytes_per_token",
        "download_bytes_per_token",
        "lora_ms_per_token",
        "overhead_ratio",
        "overlap",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0),
            "{key}: {}",
            v[key]
        );
    }
    assert!(v["breakdown"]["he_eval"].as_f64().is_some_and(|x| x > 0.0));
    assert_eq!(v["batch"], 1);

    // Two sequences in flight: one token of each per step.
    let v = helora_json(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--he-only",
        "--tokens",
        "1",
        "--prompt-tokens",
        "1",
        "--batch",
        "2",
        "--json",
    ]);
    assert_eq!(v["batch"], 2);
    let step = v["ms_per_token"].as_f64().expect("ms_per_token");
    let rate = v["tokens_per_s"].as_f64().expect("tokens_per_s");
    assert!((rate - 2e3 / step).abs() < 1e-6 * rate, "{rate} vs {step}");
    let out = helora(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--he-only",
        "--batch",
        "4000",
    ]);
    assert_eq!(out.status.code(), Some(1), "--batch 4000 is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("budget"));
    let out = helora(&["bench", "token", "--preset", "gpt-5", "--he-only"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chatglm2-6b"));
}

/// `bench token` on the full SmolLM2-135M-shaped model with random weights, in `mode`.
fn bench_token_full(mode: &str, batch: u32) -> serde_json::Value {
    let batch = batch.to_string();
    helora_json(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--mode",
        mode,
        "--tokens",
        "2",
        "--prompt-tokens",
        "2",
        "--batch",
        &batch,
        "--pll",
        "off",
        "--json",
    ])
}

/// The keys issue 6 asks for, sane for a run in `mode` with `batch` sequences.
fn check_token_report(v: &serde_json::Value, mode: &str, batch: u32) {
    assert_eq!(v["preset"], "smollm2-135m");
    assert_eq!(v["mode"], mode);
    assert_eq!(v["device"], "cpu");
    check_provenance(v);
    assert_eq!(v["batch"], batch);
    // A step decodes one token of every sequence.
    let step = v["ms_per_token"].as_f64().expect("ms_per_token");
    let rate = v["tokens_per_s"].as_f64().expect("tokens_per_s");
    assert!(
        (rate * step / 1e3 - f64::from(batch)).abs() < 1e-6,
        "{mode}: {rate} tokens/s at {step} ms per step of {batch}"
    );
    assert_eq!(v["rank"], 8);
    assert_eq!(v["he_only"], false);
    for key in [
        "ms_per_token",
        "p90_ms_per_token",
        "mean_ms_per_token",
        "prefill_ms",
        "lora_ms_per_token",
        "overhead_ratio",
        "overlap",
    ] {
        assert!(
            v[key].as_f64().is_some_and(|x| x > 0.0 && x.is_finite()),
            "{mode} {key}: {}",
            v[key]
        );
    }
    let breakdown = v["breakdown"].as_object().expect("breakdown object");
    let mut sum = 0.0;
    for part in [
        "base_forward",
        "encrypt",
        "he_eval",
        "decrypt",
        "lora",
        "copies",
        "idle",
    ] {
        let ms = breakdown[part].as_f64().expect(part);
        assert!(ms >= 0.0, "{mode} {part}: {ms}");
        sum += ms;
    }
    let wall = v["mean_ms_per_token"].as_f64().expect("mean");
    assert!(sum <= wall * (1.0 + 1e-9) + 1e-9, "{mode}: {sum} > {wall}");
    // On the CPU the stages run one after another: the overlap is their share of the step.
    let idle = breakdown["idle"].as_f64().expect("idle");
    let overlap = v["overlap"].as_f64().expect("overlap");
    assert!(
        (overlap - (sum - idle) / wall).abs() < 1e-9 && overlap <= 1.0 + 1e-9,
        "{mode}: overlap {overlap}, stages {} ms, step {wall} ms",
        sum - idle
    );
    assert!(breakdown["base_forward"].as_f64().is_some_and(|x| x > 0.0));
    for key in ["upload_bytes_per_token", "download_bytes_per_token"] {
        let bytes = v[key].as_f64().expect(key);
        assert_eq!(bytes > 0.0, mode == "secure", "{mode} {key}: {bytes}");
    }
    // No NVML here (or a GPU that reports itself): never a failure.
    assert!(v["hardware"].is_null() || v["hardware"]["gpu_name"].is_string());
}

#[test]
fn bench_token_full_model_plain_and_lora() {
    let plain = bench_token_full("plain", 1);
    check_token_report(&plain, "plain", 1);
    assert_eq!(plain["breakdown"]["lora"], 0.0);
    let lora = bench_token_full("lora", 1);
    check_token_report(&lora, "lora", 1);
    assert!(lora["breakdown"]["lora"].as_f64().is_some_and(|x| x > 0.0));
    // The lora run is its own reference.
    assert_eq!(lora["overhead_ratio"], 1.0);
}

#[test]
fn bench_token_full_model_secure() {
    let v = bench_token_full("secure", 1);
    check_token_report(&v, "secure", 1);
    assert_eq!(v["requests_per_token"], 30);
    // Three sequences decoded together: the same requests and bytes per generated token.
    let batch = bench_token_full("secure", 3);
    check_token_report(&batch, "secure", 3);
    assert_eq!(batch["requests_per_token"], 30);
    for key in ["upload_bytes_per_token", "download_bytes_per_token"] {
        assert_eq!(batch[key], v[key], "{key}");
    }
    assert!(v["breakdown"]["he_eval"].as_f64().is_some_and(|x| x > 0.0));
    assert!(v["lora_reference"]
        .as_str()
        .is_some_and(|s| s.contains("full model")));
}

#[test]
fn bench_token_refuses_a_model_that_does_not_fit() {
    // A fixed limit, so the test does not depend on the machine's memory.
    let out = helora(&[
        "bench",
        "token",
        "--preset",
        "chatglm2-6b",
        "--memory-limit-mib",
        "16384",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("GiB")
            && stderr.contains("16.0 GiB")
            && stderr.contains("--he-only")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    for (args, expect) in [
        (vec!["--device", "cuda"], "CUDA"),
        // 8 + 4 + 1 positions of 600 sequences: past the PLL's 4096 queries per client.
        (vec!["--batch", "600", "--tokens", "4"], "--batch"),
        (
            vec![
                "--plot",
                "x.png",
                "--plot-over",
                "batch",
                "--plot-points",
                "1,600",
            ],
            "budget",
        ),
        (
            vec![
                "--plot",
                "x.png",
                "--plot-over",
                "batch",
                "--plot-points",
                "1,5000",
                "--pll",
                "off",
            ],
            "outside 1 … 4096",
        ),
        (vec!["--plot", "x.png", "--plot-points", "1,x"], "\"x\""),
        (vec!["--plot", "x.png", "--plot-points", "1,65"], "65"),
        (
            vec!["--plot", "/nonexistent/dir/x.png"],
            "no such directory",
        ),
    ] {
        let mut all = vec!["bench", "token", "--preset", "smollm2-135m"];
        all.extend(&args);
        let out = helora(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains(expect) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}

/// `--threads K` runs the whole bench on a pool of K, and the report says so.
#[test]
fn bench_token_threads_sets_the_pool_and_is_reported() {
    for threads in ["1", "3"] {
        let v = helora_json(&[
            "bench",
            "token",
            "--preset",
            "smollm2-135m",
            "--he-only",
            "--pll",
            "off",
            "--tokens",
            "1",
            "--prompt-tokens",
            "1",
            "--threads",
            threads,
            "--json",
        ]);
        check_provenance(&v);
        assert_eq!(v["run"]["threads"].to_string(), threads, "{v}");
    }
    let out = helora(&["bench", "token", "--threads", "0"]);
    assert!(!out.status.success());
}

#[test]
fn bench_token_plot_writes_a_png_and_the_sweep() {
    let dir = std::env::temp_dir().join(format!("helora-cli-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let path = dir.join("sweep.png");
    let path_str = path.to_str().expect("a UTF-8 path");
    let v = helora_json(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--he-only",
        "--pll",
        "off",
        "--tokens",
        "1",
        "--prompt-tokens",
        "1",
        "--plot",
        path_str,
        "--plot-points",
        "1,2",
        "--json",
    ]);
    let png = std::fs::read(&path).expect("the PNG was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 1000);
    assert_eq!(v["plot"], path_str);
    assert_eq!(v["he_only"], true);
    assert!(v["mean_ms_per_token"].as_f64().is_some_and(|x| x > 0.0));
    assert!(v["lora_reference"]
        .as_str()
        .is_some_and(|s| s.contains("adapter alone")));
    assert_eq!(v["sweep"]["over"], "rank");
    let points = v["sweep"]["points"].as_array().expect("sweep points");
    assert_eq!(points.len(), 2);
    for (p, x) in points.iter().zip([1, 2]) {
        assert_eq!(p["x"], x);
        assert!(p["secure_ms_per_token"].as_f64().is_some_and(|y| y > 0.0));
        assert!(p["lora_ms_per_token"].as_f64().is_some_and(|y| y > 0.0));
        assert!(p["plain_ms_per_token"].is_null());
    }
    std::fs::remove_dir_all(&dir).expect("cleaning up");
}

/// (The full GPU build's behaviour is tests/cli_gpu.rs's.)
#[cfg(not(feature = "gpu"))]
#[test]
fn device_cuda_for_the_base_model_names_the_gpu_build() {
    for args in [
        vec!["generate", "--device", "cuda", "--mode", "plain"],
        vec![
            "bench",
            "token",
            "--preset",
            "smollm2-135m",
            "--device",
            "cuda",
        ],
    ] {
        let out = helora(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("--features gpu") && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
    let out = helora(&[
        "bench",
        "token",
        "--preset",
        "smollm2-135m",
        "--device",
        "cuda",
        "--he-only",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("drop --he-only"), "{stderr}");
}

/// A one-layer Llama of width 8 in a Hugging Face directory with a word-level tokenizer
/// (words a … f, no end-of-sequence token) and a context of `context` positions.
fn tiny_model(context: usize) -> std::path::PathBuf {
    use candle_core::{Device, Tensor};
    let dir = std::env::temp_dir().join(format!(
        "helora-cli-tiny-{context}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (hidden, ffn, vocab, kv) = (8usize, 16usize, 7usize, 4usize);
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": ffn, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "hidden_act": "silu",
        "max_position_embeddings": context, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": true, "vocab_size": vocab,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    let mut tensors = std::collections::HashMap::new();
    let mut add = |name: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let seed = tensors.len() as f32;
        let values: Vec<f32> = (0..n)
            .map(|i| ((i as f32 * 0.37 + seed).sin()) * 0.5)
            .collect();
        let t = Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor");
        tensors.insert(name.to_string(), t);
    };
    add("model.embed_tokens.weight", &[vocab, hidden]);
    add("model.norm.weight", &[hidden]);
    let layer = |n: &str| format!("model.layers.0.{n}");
    add(&layer("input_layernorm.weight"), &[hidden]);
    add(&layer("post_attention_layernorm.weight"), &[hidden]);
    add(&layer("self_attn.q_proj.weight"), &[hidden, hidden]);
    add(&layer("self_attn.k_proj.weight"), &[kv, hidden]);
    add(&layer("self_attn.v_proj.weight"), &[kv, hidden]);
    add(&layer("self_attn.o_proj.weight"), &[hidden, hidden]);
    add(&layer("mlp.gate_proj.weight"), &[ffn, hidden]);
    add(&layer("mlp.up_proj.weight"), &[ffn, hidden]);
    add(&layer("mlp.down_proj.weight"), &[hidden, ffn]);
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("weights");
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "unk_token": "<unk>",
            "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}},
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).expect("tokenizer");
    dir
}

/// The binary renders a model's chat template in a child run of itself: a plain template
/// works, one that doubles a string until memory runs out is an error naming the template
/// (exit 1), not an abort of `helora`.
#[test]
fn generate_renders_the_chat_template_in_a_bounded_child() {
    let dir = tiny_model(16);
    let model = dir.to_str().expect("UTF-8 path");
    let template = dir.join("chat_template.jinja");
    std::fs::write(&template, "{{ messages[0].content }} b").expect("template");
    let v = helora_json(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "a",
        "--max-tokens",
        "1",
        "--json",
    ]);
    assert_eq!(v["prompt_token_ids"], serde_json::json!([1, 2]));
    std::fs::write(
        &template,
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}\
         {% endfor %}{{ ns.s }}",
    )
    .expect("template");
    let out = helora(&["generate", "--model", model, "--max-tokens", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("chat_template.jinja")
            && stderr.contains("more than 1024 MiB of memory")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_stops_at_the_context_with_a_stop_reason() {
    let dir = tiny_model(8);
    let model = dir.to_str().expect("UTF-8 path");
    // A model without an adapter runs plain by default; 3 prompt tokens leave 5 positions,
    // and the token drawn at the last one ends the answer.
    let v = helora_json(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "a b c",
        "--max-tokens",
        "100",
        "--json",
    ]);
    assert_eq!(v["mode"], "plain");
    assert_eq!(v["stop"], "context");
    assert_eq!(v["tokens"].as_array().map(Vec::len), Some(6));
    let v = helora_json(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "a b c",
        "--max-tokens",
        "2",
        "--json",
    ]);
    assert_eq!(v["stop"], "max_tokens");
    // The table says why too.
    let out = helora(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "a",
        "--max-tokens",
        "50",
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("(stop: context)"));
    // A prompt longer than the context: a clear error, not a mid-stream failure.
    let out = helora(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "a b c d e f a b c",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("context of 8 positions"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn generate_json_reports_prompt_ids_and_top_logits() {
    let dir = tiny_model(64);
    let model = dir.to_str().expect("UTF-8 path");
    let v = helora_json(&[
        "generate",
        "--model",
        model,
        "--prompt",
        "a b c",
        "--max-tokens",
        "4",
        "--json",
        "--top-logits",
        "3",
    ]);
    assert_eq!(v["prompt_token_ids"], serde_json::json!([1, 2, 3]));
    let tokens = v["tokens"].as_array().expect("tokens");
    let steps = v["top_logits"].as_array().expect("top_logits");
    assert_eq!(steps.len(), tokens.len());
    for (token, step) in tokens.iter().zip(steps) {
        let top = step.as_array().expect("a step's top-k");
        assert_eq!(top.len(), 3);
        // Greedy decoding picks the first; logits come highest first.
        assert_eq!(&top[0]["id"], token);
        let logits: Vec<f64> = top.iter().filter_map(|e| e["logit"].as_f64()).collect();
        assert!(
            logits.len() == 3 && logits.windows(2).all(|w| w[0] >= w[1]),
            "{logits:?}"
        );
    }
    // Without the flag the key is absent.
    let v = helora_json(&["generate", "--model", model, "--max-tokens", "1", "--json"]);
    assert!(v.get("top_logits").is_none() && v["prompt_token_ids"].is_array());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flags_the_mode_would_ignore_are_refused_before_loading() {
    let dir = tiny_model(16);
    let model = dir.to_str().expect("UTF-8 path");
    for (args, expect) in [
        (
            vec!["--mode", "plain", "--adapter", "/nonexistent/a"],
            "--adapter",
        ),
        (vec!["--mode", "plain", "--pll", "off"], "--pll"),
        (vec!["--mode", "lora", "--pll", "on"], "--pll"),
        // An explicit secure mode without an adapter for a model of one's own.
        (vec!["--mode", "secure"], "--adapter"),
    ] {
        let mut all = vec!["generate", "--model", "/nonexistent/model.gguf"];
        all.extend(&args);
        let out = helora(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        // Refused before the (missing) model is looked for.
        assert!(
            stderr.contains(expect) && !stderr.contains("model.gguf"),
            "{args:?}: {stderr}"
        );
    }
    // --noise without the PLL.
    let out = helora(&[
        "attack",
        "extract",
        "--d",
        "8",
        "--r",
        "2",
        "--queries",
        "8",
        "--pll",
        "off",
        "--noise",
        "0.5",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--noise"), "{stderr}");
    // And the default for a model without an adapter works.
    let v = helora_json(&["generate", "--model", model, "--max-tokens", "1", "--json"]);
    assert_eq!(v["mode"], "plain");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_adapter_path_that_is_a_file_or_fifo_is_named_as_such() {
    let dir = tiny_model(16);
    let file = dir.join("config.json");
    let out = helora(&[
        "generate",
        "--mode",
        "lora",
        "--adapter",
        file.to_str().expect("UTF-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is a file"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn huge_numbers_in_errors_stay_short() {
    for args in [
        vec![
            "generate",
            "--mode",
            "plain",
            "--seed",
            "1",
            "--temperature=-1e300",
        ],
        vec![
            "generate", "--mode", "plain", "--seed", "1", "--top-p", "1e300",
        ],
        vec![
            "attack",
            "extract",
            "--d",
            "8",
            "--r",
            "2",
            "--queries",
            "8",
            "--noise",
            "1e300",
        ],
    ] {
        let out = helora(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("1e300") && stderr.len() < 300,
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn long_loops_report_progress_with_an_eta() {
    // Not a terminal: a line at every tenth of the way, with the rate and the ETA.
    let out = helora(&[
        "attack",
        "extract",
        "--d",
        "8",
        "--r",
        "2",
        "--queries",
        "20",
        "--pll",
        "off",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("attack: 10/20 queries (50%)") && stderr.contains("ETA"),
        "{stderr}"
    );

    // The encrypted prefill, site by site, with the prompt tokens per second.
    let out = helora(&["generate", "--max-tokens", "1", "--pll", "off", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("encrypted prefill") && l.contains("adapted sites ("))
        .collect();
    assert!(lines.len() >= 5, "{stderr}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("tokens/s") && l.contains("ETA")),
        "{stderr}"
    );

    // An iteration count that would run for days is refused by the parser.
    let out = helora(&["bench", "ops", "--iters", "4294967295"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bench_lora_refuses_a_shape_that_does_not_fit_the_memory() {
    let out = helora(&[
        "bench",
        "lora",
        "--d-in",
        "65536",
        "--d-out",
        "65536",
        "--r",
        "64",
        "--memory-limit-mib",
        "100",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs about") && stderr.contains("GiB"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}
