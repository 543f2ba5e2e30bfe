//! `helora serve` over loopback, as a separate process on a fresh SQLite state: correct
//! replies (against the plaintext product), durable registrations and budgets, a precise
//! status for every bad input while other clients keep being served, bounded queues,
//! idempotent re-sends, TLS, metrics, and a clean drain on SIGTERM.

mod serve_common;

use helora_engine::secure::{self, Serve};
use helora_engine::serve::proto;
use rand::SeedableRng;
use serve_common::*;
use tonic::Code;

fn adapter_args(dir: &TempDir, seed: u64) -> (Factors, Vec<String>) {
    let adapter = dir.path().join("adapter");
    let factors = write_adapter(&adapter, seed);
    (
        factors,
        vec![format!("--adapter=tiny={}", adapter.display())],
    )
}

fn args(base: &[String], extra: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect()
}

/// The remote client gets the plaintext product at every site; a second run and a
/// restarted server find its key set (nothing re-uploaded).
#[test]
fn remote_replies_are_right_and_registrations_survive_a_restart() {
    let dir = TempDir::new("remote");
    let (factors, base) = adapter_args(&dir, 1);
    let token = add_client(&dir.state(), "alice", &[]);
    let keys = dir.path().join("keys");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut server = Server::start(
        &dir,
        &args(&base, &["--pll", "off", "--listen", "127.0.0.1:0"]),
    );

    let mut check = |url: &str, expect_upload: bool| {
        let mut c = connect(url, &token, &keys);
        assert_eq!(c.key_upload_bytes > 0, expect_upload, "key upload");
        for layer in 0..LAYERS {
            // A prompt of 3 tokens, then one token.
            for tokens in [3, 1] {
                let xs: Vec<Vec<f32>> = (0..tokens).map(|_| random_input(&mut rng)).collect();
                let requests: Vec<secure::Request> = xs
                    .iter()
                    .map(|x| c.client.encrypt(layer, &MODULES, x).expect("encrypts"))
                    .collect();
                let replies = c
                    .server
                    .apply_batch(helora::pll::ClientId(0), &requests)
                    .expect("served");
                for ((x, request), reply) in xs.iter().zip(&requests).zip(&replies) {
                    let deltas = c.client.decrypt(request, reply).expect("decrypts");
                    assert_deltas(&factors, layer, x, &deltas);
                }
            }
        }
        let network = c.server.network().expect("remote stats");
        assert_eq!(network.requests, 2 * LAYERS as u64);
        assert_eq!(network.retries, 0);
    };
    check(&server.url, true);
    check(&server.url, false);
    let port = server.port();
    assert!(server.terminate().success(), "{}", server.log());
    let server = Server::start(
        &dir,
        &args(
            &base,
            &["--pll", "off", "--listen", &format!("127.0.0.1:{port}")],
        ),
    );
    check(&server.url, false);
}

