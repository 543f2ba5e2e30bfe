//! The harness of the network tests: a `helora serve` process on a fresh state, its clients,
//! a small PEFT adapter with known factors, and a raw gRPC client for crafted messages.
#![allow(dead_code)]

use helora_engine::secure::{self, KeyUpload, Manifest, SecureClient};
use helora_engine::serve::proto::{self, private_lora_client::PrivateLoraClient};
use helora_engine::serve::remote::{self, RemoteOptions};
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tonic::transport::Channel;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("helora-serve-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn state(&self) -> String {
        format!("sqlite:{}", self.0.join("state.sqlite").display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `helora` binary: `HELORA_BIN`, else this package's (the engine's tests), else the
/// one beside the test's own directory in the target dir (other crates' tests, as
/// helora-ffi's, which include this file).
pub fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("HELORA_BIN") {
        return bin.into();
    }
    if let Some(bin) = option_env!("CARGO_BIN_EXE_helora") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test's path");
    // target/<profile>/deps/<test> → target/<profile>/helora
    exe.parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("helora"))
        .expect("a target directory")
}

/// Layers, modules and shapes of [`write_adapter`]'s adapter.
pub const LAYERS: usize = 2;
pub const MODULES: [&str; 2] = ["q_proj", "v_proj"];
pub const D: usize = 64;
pub const RANK: usize = 4;
/// lora_alpha / r.
pub const SCALING: f64 = 2.0;

/// PEFT factors by (layer, module): lora_A `[r, d_in]`, lora_B `[d_out, r]`, row-major.
pub type Factors = BTreeMap<(usize, String), (Vec<f32>, Vec<f32>)>;

