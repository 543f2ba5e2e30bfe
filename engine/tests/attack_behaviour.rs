//! `helora attack behaviour` at small scale, as a user runs it: the demo adapter (default
//! model, fetched on first use), a few sites, short answers. Without the PLL, d_in basis
//! queries per site recover ΔW to CKKS precision and the copy answers exactly as the true
//! adapter where the base does not; the text design reports sane figures per client id;
//! bad input is an error on stderr, never a panic.

mod common;

use common::helora;

fn behaviour_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["attack", "behaviour", "--json"];
    all.extend(args);
    let out = helora(&all);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    serde_json::from_str(&stdout).expect("stdout is exactly one JSON value")
}

fn number(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[test]
fn basis_queries_without_the_pll_copy_the_adapter_exactly() {
    // Layers 20..22: without their q and v deltas the demo's greedy answers change.
    let report = behaviour_json(&[
        "--pll",
        "off",
        "--layers",
        "20..22",
        "--queries",
        "288,576",
        "--max-new-tokens",
        "8",
    ]);
    assert_eq!(report["design"], "basis");
    assert_eq!(report["pll"], false);
    assert_eq!(report["attacked_sites"], 2);
    assert_eq!(report["attacked_projections"], 4);
    assert_eq!(report["queries_per_client"], serde_json::json!([576]));
    assert_eq!(report["reference_self_agreement"], 1.0);
    let held_out = report["references"].as_array().map_or(0, Vec::len);
    assert_eq!(held_out, 11);
    // The attacked sites matter: the adapter without them answers otherwise.
    assert!(number(&report["base"]["token_agreement"]) < 1.0, "{report}");
    let points = report["points"].as_array().expect("points");
    assert_eq!(points.len(), 2);
    // Half the rows of ΔW were never queried at 288: the copy is far off.
    assert_eq!(points[0]["queries"], 288);
    assert!(number(&points[0]["weight_error_mean"]) > 0.3, "{report}");
    // Every row, without noise: ΔW to CKKS precision, and the same answers.
    let full = &points[1];
    assert!(number(&full["weight_error_max"]) < 1e-4, "{report}");
    assert_eq!(full["copy"]["token_agreement"], 1.0, "{report}");
    assert_eq!(full["copy"]["answers_equal"], 11, "{report}");
}

#[test]
fn text_queries_report_agreement_per_point_and_client() {
    let report = behaviour_json(&[
        "--design",
        "text",
        "--clients",
        "2",
        "--layers",
        "0..1",
        "--queries",
        "24,64",
        "--held-out",
        "2",
        "--max-new-tokens",
        "4",
    ]);
    assert_eq!(report["design"], "text");
    assert_eq!(report["prompts"], "generic");
    assert_eq!(report["pll"], true);
    assert_eq!(report["noise"], 0.1);
    assert_eq!(report["clients"], 2);
    let per_client: Vec<u64> = report["queries_per_client"]
        .as_array()
        .expect("queries_per_client")
        .iter()
        .filter_map(|v| v.as_u64())
        .collect();
    // Prompt p goes to client p mod 2, 64 tokens in all.
    assert_eq!(per_client.len(), 2);
    assert_eq!(per_client.iter().sum::<u64>(), 64, "{report}");
    assert!(per_client.iter().all(|&q| q > 0), "{report}");
    assert_eq!(report["references"].as_array().map_or(0, Vec::len), 2);
    for point in report["points"].as_array().expect("points") {
        let copy = &point["copy"];
        let token = number(&copy["token_agreement"]);
        assert!((0.0..=1.0).contains(&token), "{report}");
        assert!(copy["answers_equal"].as_u64().is_some_and(|n| n <= 2));
        assert!(number(&point["weight_error_mean"]) > 0.0);
    }
    for key in ["setup", "protocol", "fit", "eval", "total"] {
        assert!(number(&report["seconds"][key]) >= 0.0, "{key}");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("helora-behaviour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "\n  \n").expect("prompts file");
    let missing = dir.join("no-adapter");
    let (empty, missing) = (empty.to_string_lossy(), missing.to_string_lossy());
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--queries", "0"], "0"),
        (vec!["--queries", "100000"], "100000"),
        (vec!["--queries", "64,32"], "ascending"),
        (vec!["--queries", "8", "--clients", "0"], "--clients"),
        (
            vec!["--queries", "8", "--pll", "off", "--noise", "0.1"],
            "--noise",
        ),
        (vec!["--queries", "8", "--noise=-1"], "noise"),
        (
            vec!["--queries", "8", "--prompts", "customer"],
            "--design text",
        ),
        (vec!["--queries", "5000"], "--clients 2"),
        (
            vec!["--queries", "8", "--design", "text", "--prompts", &empty],
            "no prompt",
        ),
        (
            vec![
                "--queries",
                "8",
                "--design",
                "text",
                "--prompts",
                "/nonexistent/p.txt",
            ],
            "does not exist",
        ),
        (
            vec!["--queries", "8", "--adapter", &missing],
            "does not exist",
        ),
        (vec!["--queries", "8", "--layers", "0..99"], "layers"),
        (vec!["--queries", "8", "--layers", "x"], "layer range"),
    ];
    for (args, expected) in cases {
        let mut all = vec!["attack", "behaviour"];
        all.extend(&args);
        let out = helora(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