/// Budgets: charged once per request (a re-send of the same (session, seq) and inputs gets
/// the identical reply for free), refused when exhausted, and still exhausted after a
/// restart; a reused idempotency key with other inputs is refused.
#[test]
fn budgets_are_charged_once_durably_and_enforced() {
    let dir = TempDir::new("budget");
    let (_, base) = adapter_args(&dir, 2);
    let token = add_client(&dir.state(), "bob", &["--budget", "3"]);
    let serve_args = args(
        &base,
        &["--pll", "on", "--budget", "1000", "--listen", "127.0.0.1:0"],
    );
    let mut server = Server::start(&dir, &serve_args);
    let rt = runtime();
    let mut raw = raw(&rt, &server.url);
    let manifest_reply = rt
        .block_on(raw.get_manifest(authed(proto::ManifestRequest::default(), &token)))
        .expect("manifest")
        .into_inner();
    assert_eq!((manifest_reply.budget, manifest_reply.queries_left), (3, 3));
    assert!(manifest_reply.noise > 0.0 && manifest_reply.flooding);
    let (mut client, fp) = raw_client(&rt, &mut raw, &token);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let session_id = [5u8; 16];
    let request = |client: &mut secure::SecureClient, rng: &mut rand_chacha::ChaCha8Rng| {
        client
            .encrypt(0, &MODULES, &random_input(rng))
            .expect("encrypts")
    };
    let first = request(&mut client, &mut rng);
    let once = session(
        &rt,
        &mut raw,
        &token,
        vec![site_request(&first, session_id, 0, &fp)],
    )
    .expect("answered");
    let again = session(
        &rt,
        &mut raw,
        &token,
        vec![site_request(&first, session_id, 0, &fp)],
    )
    .expect("answered again");
    assert_eq!(
        once[0].tokens, again[0].tokens,
        "a re-sent request gets the identical reply"
    );
    let other = request(&mut client, &mut rng);
    let reused = session(
        &rt,
        &mut raw,
        &token,
        vec![site_request(&other, session_id, 0, &fp)],
    )
    .expect_err("a reused key with other inputs");
    assert_eq!(reused.code(), Code::FailedPrecondition, "{reused:?}");
    let left = |raw: &mut Raw| {
        rt.block_on(raw.get_manifest(authed(proto::ManifestRequest::default(), &token)))
            .expect("manifest")
            .into_inner()
            .queries_left
    };
    assert_eq!(left(&mut raw), 2, "the re-send was not charged");
    let messages = (1..3)
        .map(|seq| site_request(&request(&mut client, &mut rng), session_id, seq, &fp))
        .collect();
    assert_eq!(
        session(&rt, &mut raw, &token, messages)
            .expect("answered")
            .len(),
        2
    );
    assert_eq!(left(&mut raw), 0);
    let exhausted = session(
        &rt,
        &mut raw,
        &token,
        vec![site_request(
            &request(&mut client, &mut rng),
            session_id,
            3,
            &fp,
        )],
    )
    .expect_err("over budget");
    assert_eq!(exhausted.code(), Code::ResourceExhausted, "{exhausted:?}");
    assert!(exhausted.message().contains("budget"), "{exhausted:?}");

    let port = server.port();
    server.kill9();
    let server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "on",
                "--budget",
                "1000",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ],
        ),
    );
    let mut raw = serve_common::raw(&rt, &server.url);
    assert_eq!(left(&mut raw), 0, "the budget survived kill -9");
    let still = session(
        &rt,
        &mut raw,
        &token,
        vec![site_request(
            &request(&mut client, &mut rng),
            [6u8; 16],
            0,
            &fp,
        )],
    )
    .expect_err("still over budget");
    assert_eq!(still.code(), Code::ResourceExhausted, "{still:?}");
}

