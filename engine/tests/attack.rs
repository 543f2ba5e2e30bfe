//! `helora attack extract` as a user runs it: one JSON object on stdout, the attack
//! succeeds without the PLL and stays at or above the bound with it; bad input is an
//! error on stderr with a non-zero exit code.

mod common;

use common::helora;

fn extract_json(pll: &str) -> serde_json::Value {
    let out = helora(&[
        "attack",
        "extract",
        "--d",
        "32",
        "--r",
        "2",
        "--queries",
        "32",
        "--pll",
        pll,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    serde_json::from_str(&stdout).expect("stdout is exactly one JSON value")
}

#[test]
fn extract_json_reports_the_error_and_the_bound() {
    let off = extract_json("off");
    assert_eq!(off["d"], 32);
    assert_eq!(off["r"], 2);
    assert_eq!(off["queries"], 32);
    assert_eq!(off["pll"], false);
    assert!(off["relative_error"].as_f64().is_some_and(|e| e < 1e-4));
    assert_eq!(off["bound"], 0.0);
    assert!(off["seconds"].as_f64().is_some_and(|s| s > 0.0));

    let on = extract_json("on");
    assert_eq!(on["pll"], true);
    let (error, bound) = (
        on["relative_error"].as_f64().unwrap_or(0.0),
        on["bound"].as_f64().unwrap_or(f64::INFINITY),
    );
    assert!(bound > 0.0 && error >= bound, "{on}");
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    for args in [
        &[
            "attack",
            "extract",
            "--d",
            "4",
            "--r",
            "8",
            "--queries",
            "4",
        ][..],
        &[
            "attack",
            "extract",
            "--d",
            "16",
            "--r",
            "2",
            "--queries",
            "4",
            "--noise",
            "-1",
        ],
        &[
            "attack",
            "extract",
            "--d",
            "16",
            "--r",
            "2",
            "--queries",
            "4",
            "--scale",
            "0",
        ],
        // Answers this large would wrap around the output modulus.
        &[
            "attack",
            "extract",
            "--d",
            "16",
            "--r",
            "2",
            "--queries",
            "4",
            "--scale",
            "1e7",
        ],
        &[
            "attack",
            "extract",
            "--d",
            "0",
            "--r",
            "2",
            "--queries",
            "4",
        ],
    ] {
        let out = helora(args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
