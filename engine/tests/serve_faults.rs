//! A server killed with SIGKILL in the middle of four clients' generations (the demo model
//! and adapter, PLL off) and restarted on the same state and port: every client finishes
//! with exactly the tokens of its in-process run, no registration is lost, and every
//! request is charged exactly once (re-sent requests carry their idempotency key).

mod serve_common;

use serve_common::*;

const CLIENTS: usize = 4;
const MAX_TOKENS: &str = "6";

#[test]
fn kill_9_mid_generation_loses_nothing_and_charges_once() {
    let reference = in_process_reference(MAX_TOKENS);
    let dir = TempDir::new("faults");
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|k| add_client(&dir.state(), &format!("c{k}"), &[]))
        .collect();
    let serve_args = |listen: &str| -> Vec<String> {
        [
            "--pll",
            "off",
            "--metrics",
            "127.0.0.1:0",
            "--listen",
            listen,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let mut server = Server::start(&dir, &serve_args("127.0.0.1:0"));
    let port = server.port();
    let clients = spawn_generations(&dir, &server.url, &tokens, MAX_TOKENS);
    // Kill once the clients are well into their generations (past registration, in the
    // prefill or the decoding).
    wait_for_answers(&server, 40.0);
    server.kill9();
    let server = Server::start(&dir, &serve_args(&format!("127.0.0.1:{port}")));

    let reports: Vec<serde_json::Value> = clients
        .into_iter()
        .map(|c| generate_report(&c.wait_with_output().expect("client ends")))
        .collect();
    let retries: u64 = reports
        .iter()
        .map(|r| r["he"]["retries"].as_u64().expect("a remote report"))
        .sum();
    assert!(retries > 0, "no client saw the server die");
    let prompt = reference["prompt_token_ids"]
        .as_array()
        .expect("prompt ids")
        .len();
    let text = scrape(server.metrics.as_deref().expect("metrics"));
    for (k, report) in reports.iter().enumerate() {
        assert_eq!(report["tokens"], reference["tokens"], "client {k}'s tokens");
        // The prompt's tokens, then one per decoded token but the last: each once.
        let steps = report["tokens"].as_array().expect("tokens").len() - 1;
        let name = format!("c{k}");
        for module in ["q_proj", "v_proj"] {
            assert_eq!(
                sample(
                    &text,
                    "helora_budget_used",
                    &[("client", &name), ("layer", "0"), ("module", module)]
                ),
                Some((prompt + steps) as f64),
                "client {k} {module}: {text}"
            );
        }
    }
    // The restarted server served every client from the key sets in its state.
    assert!(
        !server.log().contains("registered a key set"),
        "a client had to register again: {}",
        server.log()
    );
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