/// Every bad input gets its own status and message, nothing panics, and a good client is
/// served after each.
#[test]
fn bad_input_gets_precise_statuses_and_others_keep_being_served() {
    let dir = TempDir::new("bad");
    let (factors, base) = adapter_args(&dir, 3);
    let token = add_client(&dir.state(), "good", &[]);
    let revoked = add_client(&dir.state(), "gone", &[]);
    let limited = add_client(&dir.state(), "limited", &["--adapter", "other"]);
    revoke_client(&dir.state(), "gone");
    let server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "off",
                "--queue-tokens",
                "8",
                "--max-key-mib",
                "32",
                "--listen",
                "127.0.0.1:0",
            ],
        ),
    );
    let rt = runtime();
    let mut raw = raw(&rt, &server.url);
    let (mut client, fp) = raw_client(&rt, &mut raw, &token);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut seq = 0u64;
    let mut still_served = |raw: &mut Raw, client: &mut secure::SecureClient| {
        let x = random_input(&mut rng);
        let request = client.encrypt(1, &MODULES, &x).expect("encrypts");
        seq += 1;
        let replies = session(
            &rt,
            raw,
            &token,
            vec![site_request(&request, [1; 16], seq, &fp)],
        )
        .expect("a good request is still served");
        let deltas = client
            .decrypt(&request, &reply_of(&replies[0]))
            .expect("decrypts");
        assert_deltas(&factors, 1, &x, &deltas);
    };
    let expect = |result: Result<(), tonic::Status>, code: Code, words: &str| {
        let status = result.expect_err("refused");
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(words),
            "{status:?} lacks {words:?}"
        );
    };
    let manifest_with = |raw: &mut Raw, token: Option<&str>, adapter: &str| {
        let message = proto::ManifestRequest {
            adapter: adapter.to_string(),
        };
        let request = match token {
            Some(t) => authed(message, t),
            None => tonic::Request::new(message),
        };
        rt.block_on(raw.get_manifest(request)).map(|_| ())
    };

    // Identity.
    expect(
        manifest_with(&mut raw, None, ""),
        Code::Unauthenticated,
        "missing API token",
    );
    expect(
        manifest_with(&mut raw, Some("hlr_nope"), ""),
        Code::Unauthenticated,
        "malformed",
    );
    let unknown = format!("hlr_{}", "0".repeat(64));
    expect(
        manifest_with(&mut raw, Some(&unknown), ""),
        Code::Unauthenticated,
        "unknown API token",
    );
    expect(
        manifest_with(&mut raw, Some(&revoked), ""),
        Code::PermissionDenied,
        "revoked",
    );
    expect(
        manifest_with(&mut raw, Some(&token), "nosuch"),
        Code::NotFound,
        "nosuch",
    );
    expect(
        manifest_with(&mut raw, Some(&limited), "tiny"),
        Code::PermissionDenied,
        "may use adapter",
    );
    still_served(&mut raw, &mut client);

    // Key uploads.
    let manifest = manifest(&rt, &mut raw, &token);
    let (_, upload) = secure::SecureClient::new(&secure::parameters().unwrap(), manifest).unwrap();
    let good = key_chunks(&upload);
    let mut no_header = good.clone();
    no_header[0].header = None;
    expect(
        register(&rt, &mut raw, &token, no_header).map(|_| ()),
        Code::InvalidArgument,
        "header",
    );
    let mut huge = good.clone();
    if let Some(h) = huge[0].header.as_mut() {
        h.eval_keys_len = 1 << 40;
    }
    expect(
        register(&rt, &mut raw, &token, huge).map(|_| ()),
        Code::InvalidArgument,
        "limit",
    );
    let truncated = good[..good.len() - 1].to_vec();
    expect(
        register(&rt, &mut raw, &token, truncated).map(|_| ()),
        Code::InvalidArgument,
        "truncated",
    );
    let mut longer = good.clone();
    longer.push(proto::KeyChunk {
        header: None,
        data: vec![0; 16],
    });
    expect(
        register(&rt, &mut raw, &token, longer).map(|_| ()),
        Code::InvalidArgument,
        "runs past",
    );
    let mut wrong_fp = good.clone();
    if let Some(h) = wrong_fp[0].header.as_mut() {
        h.fingerprint = vec![0; 32];
    }
    expect(
        register(&rt, &mut raw, &token, wrong_fp).map(|_| ()),
        Code::InvalidArgument,
        "fingerprint",
    );
    // Right framing, garbage keys.
    let garbage = secure::KeyUpload {
        eval_keys: vec![7; 4096],
        public_key: vec![9; 128],
    };
    expect(
        register(&rt, &mut raw, &token, key_chunks(&garbage)).map(|_| ()),
        Code::FailedPrecondition,
        "evaluation keys",
    );
    register(&rt, &mut raw, &token, good.clone()).expect("the good upload registers");
    expect(
        register(&rt, &mut raw, &token, good).map(|_| ()),
        Code::AlreadyExists,
        "registered already",
    );
    still_served(&mut raw, &mut client);

    // Site requests.
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(9));
    let request = client.encrypt(0, &MODULES, &x).expect("encrypts");
    let send = |raw: &mut Raw, message: proto::SiteRequest| {
        session(&rt, raw, &token, vec![message]).map(|_| ())
    };
    let fresh = || site_request(&request, [2; 16], 100, &fp);
    let mut m = fresh();
    m.session = vec![1; 3];
    expect(send(&mut raw, m), Code::InvalidArgument, "session id");
    let mut m = fresh();
    m.fingerprint = vec![3; 32];
    expect(
        send(&mut raw, m),
        Code::FailedPrecondition,
        "register it first",
    );
    let mut m = fresh();
    m.layer = 99;
    expect(
        send(&mut raw, m),
        Code::InvalidArgument,
        "no adapter for layer 99",
    );
    let mut m = fresh();
    m.modules = vec!["q_proj".into(), "q_proj".into()];
    expect(send(&mut raw, m), Code::InvalidArgument, "twice");
    let mut m = fresh();
    m.modules = vec![];
    expect(
        send(&mut raw, m),
        Code::InvalidArgument,
        "names no projection",
    );
    let mut m = fresh();
    let extra = m.tokens[0].inputs[0].clone();
    m.tokens[0].inputs.push(extra);
    expect(
        send(&mut raw, m),
        Code::InvalidArgument,
        "input ciphertexts",
    );
    let mut m = fresh();
    m.tokens[0].inputs[0].truncate(40);
    expect(send(&mut raw, m), Code::InvalidArgument, "input ciphertext");
    let mut m = fresh();
    // The header's parameter id (bytes 7..15): a ciphertext under other parameters.
    m.tokens[0].inputs[0][9] ^= 0xff;
    expect(send(&mut raw, m), Code::InvalidArgument, "input ciphertext");
    let mut m = fresh();
    m.tokens = vec![];
    expect(
        send(&mut raw, m),
        Code::InvalidArgument,
        "at least one token",
    );
    let mut m = fresh();
    m.tokens = vec![m.tokens[0].clone(); 9];
    expect(send(&mut raw, m), Code::InvalidArgument, "at most 8 tokens");
    let mut m = fresh();
    m.adapter = "nosuch".into();
    expect(send(&mut raw, m), Code::NotFound, "nosuch");
    still_served(&mut raw, &mut client);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Over its queue capacity the server answers RESOURCE_EXHAUSTED at once, and serves the
