//! The layer map of docs/architecture.md, checked against the code's imports: every
//! `crate::<module>` path in a layer's files must name a layer it may use.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir` (or `dir` itself, a file).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

/// The `<prefix><name>` paths in `text` (`name` up to the first character that cannot be
/// in a path), each with the `::`-separated segment after it if any.
fn paths_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path: Vec<&str> = rest[..end].split("::").take(2).collect();
        found.insert(path.join("::"));
    }
    found
}

/// Module paths `file`'s text uses under `prefix` that `allowed` does not cover (an entry
/// covers itself and everything below it).
fn violations(root: &Path, prefix: &str, allowed: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for file in rust_files(root) {
        let text = fs::read_to_string(&file).unwrap();
        for path in paths_after(&text, prefix) {
            let ok = allowed
                .iter()
                .any(|a| path == *a || path.starts_with(&format!("{a}::")));
            if !ok {
                bad.push(format!("{}: {prefix}{path}", file.display()));
            }
        }
    }
    bad
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn helora_layers_use_only_the_layers_below() {
    // Each layer may name itself; `math::sampling` (randomness) is open to every layer.
    let table: [(&str, &[&str]); 6] = [
        ("math", &["math"]),
        ("ring", &["ring", "math"]),
        ("backend", &["backend", "ring", "math"]),
        ("ckks", &["ckks", "backend", "ring", "math"]),
        ("linear", &["linear", "ckks", "math::sampling"]),
        ("pll", &["pll", "linear", "ckks", "math::sampling"]),
    ];
    let mut bad = Vec::new();
    for (layer, allowed) in table {
        bad.extend(violations(
            &root().join("src").join(layer),
            "crate::",
            allowed,
        ));
    }
    assert!(
        bad.is_empty(),
        "imports across the layer map:\n{}",
        bad.join("\n")
    );
}

#[test]
fn engine_modules_use_only_the_modules_above_them() {
    let engine = root().join("engine").join("src");
    let attack: &[&str] = &[
        "attack", "adapter", "chart", "demo", "files", "model", "progress", "secure", "switch",
    ];
    let table: [(&str, &[&str]); 15] = [
        ("files.rs", &[]),
        ("chart.rs", &[]),
        ("stats.rs", &[]),
        ("progress.rs", &[]),
        ("switch.rs", &[]),
        ("device.rs", &[]),
        ("model", &["model", "files", "progress"]),
        ("adapter.rs", &["model", "files"]),
        ("demo.rs", &["model"]),
        ("plain_lora.rs", &["adapter", "model"]),
        (
            "secure",
            &["secure", "adapter", "device", "model", "progress"],
        ),
        (
            "serve",
            &["serve", "secure", "adapter", "demo", "device", "files"],
        ),
        (
            "generate",
            &[
                "generate",
                "adapter",
                "demo",
                "device",
                "files",
                "model",
                "plain_lora",
                "progress",
                "secure",
                "serve",
                "stats",
            ],
        ),
        ("attack.rs", attack),
        ("attack", attack),
    ];
    let mut bad = Vec::new();
    for (module, allowed) in table {
        bad.extend(violations(&engine.join(module), "crate::", allowed));
    }
    assert!(
        bad.is_empty(),
        "imports across the engine's map:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_engines_product_code_uses_the_high_level_api() {
    // What the product (not the benchmarks) may use of `helora`: the high-level layers,
    // randomness, and the CUDA backend where a device is chosen.
    let allowed: &[&str] = &["ckks", "linear", "pll", "math::sampling"];
    let engine = root().join("engine").join("src");
    let mut bad = Vec::new();
    for module in [
        "files.rs",
        "stats.rs",
        "progress.rs",
        "switch.rs",
        "model",
        "adapter.rs",
        "plain_lora.rs",
        "generate",
        "chart.rs",
        "attack.rs",
        "attack",
    ] {
        bad.extend(violations(&engine.join(module), "helora::", allowed));
    }
    let with_device: &[&str] = &["ckks", "linear", "pll", "math::sampling", "backend::cuda"];
    bad.extend(violations(
        &engine.join("secure"),
        "helora::",
        &[with_device, &["backend::CudaBackend"]].concat(),
    ));
    bad.extend(violations(
        &engine.join("device.rs"),
        "helora::",
        with_device,
    ));
    assert!(
        bad.is_empty(),
        "low-level imports in product code:\n{}",
        bad.join("\n")
    );
}
