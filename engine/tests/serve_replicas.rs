//! Two `helora serve` replicas on one PostgreSQL state (a schema of their own, dropped
//! after): a key set registered through one serves through the other; six clients
//! hammering both never get a reply beyond their budgets, and every reply is charged once;
//! a replica killed with SIGKILL mid-generation loses its clients nothing (they move to the
//! other). A printed skip where PostgreSQL is not reachable; a failure under
//! `HELORA_REQUIRE_POSTGRES=1` (CI).

mod serve_common;

use helora_engine::secure::Serve;
use helora_engine::serve::remote;
use helora_engine::serve::state::{scratch, ScratchSchema};
use rand::SeedableRng;
use serve_common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A fresh schema on the test database, or `None` (skipped).
fn shared_state(tag: &str) -> Option<(tokio::runtime::Runtime, ScratchSchema)> {
    let rt = runtime();
    let database = rt.block_on(scratch::test_database()).expect("PostgreSQL")?;
    let schema = rt
        .block_on(ScratchSchema::create(&database, tag))
        .expect("a scratch schema");
    Some((rt, schema))
}

fn drop_state(rt: tokio::runtime::Runtime, schema: ScratchSchema) {
    rt.block_on(schema.drop_schema()).expect("schema dropped");
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_key_set_registered_on_one_replica_serves_on_the_other() {
    let Some((rt, schema)) = shared_state("handover") else {
        return;
    };
    let dir = TempDir::new("replicas-handover");
    let factors = write_adapter(&dir.path().join("adapter"), 11);
    let adapter = format!("small={}", dir.path().join("adapter").display());
    let serve = args(&[
        "--adapter",
        &adapter,
        "--pll",
        "off",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let state = schema.url();
    let one = Server::start_on(&dir, &state, &serve);
    let two = Server::start_on(&dir, &state, &serve);
    let token = add_client(&state, "c", &[]);
    let keys = dir.path().join("keys");

    let first = connect(&one.url, &token, &keys);
    assert!(first.key_upload_bytes > 0, "the first connection uploads");
    drop(first);
    let mut second = connect(&two.url, &token, &keys);
    assert_eq!(second.key_upload_bytes, 0, "replica 2 knew the key set");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let x = random_input(&mut rng);
    let modules: Vec<&str> = MODULES.to_vec();
    let request = second.client.encrypt(1, &modules, &x).expect("encrypts");
    let replies = second
        .server
        .apply_batch(helora::pll::ClientId(0), std::slice::from_ref(&request))
        .expect("replica 2 answers");
    let deltas = second
        .client
        .decrypt(&request, &replies[0])
        .expect("decrypts");
    assert_deltas(&factors, 1, &x, &deltas);

    let text = scrape(two.metrics.as_deref().expect("metrics"));
    assert_eq!(sample(&text, "helora_registrations_total", &[]), Some(0.0));
    assert_eq!(
        sample(&text, "helora_key_loads_total", &[]),
        Some(1.0),
        "replica 2 loaded the key set from the state: {text}"
    );
    drop((one, two));
    drop_state(rt, schema);
}

/// Per (client, layer): replies received.
type Served = BTreeMap<(usize, usize), u64>;

#[test]
fn six_clients_on_two_replicas_never_exceed_their_budgets() {
    const CLIENTS: usize = 6;
    const BUDGET: u64 = 7;
    /// Requests per client and layer: more than the budget, so every client runs out
    /// mid-run on both layers.
    const PER_LAYER: u64 = 10;
    let Some((rt, schema)) = shared_state("budgets") else {
        return;
    };
    let dir = TempDir::new("replicas-budgets");
    write_adapter(&dir.path().join("adapter"), 12);
    let adapter = format!("small={}", dir.path().join("adapter").display());
    let serve = args(&[
        "--adapter",
        &adapter,
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let state = schema.url();
    let replicas = [
        Server::start_on(&dir, &state, &serve),
        Server::start_on(&dir, &state, &serve),
    ];
    let budget = BUDGET.to_string();
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|k| add_client(&state, &format!("c{k}"), &["--budget", &budget]))
        .collect();
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();

    let served: Vec<Served> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .iter()
            .enumerate()
            .map(|(k, token)| {
                let urls = &urls;
                let keys = dir.path().join(format!("keys{k}"));
                scope.spawn(move || hammer(k, urls, token, &keys, PER_LAYER))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a client thread"))
            .collect()
    });

    let text = scrape(replicas[1].metrics.as_deref().expect("metrics"));
    for (k, served) in served.iter().enumerate() {
        for layer in 0..LAYERS {
            let replies = served.get(&(k, layer)).copied().unwrap_or(0);
            assert_eq!(
                replies, BUDGET,
                "client {k} layer {layer}: every query of its budget, none beyond"
            );
            for module in MODULES {
                assert_eq!(
                    sample(
                        &text,
                        "helora_budget_used",
                        &[
                            ("client", &format!("c{k}")),
                            ("layer", &layer.to_string()),
                            ("module", module)
                        ]
                    ),
                    Some(replies as f64),
                    "client {k} layer {layer} {module}: charged = evaluated"
                );
            }
        }
    }
    for replica in &replicas {
        assert!(!replica.log().contains("panicked"), "{}", replica.log());
    }
    drop(replicas);
    drop_state(rt, schema);
}

/// One client: requests alternating between the replicas and between the layers, each a
/// fresh session, until `per_layer` were sent to each layer; the replies it got.
fn hammer(
    k: usize,
    urls: &[String],
    token: &str,
    keys: &std::path::Path,
    per_layer: u64,
) -> Served {
    let mut connections: Vec<remote::Connected> =
        urls.iter().map(|url| connect(url, token, keys)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + k as u64);
    let modules: Vec<&str> = MODULES.to_vec();
    let mut served = Served::new();
    for n in 0..per_layer as usize * LAYERS {
        let layer = n % LAYERS;
        let connection = &mut connections[(n / LAYERS + k) % urls.len()];
        let x = random_input(&mut rng);
        let request = connection
            .client
            .encrypt(layer, &modules, &x)
            .expect("encrypts");
        match connection
            .server
            .apply_batch(helora::pll::ClientId(0), std::slice::from_ref(&request))
        {
            Ok(replies) => {
                connection
                    .client
                    .decrypt(&request, &replies[0])
                    .expect("a reply decrypts");
                *served.entry((k, layer)).or_default() += 1;
            }
            Err(e) => {
                let why = format!("{e:#}");
                assert!(
                    why.contains("ResourceExhausted") && why.contains("budget exhausted"),
                    "client {k}: {why}"
                );
            }
        }
    }
    served
}

#[test]
fn kill_9_one_replica_and_its_clients_finish_on_the_other() {
    const CLIENTS: usize = 4;
    const MAX_TOKENS: &str = "6";
    let Some((rt, schema)) = shared_state("failover") else {
        return;
    };
    let reference = in_process_reference(MAX_TOKENS);
    let dir = TempDir::new("replicas-failover");
    let state = schema.url();
    let serve = args(&[
        "--pll",
        "off",
        "--listen",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut doomed = Server::start_on(&dir, &state, &serve);
    let survivor = Server::start_on(&dir, &state, &serve);
    let tokens: Vec<String> = (0..CLIENTS)
        .map(|k| add_client(&state, &format!("c{k}"), &[]))
        .collect();
    // Every client starts on the replica that dies, the other next in its list.
    let servers = format!("{},{}", doomed.url, survivor.url);
    let clients = spawn_generations(&dir, &servers, &tokens, MAX_TOKENS);
    wait_for_answers(&doomed, 40.0);
    doomed.kill9();

    let reports: Vec<serde_json::Value> = clients
        .into_iter()
        .map(|c| generate_report(&c.wait_with_output().expect("client ends")))
        .collect();
    let prompt = reference["prompt_token_ids"]
        .as_array()
        .expect("prompt ids")
        .len();
    let text = scrape(survivor.metrics.as_deref().expect("metrics"));
    for (k, report) in reports.iter().enumerate() {
        assert_eq!(report["tokens"], reference["tokens"], "client {k}'s tokens");
        assert!(
            report["he"]["retries"].as_u64().expect("a remote report") > 0,
            "client {k} never saw its replica die"
        );
        let steps = report["tokens"].as_array().expect("tokens").len() - 1;
        for module in ["q_proj", "v_proj"] {
            assert_eq!(
                sample(
                    &text,
                    "helora_budget_used",
                    &[
                        ("client", &format!("c{k}")),
                        ("layer", "0"),
                        ("module", module)
                    ]
                ),
                Some((prompt + steps) as f64),
                "client {k} {module}: each request charged once across both replicas"
            );
        }
    }
    assert_eq!(
        sample(&text, "helora_registrations_total", &[]),
        Some(0.0),
        "no client registered again on the survivor"
    );
    assert!(!survivor.log().contains("panicked"), "{}", survivor.log());
    drop(survivor);
    drop_state(rt, schema);
}

/// A TCP forwarder to PostgreSQL that can be cut (every connection closed, new ones
/// refused) and restored: the database "briefly unreachable".
struct Outage {
    address: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Outage {
    fn forward_to(target: String) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let address = listener.local_addr().expect("address");
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(client) = incoming else { continue };
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(mut from), Ok(mut to)) = (from, to) else {
                        continue;
                    };
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
                        let mut buf = [0u8; 16 << 10];
                        loop {
                            if flag.load(Ordering::SeqCst) {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if matches!(
                                        e.kind(),
                                        std::io::ErrorKind::WouldBlock
                                            | std::io::ErrorKind::TimedOut
                                    ) => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { address, cut }
    }

    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, std::sync::atomic::Ordering::SeqCst);
    }
}

fn readiness(rt: &tokio::runtime::Runtime, url: &str) -> i32 {
    health(rt, url, "helora.v1.PrivateLora").expect("health answers")
}

/// While the state database is out of reach nothing is answered without its charge:
/// requests get UNAVAILABLE (which clients retry) and readiness turns NOT_SERVING; once it
/// is back, the same client is served again.
#[test]
fn an_unreachable_state_refuses_with_unavailable_and_recovers() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let Some((rt, schema)) = shared_state("outage") else {
        return;
    };
    let options: sqlx::postgres::PgConnectOptions = schema.url().parse().expect("a URL");
    let target = format!("{}:{}", options.get_host(), options.get_port());
    let outage = Outage::forward_to(target.clone());
    let state = schema
        .url()
        .replacen(&target, &outage.address.to_string(), 1);
    assert_ne!(state, schema.url(), "the state goes through the forwarder");
    let dir = TempDir::new("replicas-outage");
    write_adapter(&dir.path().join("adapter"), 13);
    let adapter = format!("small={}", dir.path().join("adapter").display());
    let server = Server::start_on(
        &dir,
        &state,
        &args(&[
            "--adapter",
            &adapter,
            "--pll",
            "off",
            "--listen",
            "127.0.0.1:0",
        ]),
    );
    let token = add_client(&state, "c", &[]);
    let mut raw = raw(&rt, &server.url);
    let (mut client, fp) = raw_client(&rt, &mut raw, &token);
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(13));
    let request = client.encrypt(0, &MODULES, &x).expect("encrypts");
    let ask = |raw: &mut Raw, seq: u64| {
        session(
            &rt,
            raw,
            &token,
            vec![site_request(&request, [seq as u8; 16], seq, &fp)],
        )
    };
    ask(&mut raw, 0).expect("served while the state answers");
    let serving = ServingStatus::Serving as i32;
    assert_eq!(readiness(&rt, &server.url), serving);

    outage.set_cut(true);
    let refused = ask(&mut raw, 1).expect_err("no answer without a charge");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("unreachable"),
        "{}",
        refused.message()
    );
    let started = Instant::now();
    while readiness(&rt, &server.url) == serving {
        assert!(started.elapsed() < Duration::from_secs(30), "still ready");
        std::thread::sleep(Duration::from_millis(200));
    }

    outage.set_cut(false);
    let started = Instant::now();
    while readiness(&rt, &server.url) != serving {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not ready again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    ask(&mut raw, 2).expect("served again");
    assert!(!server.log().contains("panicked"), "{}", server.log());
    drop(server);
    drop_state(rt, schema);
}