/// queued request.
#[test]
fn full_queues_refuse_at_once() {
    let dir = TempDir::new("queue");
    let (_, base) = adapter_args(&dir, 4);
    let token = add_client(&dir.state(), "q", &[]);
    let server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "off",
                "--queue-tokens",
                "2",
                "--batch-tokens",
                "4",
                "--batch-wait-ms",
                "3000",
                "--listen",
                "127.0.0.1:0",
            ],
        ),
    );
    let rt = runtime();
    let mut raw = raw(&rt, &server.url);
    let (mut client, fp) = raw_client(&rt, &mut raw, &token);
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(5));
    let request = client.encrypt(0, &MODULES, &x).expect("encrypts");
    let mut two = site_request(&request, [3; 16], 0, &fp);
    two.tokens.push(two.tokens[0].clone());
    // A second, idle session: the queued request must wait for it (a lone session's
    // request is evaluated at once).
    let _idle = idle_session(&rt, &mut raw, &token);
    let url = server.url.clone();
    let waiting_token = token.clone();
    // Two tokens wait 3 s for a batch of four: the queues are full meanwhile.
    let waiting = std::thread::spawn(move || {
        let rt = runtime();
        let mut raw = serve_common::raw(&rt, &url);
        session(&rt, &mut raw, &waiting_token, vec![two])
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    let started = std::time::Instant::now();
    let refused = session(
        &rt,
        &mut raw,
        &token,
        vec![site_request(&request, [4; 16], 0, &fp)],
    )
    .expect_err("queues full");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("queues are full"), "{refused:?}");
    // Refused while the first request was still waiting, not after it.
    assert!(
        !waiting.is_finished(),
        "answered only after the queue drained"
    );
    let _ = started;
    let replies = waiting
        .join()
        .expect("thread")
        .expect("the queued request is served");
    assert_eq!(replies[0].tokens.len(), 2);
}

