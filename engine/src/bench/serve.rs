//! `helora bench serve`: a load generator. C concurrent clients, each on its own connection
//! and session, decode T tokens of a model preset's HE shapes (random activations through
//! every adapted site) against a server: one it starts in-process over loopback (a random
//! adapter at the preset's shapes, a fresh state), or a running one (`--server`). Reports
//! aggregate throughput, request and token latency percentiles, the server's batch sizes,
//! bytes per token and failures. With `--replicas N` it starts N servers on one
//! PostgreSQL state (a schema of its own in `--state`'s database, dropped after) and
//! spreads the clients over them; it also reports what the budget charges cost.

use super::machine;
use super::provenance::Provenance;
use super::token::{random_adapter, run_token, RandomAdapter};
use crate::secure::{self, SecureHook};
use crate::serve::adapters::{Adapters, HeldAdapter};
use crate::serve::remote::{self, RemoteOptions};
use crate::serve::scheduler::SchedulerConfig;
use crate::serve::service::Limits;
use crate::serve::{state, tokens, ServeOptions};
use crate::stats::{ms, percentile};
use anyhow::{anyhow, bail, Context, Result};
use helora::math::sampling;
use helora::pll::{ClientId, PllSettings};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct ServeBenchOptions {
    pub preset: String,
    pub rank: usize,
    pub targets: Option<Vec<String>>,
    /// Concurrent clients (connections and sessions).
    pub clients: usize,
    /// Distinct key sets among the clients (each brings its rotation keys): clients share
    /// them round-robin. Equal to `clients` unless asked.
    pub key_sets: usize,
    /// Tokens each client decodes.
    pub tokens: usize,
    pub pll: bool,
    /// A running server (and a token it accepts) instead of one started here.
    pub server: Option<(String, String)>,
    pub batch_tokens: usize,
    pub batch_wait: Duration,
    /// Servers started here (on one state).
    pub replicas: usize,
    /// A PostgreSQL database for the started servers' state (`postgres://…`); default: a
    /// SQLite file.
    pub state: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    fn of(values: &[f64]) -> Self {
        Self {
            p50: percentile(values, 0.5),
            p90: percentile(values, 0.9),
            p99: percentile(values, 0.99),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ServeBenchReport {
    pub preset: String,
    pub rank: usize,
    pub targets: Vec<String>,
    pub pll: bool,
    pub clients: usize,
    pub key_sets: usize,
    pub tokens_per_client: usize,
    /// Site requests per token (adapted input sites).
    pub requests_per_token: usize,
    /// The servers' URLs (started here, or `--server`).
    pub server: String,
    /// Servers started here, on one state.
    pub replicas: usize,
    /// Where the started servers keep their state: sqlite or postgres.
    pub state: String,
    /// Budget charges committed by the started servers, in how many group commits, and
    /// their time per charge and per commit (µs).
    pub charges: u64,
    pub charge_commits: u64,
    pub charge_us_per_request: f64,
    pub charge_us_per_commit: f64,
    pub batch_tokens: usize,
    pub batch_wait_ms: f64,
    /// Tokens decoded by all clients per second of the timed phase.
    pub tokens_per_s: f64,
    pub wall_s: f64,
    pub request_ms: Percentiles,
    pub token_ms: Percentiles,
    /// Share of a request's round trip the server did not spend on it (network, protocol).
    pub network_share: f64,
    /// Batches evaluated, by size in tokens (a server started here only).
    pub batch_sizes: BTreeMap<usize, u64>,
    /// Ciphertext bytes per token each way (what in-process runs count too).
    pub upload_bytes_per_token: f64,
    pub download_bytes_per_token: f64,
    /// gRPC message bytes (protobuf and gRPC framing) over ciphertext bytes, less one: what
    /// the protocol adds.
    pub protocol_overhead_up: f64,
    pub protocol_overhead_down: f64,
    /// Key bytes each key set uploaded once.
    pub key_upload_bytes: usize,
    /// A registering client's connection: key generation, the upload, the server's store
    /// write and its key checks (ms; one per key set).
    pub registration_ms: Percentiles,
    /// Clients that stopped on an error, and the first error.
    pub failures: usize,
    pub first_failure: Option<String>,
    pub cpu: String,
    pub run: Provenance,
}

/// What one client measured.
struct ClientRun {
    token_ms: Vec<f64>,
    request_ms: Vec<f64>,
    round_trip: Duration,
    server: Duration,
    upload: u64,
    download: u64,
    wire_up: u64,
    wire_down: u64,
}

pub fn run(options: &ServeBenchOptions) -> Result<ServeBenchReport> {
    if options.clients == 0 || options.tokens == 0 {
        bail!("--clients and --tokens must be positive");
    }
    if options.key_sets == 0 || options.key_sets > options.clients {
        bail!(
            "--key-sets must be between 1 and --clients ({})",
            options.clients
        );
    }
    let mut rng = sampling::os_rng()?;
    let RandomAdapter {
        targets,
        adapter,
        sites,
        ..
    } = random_adapter(
        &options.preset,
        options.targets.as_deref(),
        options.rank,
        &mut rng,
    )?;
    let settings = if options.pll {
        PllSettings::default()
    } else {
        PllSettings::off()
    };
    if options.pll {
        let queries = (options.tokens * options.clients.div_ceil(options.key_sets)) as u64;
        if queries > settings.budget {
            bail!(
                "{queries} queries per projection exceed the PLL's budget of {}: fewer --tokens or more --key-sets",
                settings.budget
            );
        }
    }

    if options.replicas == 0 {
        bail!("--replicas must be positive");
    }
    if options.server.is_some() && (options.replicas > 1 || options.state.is_some()) {
        bail!("--replicas and --state are for servers started here, not with --server");
    }
    let database = match &options.state {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Some(url.clone())
        }
        Some(other) => bail!("--state {other}: give a PostgreSQL database URL (postgres://…)"),
        None if options.replicas > 1 => {
            bail!(
                "--replicas {} share one state: give --state postgres://…",
                options.replicas
            )
        }
        None => None,
    };
    let scratch = Scratch::new()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let schema = match &database {
        Some(url) => Some(runtime.block_on(state::ScratchSchema::create(url, "bench"))?),
        None => None,
    };
    let state_spec = match &schema {
        Some(schema) => schema.url(),
        None => format!("sqlite:{}", scratch.0.join("state.sqlite").display()),
    };
    let measured = measure(
        options,
        &scratch,
        &runtime,
        &state_spec,
        settings,
        adapter,
        sites,
    );
    if let Some(schema) = schema {
        runtime.block_on(schema.drop_schema())?;
    }
    let mut report = measured?;
    report.targets = targets;
    report.state = if database.is_some() {
        "postgres"
    } else {
        "sqlite"
    }
    .into();
    Ok(report)
}

/// Starts the servers (unless `--server`), runs the clients, and reports (all but the
/// adapter's targets and the state's kind, which [`run`] fills in).
fn measure(
    options: &ServeBenchOptions,
    scratch: &Scratch,
    runtime: &tokio::runtime::Runtime,
    state_spec: &str,
    settings: PllSettings,
    adapter: crate::adapter::LoraAdapter,
    sites: Vec<(crate::model::InputSite, usize)>,
) -> Result<ServeBenchReport> {
    // The servers, and one token per key set.
    let (urls, tokens, started) = match &options.server {
        Some((url, token)) => (
            vec![url.clone()],
            vec![token.clone(); options.key_sets],
            Vec::new(),
        ),
        None => {
            let params = secure::parameters()?;
            let serve_options = ServeOptions {
                adapters: Vec::new(),
                listen: "127.0.0.1:0".parse()?,
                device: crate::device::DeviceChoice::Cpu,
                state: Some(state_spec.to_string()),
                pll: options.pll,
                budget: settings.budget,
                noise: None,
                target_error: None,
                adapter_budget: None,
                tls: None,
                metrics: None,
                health: None,
                scheduler: SchedulerConfig {
                    batch_tokens: options.batch_tokens,
                    batch_wait: options.batch_wait,
                    capacity_tokens: 4096,
                },
                limits: Limits {
                    max_key_upload: 256 << 20,
                    max_key_sets: 4,
                    max_request_tokens: 4096,
                },
                drain: Duration::from_secs(5),
                resident_key_sets: crate::serve::adapters::DEFAULT_RESIDENT_KEY_SETS,
            };
            let mut started = Vec::with_capacity(options.replicas);
            let mut issued = Vec::new();
            for replica in 0..options.replicas {
                let server = secure::SecureServer::new(&params, &adapter, settings.clone())?;
                let adapters = Adapters::new(vec![HeldAdapter::new(
                    "bench",
                    std::path::Path::new("random"),
                    server,
                )])?;
                let one = runtime.block_on(async {
                    let store: Arc<dyn state::Store> =
                        Arc::from(state::open(Some(state_spec)).await?);
                    if replica == 0 {
                        for k in 0..options.key_sets {
                            let token = tokens::new_token()?;
                            store
                                .add_client(
                                    &format!("bench{k}"),
                                    &tokens::hash(&token),
                                    settings.budget,
                                    None,
                                )
                                .await?;
                            issued.push(token);
                        }
                    }
                    crate::serve::start(&serve_options, adapters, store).await
                })?;
                started.push(one);
            }
            let urls = started
                .iter()
                .map(|s| format!("http://{}", s.address))
                .collect();
            (urls, issued, started)
        }
    };

    // Connect every client first (key generation and upload are setup, not load).
    let params = secure::parameters()?;
    let mut connected = Vec::with_capacity(options.clients);
    let mut key_upload_bytes = 0;
    let mut registration_ms = Vec::new();
    for k in 0..options.clients {
        let set = k % options.key_sets;
        // Client k's replica first, the others after it (each client stays on its own
        // unless that one fails).
        let first = k % urls.len();
        let url = urls[first..]
            .iter()
            .chain(&urls[..first])
            .cloned()
            .collect::<Vec<_>>()
            .join(",");
        let remote_options = RemoteOptions {
            url,
            token: tokens[set].clone(),
            adapter: String::new(),
            ca_cert: None,
            key_dir: Some(scratch.0.join(format!("keys{set}"))),
            retries: 0,
        };
        let start = Instant::now();
        let c = remote::connect(&remote_options, &params)
            .with_context(|| format!("connecting load client {k}"))?;
        if c.key_upload_bytes > 0 {
            registration_ms.push(ms(start.elapsed()));
        }
        key_upload_bytes = key_upload_bytes.max(c.key_upload_bytes);
        connected.push(c);
    }

    let started_at = Instant::now();
    let sites = Arc::new(sites);
    let runs: Vec<Result<ClientRun>> = std::thread::scope(|scope| {
        let handles: Vec<_> = connected
            .into_iter()
            .map(|mut c| {
                let sites = sites.clone();
                scope.spawn(move || -> Result<ClientRun> {
                    let mut rng = sampling::os_rng()?;
                    let mut token_ms = Vec::with_capacity(options.tokens);
                    let stats = {
                        let mut hook = SecureHook::new(&mut c.client, &mut c.server, ClientId(0));
                        for _ in 0..options.tokens {
                            let start = Instant::now();
                            run_token(&mut hook, &sites, 1, &mut rng)?;
                            token_ms.push(ms(start.elapsed()));
                        }
                        hook.stats
                    };
                    Ok(ClientRun {
                        token_ms,
                        request_ms: std::mem::take(&mut c.server.request_ms),
                        round_trip: c.server.stats.round_trip,
                        server: c.server.stats.server,
                        upload: stats.upload_bytes,
                        download: stats.download_bytes,
                        wire_up: c.server.wire_up,
                        wire_down: c.server.wire_down,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a load client panicked"))?)
            .collect()
    });
    let wall = started_at.elapsed();

    let mut batch_sizes = BTreeMap::new();
    let (mut charges, mut charge_commits, mut charge_seconds) = (0, 0, 0.0);
    for server in &started {
        if let Ok(sizes) = server.metrics.batch_sizes.lock() {
            for (size, count) in sizes.iter() {
                *batch_sizes.entry(*size).or_insert(0) += count;
            }
        }
        if let Ok(time) = server.metrics.charge_time.lock() {
            charges += time.charges;
            charge_commits += time.commits;
            charge_seconds += time.seconds;
        }
    }
    for server in started {
        runtime.block_on(server.stop(Duration::from_secs(5), std::future::pending()))?;
    }

    let mut failures = 0;
    let mut first_failure = None;
    let mut ok = Vec::new();
    for run in runs {
        match run {
            Ok(run) => ok.push(run),
            Err(e) => {
                failures += 1;
                first_failure.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let all = |f: fn(&ClientRun) -> &Vec<f64>| -> Vec<f64> {
        ok.iter().flat_map(|r| f(r).iter().copied()).collect()
    };
    let token_ms = all(|r| &r.token_ms);
    let request_ms = all(|r| &r.request_ms);
    let decoded = token_ms.len();
    let round_trip: Duration = ok.iter().map(|r| r.round_trip).sum();
    let server: Duration = ok.iter().map(|r| r.server).sum();
    let per_token = |bytes: u64| bytes as f64 / decoded.max(1) as f64;
    Ok(ServeBenchReport {
        preset: options.preset.clone(),
        rank: options.rank,
        targets: Vec::new(),
        state: String::new(),
        replicas: options.replicas,
        charges,
        charge_commits,
        charge_us_per_request: 1e6 * charge_seconds / charges.max(1) as f64,
        charge_us_per_commit: 1e6 * charge_seconds / charge_commits.max(1) as f64,
        pll: options.pll,
        clients: options.clients,
        key_sets: options.key_sets,
        tokens_per_client: options.tokens,
        requests_per_token: sites.len(),
        server: match &options.server {
            Some((url, _)) => url.clone(),
            None => urls.join(","),
        },
        batch_tokens: options.batch_tokens,
        batch_wait_ms: ms(options.batch_wait),
        tokens_per_s: decoded as f64 / wall.as_secs_f64().max(1e-9),
        wall_s: wall.as_secs_f64(),
        request_ms: Percentiles::of(&request_ms),
        token_ms: Percentiles::of(&token_ms),
        network_share: 1.0 - server.as_secs_f64() / round_trip.as_secs_f64().max(1e-9),
        batch_sizes,
        upload_bytes_per_token: per_token(ok.iter().map(|r| r.upload).sum()),
        download_bytes_per_token: per_token(ok.iter().map(|r| r.download).sum()),
        protocol_overhead_up: overhead(ok.iter().map(|r| (r.wire_up, r.upload))),
        protocol_overhead_down: overhead(ok.iter().map(|r| (r.wire_down, r.download))),
        key_upload_bytes,
        registration_ms: Percentiles::of(&registration_ms),
        failures,
        first_failure,
        cpu: machine::cpu_model(),
        run: Provenance::now(),
    })
}

/// Σ wire / Σ payload − 1.
fn overhead(pairs: impl Iterator<Item = (u64, u64)>) -> f64 {
    let (wire, payload) = pairs.fold((0u64, 0u64), |(w, p), (a, b)| (w + a, p + b));
    wire as f64 / payload.max(1) as f64 - 1.0
}

impl ServeBenchReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "bench serve: {} clients ({} key sets) × {} tokens, {} rank {} ({}), PLL {}, server {}\n",
            self.clients,
            self.key_sets,
            self.tokens_per_client,
            self.preset,
            self.rank,
            self.targets.join(","),
            if self.pll { "on" } else { "off" },
            self.server
        );
        out += &format!(
            "  throughput        {:>10.3} tokens/s (all clients, {:.1} s)\n",
            self.tokens_per_s, self.wall_s
        );
        let row = |name: &str, p: &Percentiles| {
            format!(
                "  {name:<17} p50 {:>9.1} ms   p90 {:>9.1} ms   p99 {:>9.1} ms\n",
                p.p50, p.p90, p.p99
            )
        };
        out += &row("per request", &self.request_ms);
        out += &row("per token", &self.token_ms);
        out += &format!(
            "  network share     {:>9.1} % of a request's round trip\n",
            100.0 * self.network_share
        );
        out += &format!(
            "  bytes per token   {:>10.0} up, {:.0} down ({} requests per token); keys {} bytes per key set\n",
            self.upload_bytes_per_token,
            self.download_bytes_per_token,
            self.requests_per_token,
            self.key_upload_bytes
        );
        out += &row("registration", &self.registration_ms);
        out += &format!(
            "  protocol adds     {:>9.3} % up, {:.3} % down (protobuf and gRPC framing)\n",
            100.0 * self.protocol_overhead_up,
            100.0 * self.protocol_overhead_down
        );
        if !self.batch_sizes.is_empty() {
            let sizes: Vec<String> = self
                .batch_sizes
                .iter()
                .map(|(size, count)| format!("{size}×{count}"))
                .collect();
            out += &format!("  batches (tokens×count) {}\n", sizes.join(" "));
        }
        if self.charges > 0 {
            out += &format!(
                "  budget charges    {:>9.1} µs per request ({} charges in {} commits, {:.1} µs each; {} state, {} replica{})\n",
                self.charge_us_per_request,
                self.charges,
                self.charge_commits,
                self.charge_us_per_commit,
                self.state,
                self.replicas,
                if self.replicas == 1 { "" } else { "s" }
            );
        }
        out += &format!("  failures          {}", self.failures);
        if let Some(first) = &self.first_failure {
            out += &format!(" (first: {first})");
        }
        out += "\n";
        out
    }
}

/// A directory for the bench's state and key seeds, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self> {
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|e| anyhow!("no OS randomness: {e}"))?;
        let dir = std::env::temp_dir().join(format!("helora-bench-serve-{}", tokens::hex(&id)));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