/// Writes a PEFT adapter of [`LAYERS`] layers × [`MODULES`] with random factors.
pub fn write_adapter(dir: &Path, seed: u64) -> Factors {
    std::fs::create_dir_all(dir).expect("adapter dir");
    let config = serde_json::json!({
        "peft_type": "LORA",
        "r": RANK,
        "lora_alpha": SCALING * RANK as f64,
        "target_modules": MODULES,
    });
    std::fs::write(dir.join("adapter_config.json"), config.to_string()).expect("config");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut factors = Factors::new();
    let mut tensors = std::collections::HashMap::new();
    for layer in 0..LAYERS {
        for module in MODULES {
            let a: Vec<f32> = (0..RANK * D).map(|_| rng.random_range(-0.5..0.5)).collect();
            let b: Vec<f32> = (0..D * RANK).map(|_| rng.random_range(-0.5..0.5)).collect();
            let prefix = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            tensors.insert(
                format!("{prefix}.lora_A.weight"),
                candle_core::Tensor::from_vec(a.clone(), (RANK, D), &candle_core::Device::Cpu)
                    .expect("tensor"),
            );
            tensors.insert(
                format!("{prefix}.lora_B.weight"),
                candle_core::Tensor::from_vec(b.clone(), (D, RANK), &candle_core::Device::Cpu)
                    .expect("tensor"),
            );
            factors.insert((layer, module.to_string()), (a, b));
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors"))
        .expect("weights");
    factors
}

/// y = scaling · (x·Aᵀ)·Bᵀ in f64.
pub fn reference(factors: &Factors, layer: usize, module: &str, x: &[f32]) -> Vec<f64> {
    let (a, b) = &factors[&(layer, module.to_string())];
    let z: Vec<f64> = (0..RANK)
        .map(|k| {
            (0..D)
                .map(|i| f64::from(x[i]) * f64::from(a[k * D + i]))
                .sum()
        })
        .collect();
    (0..D)
        .map(|j| {
            SCALING
                * (0..RANK)
                    .map(|k| z[k] * f64::from(b[j * RANK + k]))
                    .sum::<f64>()
        })
        .collect()
}

/// Checks the deltas of both modules of `layer` for input `x` against the reference: the
/// CKKS error of this plan is far below 1e-3 of the output's scale.
pub fn assert_deltas(factors: &Factors, layer: usize, x: &[f32], deltas: &[Vec<f32>]) {
    assert_eq!(deltas.len(), MODULES.len());
    for (module, delta) in MODULES.iter().zip(deltas) {
        let want = reference(factors, layer, module, x);
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (got, want) in delta.iter().zip(&want) {
            assert!(
                (f64::from(*got) - want).abs() <= 1e-3 * scale,
                "layer {layer} {module}: {got} vs {want}"
            );
        }
    }
}

pub fn random_input(rng: &mut impl Rng) -> Vec<f32> {
    (0..D).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `helora clients add NAME` on `state`: the token (its last line).
pub fn add_client(state: &str, name: &str, extra: &[&str]) -> String {
    let out = Command::new(binary())
        .args(["clients", "add", name, "--state", state])
        .args(extra)
        .output()
        .expect("helora runs");
    assert!(
        out.status.success(),
        "clients add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .expect("a token line")
        .trim()
        .to_string()
}

pub fn revoke_client(state: &str, name: &str) {
    let out = Command::new(binary())
        .args(["clients", "revoke", name, "--state", state])
        .output()
        .expect("helora runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `helora serve`.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub metrics: Option<String>,
    pub log: PathBuf,
}

impl Server {
    /// Starts a server on `dir`'s state with `args` (adapters, flags) and waits for its
    /// address.
    pub fn start(dir: &TempDir, args: &[String]) -> Self {
        Self::start_on(dir, &dir.state(), args)
    }

    /// As [`start`](Self::start), on the state `state` (its log in `dir`).
    pub fn start_on(dir: &TempDir, state: &str, args: &[String]) -> Self {
        Self::try_start_on(dir, state, args)
            .unwrap_or_else(|log| panic!("helora serve printed no address: {log}"))
    }

    /// As [`start`](Self::start); a server that exits instead gives its log.
    pub fn try_start(dir: &TempDir, args: &[String]) -> Result<Self, String> {
        Self::try_start_on(dir, &dir.state(), args)
    }

    fn try_start_on(dir: &TempDir, state: &str, args: &[String]) -> Result<Self, String> {
        let log = dir.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let mut child = Command::new(binary())
            .arg("serve")
            .args(["--state", state])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("helora serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let first = match lines.next() {
            Some(Ok(line)) => line,
            _ => {
                let _ = child.wait();
                return Err(std::fs::read_to_string(&log).unwrap_or_default());
            }
        };
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string();
        let metrics = if args.iter().any(|a| a == "--metrics") {
            lines
                .next()
                .and_then(|l| l.ok())
                .and_then(|l| l.strip_prefix("metrics on ").map(str::to_string))
        } else {
            None
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self {
            child,
            url,
            metrics,
            log,
        })
    }

    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("server exits")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn remote_options(url: &str, token: &str, key_dir: &Path) -> RemoteOptions {
    RemoteOptions {
        url: url.to_string(),
        token: token.to_string(),
        adapter: String::new(),
        ca_cert: None,
        key_dir: Some(key_dir.to_path_buf()),
        retries: 3,
    }
}

pub fn connect(url: &str, token: &str, key_dir: &Path) -> remote::Connected {
    remote::connect(
        &remote_options(url, token, key_dir),
        &secure::parameters().expect("params"),
    )
    .expect("connects")
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

pub type Raw = PrivateLoraClient<Channel>;

pub fn raw(rt: &tokio::runtime::Runtime, url: &str) -> Raw {
    rt.block_on(PrivateLoraClient::connect(url.to_string()))
        .expect("raw client connects")
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
}

/// `message` with `authorization: Bearer token`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    request
}

pub fn manifest(rt: &tokio::runtime::Runtime, raw: &mut Raw, token: &str) -> Manifest {
    let reply = rt
        .block_on(raw.get_manifest(authed(proto::ManifestRequest::default(), token)))
        .expect("manifest")
        .into_inner();
    remote::manifest_of(&reply).expect("manifest converts")
}

pub fn fingerprint(upload: &KeyUpload) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(&upload.eval_keys);
    hash.update(&upload.public_key);
    hash.finalize().into()
}

/// The chunks of a well-formed key upload.
pub fn key_chunks(upload: &KeyUpload) -> Vec<proto::KeyChunk> {
    let mut bytes = upload.eval_keys.clone();
    bytes.extend_from_slice(&upload.public_key);
    let mut chunks: Vec<proto::KeyChunk> = bytes
        .chunks(1 << 20)
        .map(|d| proto::KeyChunk {
            header: None,
            data: d.to_vec(),
        })
        .collect();
    chunks[0].header = Some(proto::KeyHeader {
        eval_keys_len: upload.eval_keys.len() as u64,
        public_key_len: upload.public_key.len() as u64,
        fingerprint: fingerprint(upload).to_vec(),
        adapter: String::new(),
    });
    chunks
}

pub fn register(
    rt: &tokio::runtime::Runtime,
    raw: &mut Raw,
    token: &str,
    chunks: Vec<proto::KeyChunk>,
) -> Result<proto::Registration, tonic::Status> {
    rt.block_on(raw.register_keys(authed(tokio_stream::iter(chunks), token)))
        .map(|r| r.into_inner())
}

/// A registered raw client: its [`SecureClient`] and key fingerprint.
pub fn raw_client(
    rt: &tokio::runtime::Runtime,
    raw: &mut Raw,
    token: &str,
) -> (SecureClient, [u8; 32]) {
    let manifest = manifest(rt, raw, token);
    let (client, upload) =
        SecureClient::new(&secure::parameters().expect("params"), manifest).expect("keys");
    register(rt, raw, token, key_chunks(&upload)).expect("registers");
    (client, fingerprint(&upload))
}

/// A site request of one token for both modules of `layer`.
pub fn site_request(
    request: &secure::Request,
    session: [u8; 16],
    seq: u64,
    fingerprint: &[u8; 32],
) -> proto::SiteRequest {
    proto::SiteRequest {
        session: session.to_vec(),
        seq,
        adapter: String::new(),
        fingerprint: fingerprint.to_vec(),
        layer: request.layer as u32,
        modules: request.modules.clone(),
        tokens: vec![proto::TokenInput {
            inputs: request.inputs.clone(),
        }],
    }
}

/// Sends `messages` on one session stream; the replies (or the status that ended it).
pub fn session(
    rt: &tokio::runtime::Runtime,
    raw: &mut Raw,
    token: &str,
    messages: Vec<proto::SiteRequest>,
) -> Result<Vec<proto::SiteReply>, tonic::Status> {
    rt.block_on(async {
        let mut replies = raw
            .session(authed(tokio_stream::iter(messages), token))
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(reply) = replies.message().await? {
            out.push(reply);
        }
        Ok(out)
    })
}

/// The reply of a one-token site reply as the secure client reads it.
pub fn reply_of(site: &proto::SiteReply) -> secure::Reply {
    secure::Reply {
        outputs: site.tokens[0]
            .modules
            .iter()
            .map(|m| m.outputs.clone())
            .collect(),
    }
}

/// `GET /metrics` over plain HTTP/1.1.
pub fn scrape(metrics_url: &str) -> String {
    use std::io::{Read, Write};
    let rest = metrics_url.strip_prefix("http://").expect("http url");
    let host = rest.split('/').next().expect("host");
    let mut stream = std::net::TcpStream::connect(host).expect("metrics connect");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

/// The value of the first sample of `metric` whose labels contain every `labels` pair.
pub fn sample(text: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(metric) && !l.starts_with('#'))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// An open session that sends nothing (kept open while both halves live): a lone other
/// session's request then waits for its batch instead of being evaluated at once.
pub fn idle_session(
    rt: &tokio::runtime::Runtime,
    raw: &mut Raw,
    token: &str,
) -> (
    tokio::sync::mpsc::Sender<proto::SiteRequest>,
    tonic::Response<tonic::Streaming<proto::SiteReply>>,
) {
    let (sender, requests) = tokio::sync::mpsc::channel::<proto::SiteRequest>(1);
    let session = rt
        .block_on(raw.session(authed(
            tokio_stream::wrappers::ReceiverStream::new(requests),
            token,
        )))
        .expect("an idle session opens");
    (sender, session)
}

/// grpc.health.v1's status of `service` ("" for the whole server) at `url`, or the call's
/// status code.
pub fn health(rt: &tokio::runtime::Runtime, url: &str, service: &str) -> Result<i32, tonic::Code> {
    rt.block_on(async {
        let channel = Channel::from_shared(url.to_string())
            .expect("a URL")
            .connect()
            .await
            .expect("connects");
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .map(|r| r.into_inner().status)
            .map_err(|s| s.code())
    })
}

/// The JSON report of `helora ARGS` (with `--json`), which must succeed.
pub fn helora_json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("helora runs");
    assert!(
        out.status.success(),
        "helora {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

/// The JSON report of a `helora generate --json` that must have succeeded.
pub fn generate_report(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON report")
}

/// The in-process run (PLL off) that remote generations must equal, token for token.
pub fn in_process_reference(max_tokens: &str) -> serde_json::Value {
    generate_report(
        &Command::new(binary())
            .args([
                "generate",
                "--pll",
                "off",
                "--json",
                "--max-tokens",
                max_tokens,
            ])
            .output()
            .expect("helora runs"),
    )
}

/// A `helora generate --json --retries 10` against `servers`, one per token (its keys in
/// `dir/keys{k}`), running in the background.
pub fn spawn_generations(
    dir: &TempDir,
    servers: &str,
    tokens: &[String],
    max_tokens: &str,
) -> Vec<std::process::Child> {
    tokens
        .iter()
        .enumerate()
        .map(|(k, token)| {
            Command::new(binary())
                .args(["generate", "--json", "--max-tokens", max_tokens])
                .args(["--retries", "10", "--server", servers, "--token", token])
                .arg("--key-dir")
                .arg(dir.path().join(format!("keys{k}")))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("a client starts")
        })
        .collect()
}

/// Waits until `server` has answered `requests` requests (its clients well into their
/// generations); ten minutes without that fail with its log.
pub fn wait_for_answers(server: &Server, requests: f64) {
    let metrics = server.metrics.clone().expect("metrics");
    let started = std::time::Instant::now();
    while sample(
        &scrape(&metrics),
        "helora_requests_total",
        &[("outcome", "ok")],
    )
    .unwrap_or(0.0)
        < requests
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(600),
            "no progress: {}",
            server.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