/// Eight clients × 32 requests at once: every reply right, none lost, batches formed
/// across clients.
#[test]
fn eight_clients_of_32_requests_all_answered_correctly() {
    let dir = TempDir::new("load");
    let (factors, base) = adapter_args(&dir, 5);
    let server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "off",
                "--batch-wait-ms",
                "5",
                "--metrics",
                "127.0.0.1:0",
                "--listen",
                "127.0.0.1:0",
            ],
        ),
    );
    let factors = std::sync::Arc::new(factors);
    let workers: Vec<_> = (0..8)
        .map(|k| {
            let token = add_client(&dir.state(), &format!("load{k}"), &[]);
            let keys = dir.path().join(format!("keys{k}"));
            let url = server.url.clone();
            let factors = factors.clone();
            std::thread::spawn(move || {
                let mut c = connect(&url, &token, &keys);
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + k);
                for n in 0..32 {
                    let layer = n % LAYERS;
                    let x = random_input(&mut rng);
                    let request = c.client.encrypt(layer, &MODULES, &x).expect("encrypts");
                    let reply = c
                        .server
                        .apply_batch(helora::pll::ClientId(0), std::slice::from_ref(&request))
                        .expect("answered")
                        .pop()
                        .expect("one reply");
                    let deltas = c.client.decrypt(&request, &reply).expect("decrypts");
                    assert_deltas(&factors, layer, &x, &deltas);
                }
                32
            })
        })
        .collect();
    let answered: usize = workers.into_iter().map(|w| w.join().expect("client")).sum();
    assert_eq!(answered, 8 * 32);
    let text = scrape(server.metrics.as_deref().expect("metrics"));
    assert_eq!(
        sample(&text, "helora_requests_total", &[("outcome", "ok")]),
        Some(256.0),
        "{text}"
    );
    for k in 0..8 {
        let name = format!("load{k}");
        // 16 requests per layer and module, each charged once.
        assert_eq!(
            sample(
                &text,
                "helora_budget_used",
                &[("client", &name), ("layer", "0"), ("module", "q_proj")]
            ),
            Some(16.0),
            "{text}"
        );
    }
    assert!(text.contains("helora_batch_tokens_bucket"), "{text}");
}

/// With a certificate and key the server speaks TLS only; a client that trusts the CA is
/// served, a plaintext client is not.
#[test]
fn tls_with_a_self_signed_pair() {
    let dir = TempDir::new("tls");
    let (factors, base) = adapter_args(&dir, 6);
    let token = add_client(&dir.state(), "tls", &[]);
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "off",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert_path.to_str().unwrap(),
                "--tls-key",
                key_path.to_str().unwrap(),
            ],
        ),
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let url = format!("https://localhost:{}", server.port());
    let mut options = remote_options(&url, &token, &dir.path().join("keys"));
    options.ca_cert = Some(cert_path.clone());
    let mut c = helora_engine::serve::remote::connect(&options, &secure::parameters().unwrap())
        .expect("a TLS client connects");
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(6));
    let request = c.client.encrypt(0, &MODULES, &x).unwrap();
    let reply = c
        .server
        .apply_batch(helora::pll::ClientId(0), std::slice::from_ref(&request))
        .expect("served over TLS")
        .pop()
        .unwrap();
    assert_deltas(
        &factors,
        0,
        &x,
        &c.client.decrypt(&request, &reply).unwrap(),
    );

    let plain = remote_options(
        &format!("http://127.0.0.1:{}", server.port()),
        &token,
        &dir.path().join("keys2"),
    );
    let e = helora_engine::serve::remote::connect(&plain, &secure::parameters().unwrap());
    assert!(
        e.is_err(),
        "a plaintext client is not served by a TLS server"
    );
    let mut untrusted = remote_options(&url, &token, &dir.path().join("keys3"));
    untrusted.ca_cert = None;
    assert!(
        helora_engine::serve::remote::connect(&untrusted, &secure::parameters().unwrap()).is_err(),
        "a client that does not trust the certificate refuses the server"
    );
}

/// SIGTERM: the request in flight is answered, then the server exits cleanly.
#[test]
fn sigterm_drains_the_request_in_flight() {
    let dir = TempDir::new("drain");
    let (factors, base) = adapter_args(&dir, 7);
    let token = add_client(&dir.state(), "drain", &[]);
    let mut server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "off",
                "--batch-tokens",
                "8",
                "--batch-wait-ms",
                "2000",
                "--listen",
                "127.0.0.1:0",
            ],
        ),
    );
    let rt = runtime();
    let mut raw = raw(&rt, &server.url);
    let (mut client, fp) = raw_client(&rt, &mut raw, &token);
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(8));
    let request = client.encrypt(1, &MODULES, &x).expect("encrypts");
    let message = site_request(&request, [8; 16], 0, &fp);
    // An idle session keeps the request waiting for its batch (2 s) while the signal comes.
    let _idle = idle_session(&rt, &mut raw, &token);
    let url = server.url.clone();
    let in_flight_token = token.clone();
    let in_flight = std::thread::spawn(move || {
        let rt = runtime();
        let mut raw = serve_common::raw(&rt, &url);
        session(&rt, &mut raw, &in_flight_token, vec![message])
    });
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert!(
        !in_flight.is_finished(),
        "the request was answered before the signal"
    );
    let status = server.terminate();
    let replies = in_flight
        .join()
        .expect("thread")
        .expect("answered while draining");
    let deltas = client
        .decrypt(&request, &reply_of(&replies[0]))
        .expect("decrypts");
    assert_deltas(&factors, 1, &x, &deltas);
    assert!(status.success(), "exit {status:?}: {}", server.log());
    assert!(server.log().contains("stopped"), "{}", server.log());
}

/// `--device cuda`: served on the CUDA backend where there is one (the stand-in driver in
/// CI), a clear error where the build or the machine has none.
#[test]
fn serve_on_cuda_or_a_clear_error() {
    let dir = TempDir::new("cuda");
    let (factors, base) = adapter_args(&dir, 9);
    let token = add_client(&dir.state(), "gpu", &[]);
    let server = match Server::try_start(
        &dir,
        &args(
            &base,
            &["--pll", "on", "--device", "cuda", "--listen", "127.0.0.1:0"],
        ),
    ) {
        Ok(server) => server,
        Err(log) => {
            assert!(!log.contains("panicked"), "{log}");
            assert!(log.contains("--device cuda"), "an unclear error: {log}");
            assert!(
                !cfg!(feature = "cuda")
                    || std::env::var("HELORA_REQUIRE_GPU").as_deref() != Ok("1"),
                "HELORA_REQUIRE_GPU=1 but serve --device cuda did not start: {log}"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: serve --device cuda: {}",
                log.trim()
            );
            return;
        }
    };
    let mut c = connect(&server.url, &token, &dir.path().join("keys"));
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(10));
    let request = c.client.encrypt(1, &MODULES, &x).expect("encrypts");
    let reply = c
        .server
        .apply_batch(helora::pll::ClientId(0), std::slice::from_ref(&request))
        .expect("served on the GPU")
        .pop()
        .expect("one reply");
    let deltas = c.client.decrypt(&request, &reply).expect("decrypts");
    // PLL on: the perturbation's 10 % relative noise on B, so a loose check of the product.
    for (module, delta) in MODULES.iter().zip(&deltas) {
        let want = reference(&factors, 1, module, &x);
        let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|a| a * a).sum::<f64>().sqrt();
        let error = norm(&mut delta.iter().zip(&want).map(|(g, w)| f64::from(*g) - w));
        let scale = norm(&mut want.iter().copied());
        assert!(error <= 0.5 * scale, "{module}: error {error} of {scale}");
    }
}

/// A malformed token or an unreachable server is refused before the model loads.
#[test]
fn generate_against_a_bad_server_fails_before_loading_the_model() {
    let zeros = format!("hlr_{}", "0".repeat(64));
    for (token, expect) in [("bad", "malformed"), (zeros.as_str(), "connecting to")] {
        let out = std::process::Command::new(binary())
            .args([
                "generate",
                "--server",
                "http://127.0.0.1:1",
                "--token",
                token,
            ])
            .output()
            .expect("helora runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
        assert!(
            !stderr.contains("dequantising") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
}

/// grpc.health.v1 (what Kubernetes' probes ask): the server and its API are SERVING.
#[test]
fn the_health_service_reports_serving() {
    let dir = TempDir::new("health");
    let (_, base) = adapter_args(&dir, 9);
    let server = Server::start(
        &dir,
        &args(&base, &["--pll", "off", "--listen", "127.0.0.1:0"]),
    );
    let rt = runtime();
    let statuses: Vec<_> = ["", "helora.v1.PrivateLora", "no.such.Service"]
        .iter()
        .map(|service| health(&rt, &server.url, service))
        .collect();
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(
        statuses,
        vec![Ok(serving), Ok(serving), Err(Code::NotFound)]
    );
}

/// With room for one key set in memory, two clients taking turns evict each other: every
/// reply is still right (the evicted key set is loaded from the state again), and the
/// loads are counted.
#[test]
fn evicted_key_sets_are_loaded_again() {
    let dir = TempDir::new("residency");
    let (factors, base) = adapter_args(&dir, 10);
    let server = Server::start(
        &dir,
        &args(
            &base,
            &[
                "--pll",
                "off",
                "--resident-key-sets",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--metrics",
                "127.0.0.1:0",
            ],
        ),
    );
    let mut clients: Vec<_> = ["r0", "r1"]
        .iter()
        .map(|name| {
            let token = add_client(&dir.state(), name, &[]);
            connect(&server.url, &token, &dir.path().join(name))
        })
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(10);
    for turn in 0..4 {
        let c = &mut clients[turn % 2];
        let x = random_input(&mut rng);
        let request = c.client.encrypt(0, &MODULES, &x).expect("encrypts");
        let replies = c
            .server
            .apply_batch(helora::pll::ClientId(0), std::slice::from_ref(&request))
            .expect("served");
        let deltas = c.client.decrypt(&request, &replies[0]).expect("decrypts");
        assert_deltas(&factors, 0, &x, &deltas);
    }
    let text = scrape(server.metrics.as_deref().expect("metrics"));
    // r1's registration evicted r0's key set; from then on each turn finds its own
    // evicted by the other's: four loads.
    assert_eq!(
        sample(&text, "helora_key_loads_total", &[]),
        Some(4.0),
        "{text}"
    );
    assert_eq!(sample(&text, "helora_resident_key_sets", &[]), Some(1.0));
}

/// `clients rotate`: the old token is refused at once, the new one keeps the identity and
/// what it has used.
#[test]
fn a_rotated_token_keeps_the_identity() {
    let dir = TempDir::new("rotate");
    let (_, base) = adapter_args(&dir, 11);
    let old = add_client(&dir.state(), "carol", &["--budget", "9"]);
    let server = Server::start(&dir, &args(&base, &["--listen", "127.0.0.1:0"]));
    let rt = runtime();
    let mut raw = raw(&rt, &server.url);
    let (mut client, fp) = raw_client(&rt, &mut raw, &old);
    let x = random_input(&mut rand_chacha::ChaCha8Rng::seed_from_u64(11));
    let request = client.encrypt(0, &MODULES, &x).expect("encrypts");
    session(
        &rt,
        &mut raw,
        &old,
        vec![site_request(&request, [1; 16], 0, &fp)],
    )
    .expect("served");

    let out = std::process::Command::new(binary())
        .args(["clients", "rotate", "carol", "--state", &dir.state()])
        .output()
        .expect("helora runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_string();
    assert_ne!(new, old);
    let refused = rt
        .block_on(raw.get_manifest(authed(proto::ManifestRequest::default(), &old)))
        .expect_err("the old token is refused");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let reply = rt
        .block_on(raw.get_manifest(authed(proto::ManifestRequest::default(), &new)))
        .expect("the new token is served")
        .into_inner();
    assert_eq!((reply.budget, reply.queries_left), (9, 8));
    // Its key set is its own still.
    session(
        &rt,
        &mut raw,
        &new,
        vec![site_request(&request, [2; 16], 0, &fp)],
    )
    .expect("served with the key set registered under the old token");
    let out = std::process::Command::new(binary())
        .args(["clients", "rotate", "nobody", "--state", &dir.state()])
        .output()
        .expect("helora runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no client named"));
}

/// The registration challenge over the network: each identity gets its own key seed (the
/// same on every call), keys made from another seed are refused and not kept; and the
/// adapter's budget bounds all identities together, while `clients usage` reports the
/// spend in units of d_in.
#[test]
fn key_seeds_are_per_identity_and_adapter_budgets_bound_everyone() {
    let dir = TempDir::new("challenge");
    let (_, base) = adapter_args(&dir, 4);
    let alice = add_client(&dir.state(), "alice", &[]);
    let carol = add_client(&dir.state(), "carol", &[]);
    let server = Server::start(
        &dir,
        &args(&base, &["--adapter-budget", "3", "--listen", "127.0.0.1:0"]),
    );
    let rt = runtime();
    let mut raw = raw(&rt, &server.url);
    let alices = manifest(&rt, &mut raw, &alice);
    assert_eq!(manifest(&rt, &mut raw, &alice).key_seed, alices.key_seed);
    let carols = manifest(&rt, &mut raw, &carol);
    assert_ne!(alices.key_seed, carols.key_seed, "one seed per identity");

    // Carol's keys made from Alice's seed: refused, nothing kept.
    let params = secure::parameters().unwrap();
    let (_, borrowed) = secure::SecureClient::new(&params, alices).unwrap();
    let refused = register(&rt, &mut raw, &carol, key_chunks(&borrowed)).unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("key seed"), "{refused:?}");
    let known = rt
        .block_on(raw.has_keys(authed(
            proto::HasKeysRequest {
                fingerprint: fingerprint(&borrowed).to_vec(),
            },
            &carol,
        )))
        .unwrap()
        .into_inner()
        .known;
    assert!(!known, "a refused key set is not kept");

    // Two identities, one adapter budget of 3 per projection.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut ask = |token: &str, seq: u64| {
        let (mut client, fp) = raw_client(&rt, &mut raw, token);
        let request = client
            .encrypt(0, &MODULES, &random_input(&mut rng))
            .unwrap();
        let messages = (0..seq)
            .map(|k| site_request(&request, [seq as u8; 16], k, &fp))
            .collect();
        session(&rt, &mut raw, token, messages)
    };
    assert_eq!(ask(&alice, 2).expect("alice's two").len(), 2);
    let over = ask(&carol, 2).expect_err("carol's second is the fourth");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(over.message().contains("over all clients"), "{over:?}");

    let usage = helora_json(&["clients", "usage", "--json", "--state", &dir.state()]);
    let total = &usage["adapters"][0];
    assert_eq!(
        (total["adapter"].as_str(), total["queries"].as_u64()),
        (Some("tiny"), Some(3))
    );
    let d_in = D as f64;
    assert!((total["d_in_fraction"].as_f64().unwrap() - 3.0 / d_in).abs() < 1e-12);
    let clients: Vec<(String, u64)> = usage["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["client"].as_str().unwrap().to_string(),
                u["queries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(clients, vec![("alice".into(), 2), ("carol".into(), 1)]);
}
