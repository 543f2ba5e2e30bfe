//! Command-line interface: argument definitions and dispatch to the subcommands.

use crate::attack::{self, AttackCommand};
use crate::bench::series::{self, SweepOver};
use crate::bench::serve_sweep::ServeSweepOver;
use crate::bench::sweep;
use crate::bench::{self, lora::LoraOptions, ops::OpsOptions, token::TokenOptions};
use crate::device::DeviceChoice;
use crate::generate::{self, GenerateOptions, Mode};
use crate::serve;
use crate::switch::Switch;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::Write;

/// Most timed iterations a benchmark takes: 10000 of the slowest operation (a key switch at
/// N = 2^16, about 0.1 s) already take a quarter of an hour.
const MAX_ITERS: i64 = 10_000;

#[derive(Debug, Parser)]
#[command(
    name = "helora",
    version,
    about = "Private LoRA inference with RNS-CKKS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Answers a prompt with the base model and the LoRA adapter: plain, lora (adapter in
    /// plaintext) or secure (adapter applied by the server on encrypted inputs). With no
    /// arguments: the demo (default model, demo adapter, secure mode, a domain question).
    Generate(GenerateArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Attacks on the server's protection (extraction of the LoRA weights).
    #[command(subcommand)]
    Attack(AttackCommand),
    /// Serves private LoRA adapters over gRPC to remote `generate --server` clients.
    Serve(ServeArgs),
    /// The API clients a server admits: add (prints the token), list, revoke.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Renders a chat template for a parent helora process: a request on stdin, the reply on
    /// stdout (`model::chat_process`); not for people.
    #[command(name = crate::model::chat_process::SUBCOMMAND, hide = true)]
    RenderChatTemplate,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A PEFT LoRA adapter to serve, `NAME=DIR` or `DIR` (named after the directory);
    /// repeat for several. Default: the demo adapter, named `demo`.
    #[arg(long = "adapter", value_name = "NAME=DIR")]
    pub adapters: Vec<String>,
    /// Address to listen on (port 0: any free port; the first line printed names it).
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: std::net::SocketAddr,
    /// Where the HE work runs (cuda: a binary built with `--features helora-engine/cuda`).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Durable state (clients, key sets, budgets): `sqlite:PATH`, or `postgres://…` shared
    /// by server replicas (from the environment, a password stays off the command line).
    /// Default: state.sqlite in helora's data dir.
    #[arg(long, env = "HELORA_STATE", hide_env_values = true)]
    pub state: Option<String>,
    /// Key sets each adapter holds in memory (decoded, ≈ 30 MB each at the default
    /// parameters); the least recently used beyond it are dropped and loaded from the state
    /// again when next used.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub resident_key_sets: u32,
    /// The Private Linear Layer (noise on B, flooding, query budgets).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub pll: Switch,
    /// The PLL's query budget per client and projection: the most any client may be
    /// given (its flooding is sized for it).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub budget: u64,
    /// The PLL's noise σ: each answer's relative error (default 0.1).
    #[arg(long, conflicts_with = "target_error")]
    pub noise: Option<f64>,
    /// Instead of one σ: the relative error (0 < ε ≤ 1) below which no client may extract
    /// an adapter's A·B with its whole budget. Each projection gets σ = ε·√(budget/(κ·r)),
    /// with its rank r and its factors' shape κ (docs/security.md §4.3).
    #[arg(long, value_name = "ε")]
    pub target_error: Option<f64>,
    /// Queries each projection of an adapter may answer over all clients together: a wall
    /// that pooled identities cannot climb over (default: none; counted either way, see
    /// `helora clients usage`).
    #[arg(long, value_name = "Q", value_parser = clap::value_parser!(u64).range(1..))]
    pub adapter_budget: Option<u64>,
    /// TLS certificate chain (PEM); with --tls-key, the server speaks https only.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Also answer gRPC health checks (grpc.health.v1) in plaintext on ADDR: Kubernetes'
    /// gRPC probes speak no TLS. The main address answers them too.
    #[arg(long, value_name = "ADDR")]
    pub health: Option<std::net::SocketAddr>,
    /// Most tokens evaluated in one batch (across clients).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_tokens: u32,
    /// Longest a request waits for others to join its batch, in milliseconds (no wait once
    /// every open session has a request queued: a lone client never waits).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub batch_wait_ms: u32,
    /// Most tokens queued at once; beyond, requests get RESOURCE_EXHAUSTED at once.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub queue_tokens: u32,
    /// Largest key upload a client may make, in MiB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_key_mib: u32,
    /// Key sets each client may register.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_key_sets: u32,
    /// On SIGTERM, the longest wait for the requests in flight and open connections.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3600))]
    pub drain_seconds: u32,
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Issues a client: prints its API token once, as the last line.
    Add(ClientsAddArgs),
    /// Lists the clients (never their tokens).
    List(ClientsListArgs),
    /// Revokes a client: its token is refused from then on, by every server on this state.
    Revoke(ClientsRevokeArgs),
    /// Issues a client a new API token (printed once, as the last line); the old one is
    /// refused from then on. Its identity, budget used and key sets stay.
    Rotate(ClientsRotateArgs),
    /// What each client, and all clients together, have spent of each adapter: queries and
    /// the share of each projection's d_in (about d_in queries identify its A·B).
    Usage(ClientsListArgs),
}

#[derive(Debug, Args)]
pub struct ClientsAddArgs {
    pub name: String,
    /// PLL queries this client may make to each projection (capped by the server's
    /// --budget).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub budget: u64,
    /// The one adapter this client may use (default: any).
    #[arg(long)]
    pub adapter: Option<String>,
    /// As `serve --state`.
    #[arg(long, env = "HELORA_STATE", hide_env_values = true)]
    pub state: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClientsListArgs {
    #[arg(long, env = "HELORA_STATE", hide_env_values = true)]
    pub state: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ClientsRevokeArgs {
    pub name: String,
    #[arg(long, env = "HELORA_STATE", hide_env_values = true)]
    pub state: Option<String>,
}

#[derive(Debug, Args)]
pub struct ClientsRotateArgs {
    pub name: String,
    #[arg(long, env = "HELORA_STATE", hide_env_values = true)]
    pub state: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The user's message (the chat template of instruct models is applied). Default: a
    /// question from the demo adapter's domain.
    #[arg(long)]
    pub prompt: Option<String>,
    /// A GGUF file or a Hugging Face directory. Default: SmolLM2-135M-Instruct, fetched
    /// into the cache dir on first use.
    #[arg(long)]
    pub model: Option<std::path::PathBuf>,
    /// A PEFT LoRA adapter directory. Default (with the default model): the demo adapter.
    #[arg(long)]
    pub adapter: Option<std::path::PathBuf>,
    /// Default: secure, or plain for a --model given without an --adapter (there is no
    /// adapter to apply).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Most tokens to generate (stops earlier at end of sequence).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=8192))]
    pub max_tokens: u32,
    /// Seeded top-p sampling with this seed; greedy decoding without it.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Nucleus mass for sampling (with --seed).
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f64,
    /// Softmax temperature for sampling (with --seed).
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    /// The server's Private Linear Layer (noise on B, flooding, query budget), in secure
    /// mode. Default: on.
    #[arg(long, value_enum)]
    pub pll: Option<Switch>,
    /// Where the base model runs (cuda: the full GPU build, `--features gpu`; f32 weights).
    /// In secure mode the server's HE work runs there too, on a stream of its own; the
    /// client's encryption, decryption and secret key stay on the CPU.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// After a secure run, compare its logits and tokens with the plaintext lora reference.
    #[arg(long)]
    pub check: bool,
    /// Print exactly one JSON object on stdout (no streamed text).
    #[arg(long)]
    pub json: bool,
    /// With --json: also report, per generated token, the K most likely token ids and their
    /// logits (`top_logits`).
    #[arg(long, value_name = "K", requires = "json", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub top_logits: Option<u32>,
    /// Run secure mode against a `helora serve` server (http://HOST:PORT, or https://),
    /// which holds the adapter: no local --adapter. Replicas on one state: URL,URL,… (the
    /// first that answers; the next when it fails).
    #[arg(long, value_name = "URL[,URL…]")]
    pub server: Option<String>,
    /// The API token `helora clients add` printed (or the HELORA_TOKEN variable).
    #[arg(
        long,
        env = "HELORA_TOKEN",
        hide_env_values = true,
        requires = "server"
    )]
    pub token: Option<String>,
    /// The adapter's name on the server (default: its only one).
    #[arg(long, requires = "server")]
    pub adapter_name: Option<String>,
    /// A CA certificate (PEM) to trust for an https:// server with a private CA.
    #[arg(long, requires = "server")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Where the client keeps its key seeds (default: client-keys in helora's data dir).
    #[arg(long, requires = "server")]
    pub key_dir: Option<std::path::PathBuf>,
    /// Re-sends of a request after the connection broke (with backoff).
    #[arg(long, default_value_t = 5, requires = "server")]
    pub retries: u32,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Times each CKKS operation on the CPU, single-threaded, or on the GPU with
    /// `--device cuda` (medians in microseconds).
    Ops(OpsArgs),
    /// Applies one LoRA plan to encrypted inputs on the CPU or the GPU (client and server
    /// in-process).
    Lora(LoraArgs),
    /// Per-token latency of decoding at a model preset's shapes (random weights made in
    /// place): plain, lora or secure, with the base model or the HE path alone.
    Token(TokenArgs),
    /// Load on a `helora serve` server: C concurrent clients × T tokens at a model preset's
    /// HE shapes (random activations), against a server started here or a running one.
    Serve(ServeBenchArgs),
}

/// The workload of the benches at a model preset's shapes (a random adapter).
#[derive(Debug, Args)]
pub struct ShapeArgs {
    /// Model shapes: chatglm2-6b, llama2-7b, llama3-8b or smollm2-135m.
    #[arg(long, default_value = "chatglm2-6b")]
    pub preset: String,
    /// LoRA rank (1 … 64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub rank: u32,
    /// Adapted projections, comma-separated PEFT names (default: PEFT's default for the
    /// architecture: query_key_value for ChatGLM2, q_proj,v_proj for Llama).
    #[arg(long, value_delimiter = ',')]
    pub targets: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Concurrent clients, each on its own connection and session.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// Distinct key sets among the clients (default: one each); fewer share keys.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub key_sets: Option<u32>,
    /// Tokens each client decodes.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub tokens: u32,
    /// The PLL of the server started here.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub pll: Switch,
    /// A running server instead of one started here (its adapter must have the preset's
    /// shapes); every load client uses --token and registers its own key set.
    #[arg(long, value_name = "URL", requires = "token")]
    pub server: Option<String>,
    #[arg(long, env = "HELORA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The started server's --batch-tokens.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch_tokens: u32,
    /// The started server's --batch-wait-ms.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub batch_wait_ms: u32,
    /// Servers started here, on one state (more than one needs --state postgres://…); the
    /// clients are spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub replicas: u32,
    /// A PostgreSQL database (postgres://…) for the started servers' state: the bench makes
    /// a schema of its own in it and drops it after. Default: a SQLite file.
    #[arg(long, value_name = "URL")]
    pub state: Option<String>,
    /// Run again at each of --plot-points and draw throughput and p99 request latency
    /// against them into this PNG.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<std::path::PathBuf>,
    /// What the --plot sweep varies.
    #[arg(long, value_enum, default_value_t = ServeSweepOver::KeySets, requires = "plot")]
    pub plot_over: ServeSweepOver,
    /// The sweep's points (default: 1,2,4,8,16, key sets at most --clients; replicas 1,2).
    #[arg(long, value_delimiter = ',', requires = "plot")]
    pub plot_points: Option<Vec<usize>>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Decoded tokens timed.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub tokens: u32,
    /// Prompt tokens of the prefill.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub prompt_tokens: u32,
    /// Sequences of one client in flight: every decode step runs one token of each through
    /// one forward pass (one HE request per adapted site); ms/token is the step's time.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=crate::bench::series::MAX_BATCH as i64))]
    pub batch: u32,
    #[arg(long, value_enum, default_value_t = Mode::Secure)]
    pub mode: Mode,
    /// Where the base model runs (cuda: the full GPU build, `--features gpu`; bf16 weights).
    /// In secure mode the server's HE work runs there too, on a stream of its own.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// Only the HE path at the preset's shapes (for CPUs where the base model does not fit).
    #[arg(long)]
    pub he_only: bool,
    /// The server's Private Linear Layer.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub pll: Switch,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Worker threads for the whole run (default: one per core, or RAYON_NUM_THREADS).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Also sweep ranks 1 … 64 (or batch sizes) with a few tokens per point and draw
    /// ms/token per mode into this PNG, with the published 1610 ms/token as a reference.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
    /// What the --plot sweep varies.
    #[arg(long, value_enum, default_value_t = SweepOver::Rank, requires = "plot")]
    pub plot_over: SweepOver,
    /// The sweep's points, comma-separated (default: ranks 1,2,4,8,16,32,64 or batch sizes
    /// 1,2,4,8,16).
    #[arg(long, requires = "plot")]
    pub plot_points: Option<String>,
    /// Memory the full model may use, in MiB, instead of what the system reports available
    /// (for tests of the refusal).
    #[arg(long, hide = true)]
    pub memory_limit_mib: Option<u64>,
}

#[derive(Debug, Args)]
pub struct LoraArgs {
    /// Input dimension (rows of A).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub d_in: u32,
    /// Output dimension (columns of B).
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub d_out: u32,
    /// LoRA rank (1 … 64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub r: u32,
    /// Ring degree N (supported: 8192, 65536).
    #[arg(long, default_value_t = 8192)]
    pub n: usize,
    /// Tokens in the batch (each one encrypted, applied and decrypted).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub tokens: u32,
    /// Worker threads for the batch (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Timed iterations of the single apply, up to 10000 (default: adaptive).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_ITERS))]
    pub iters: Option<u32>,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Where the server's HE work runs (cuda: a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
    /// With --device cuda: independent ciphertexts applied back to back for the throughput
    /// figure (default 64; the CPU batch is --tokens; --tokens and --threads are for the CPU).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: Option<u32>,
    /// Memory the run may use, in MiB, instead of what the system reports available (for
    /// tests of the refusal).
    #[arg(long, hide = true)]
    pub memory_limit_mib: Option<u64>,
}

#[derive(Debug, Args)]
pub struct OpsArgs {
    /// Ring degree N (supported: 8192, 65536).
    #[arg(long, default_value_t = 8192)]
    pub n: usize,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed iterations per operation, up to 10000 (default: adaptive, about 0.5 s and at
    /// least 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_ITERS))]
    pub iters: Option<u32>,
    /// Where the operations run (cuda: a binary built with `--features cuda`).
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    pub device: DeviceChoice,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => generate_text(&args),
        Command::Bench(BenchCommand::Ops(args)) => bench_ops(&args),
        Command::Bench(BenchCommand::Lora(args)) => bench_lora(&args),
        Command::Bench(BenchCommand::Token(args)) => bench_token(&args),
        Command::Bench(BenchCommand::Serve(args)) => {
            let options = bench::serve::ServeBenchOptions {
                preset: args.shape.preset.clone(),
                rank: args.shape.rank as usize,
                targets: args.shape.targets.clone(),
                clients: args.clients as usize,
                key_sets: args.key_sets.unwrap_or(args.clients) as usize,
                tokens: args.tokens as usize,
                pll: args.pll == Switch::On,
                server: args.server.clone().zip(args.token.clone()),
                batch_tokens: args.batch_tokens as usize,
                batch_wait: std::time::Duration::from_millis(u64::from(args.batch_wait_ms)),
                replicas: args.replicas as usize,
                state: args.state.clone(),
            };
            if let Some(plot) = &args.plot {
                let points = args
                    .plot_points
                    .clone()
                    .unwrap_or_else(|| args.plot_over.default_points(options.clients));
                let report =
                    bench::serve_sweep::run_and_plot(&options, args.plot_over, &points, plot)?;
                return write_report(&report, args.json, || report.table());
            }
            let report = bench::serve::run(&options)?;
            write_report(&report, args.json, || report.table())
        }
        Command::Attack(AttackCommand::Extract(args)) => {
            let report = attack::extract(&args)?;
            write_report(&report, args.json, || report.table())
        }
        Command::Attack(AttackCommand::Behaviour(args)) => {
            let report = attack::behaviour::run(&args)?;
            write_report(&report, args.json, || report.table())
        }
        Command::Serve(args) => serve(&args),
        Command::Clients(command) => clients(command),
        Command::RenderChatTemplate => crate::model::chat_process::serve(),
    }
}

fn serve(args: &ServeArgs) -> Result<()> {
    serve::check_device(args.device)?;
    let options = serve::ServeOptions {
        adapters: args.adapters.clone(),
        listen: args.listen,
        device: args.device,
        state: args.state.clone(),
        pll: args.pll == Switch::On,
        budget: args.budget,
        noise: args.noise,
        target_error: args.target_error,
        adapter_budget: args.adapter_budget,
        tls: args.tls_cert.clone().zip(args.tls_key.clone()),
        metrics: args.metrics,
        health: args.health,
        scheduler: serve::scheduler::SchedulerConfig {
            batch_tokens: args.batch_tokens as usize,
            batch_wait: std::time::Duration::from_millis(u64::from(args.batch_wait_ms)),
            capacity_tokens: args.queue_tokens as usize,
        },
        limits: serve::service::Limits {
            max_key_upload: (args.max_key_mib as usize) << 20,
            max_key_sets: args.max_key_sets as usize,
            max_request_tokens: args.queue_tokens as usize,
        },
        drain: std::time::Duration::from_secs(u64::from(args.drain_seconds)),
        resident_key_sets: args.resident_key_sets as usize,
    };
    serve::run(&options)
}

fn clients(command: ClientsCommand) -> Result<()> {
    match command {
        ClientsCommand::Add(args) => {
            let (record, token) = serve::clients::add(
                args.state.as_deref(),
                &args.name,
                args.budget,
                args.adapter.as_deref(),
            )?;
            if args.json {
                #[derive(serde::Serialize)]
                struct Added<'a> {
                    client: &'a serve::state::ClientRecord,
                    token: &'a str,
                }
                return write_report(
                    &Added {
                        client: &record,
                        token: &token,
                    },
                    true,
                    String::new,
                );
            }
            let text = format!(
                "client {:?} added (budget {} per projection, adapter {}); its API token, shown \
                 once:\n{token}\n",
                record.name,
                record.budget,
                record.adapter.as_deref().unwrap_or("any")
            );
            write_report(&(), false, || text)
        }
        ClientsCommand::List(args) => {
            let clients = serve::clients::list(args.state.as_deref())?;
            write_report(&clients, args.json, || serve::clients::table(&clients))
        }
        ClientsCommand::Usage(args) => {
            let report = serve::clients::usage(args.state.as_deref())?;
            write_report(&report, args.json, || serve::usage::table(&report))
        }
        ClientsCommand::Revoke(args) => {
            serve::clients::revoke(args.state.as_deref(), &args.name)?;
            write_report(&(), false, || format!("client {:?} revoked\n", args.name))
        }
        ClientsCommand::Rotate(args) => {
            let token = serve::clients::rotate(args.state.as_deref(), &args.name)?;
            #[derive(serde::Serialize)]
            struct Rotated<'a> {
                name: &'a str,
                token: &'a str,
            }
            let report = Rotated {
                name: &args.name,
                token: &token,
            };
            write_report(&report, args.json, || {
                format!(
                    "client {:?} has a new API token (the old one is refused from now on), shown once:\n{token}\n",
                    args.name
                )
            })
        }
    }
}

fn generate_text(args: &GenerateArgs) -> Result<()> {
    let mode = args
        .mode
        .unwrap_or(match (&args.model, &args.adapter, &args.server) {
            (Some(_), None, None) => Mode::Plain,
            _ => Mode::Secure,
        });
    let remote = match &args.server {
        None => None,
        Some(url) => {
            if args.pll.is_some() {
                bail!("--pll is the server's choice (helora serve --pll): drop it with --server");
            }
            let token = args.token.clone().ok_or_else(|| {
                anyhow::anyhow!("--server needs the API token: --token T or HELORA_TOKEN")
            })?;
            Some(serve::remote::RemoteOptions {
                url: url.clone(),
                token,
                adapter: args.adapter_name.clone().unwrap_or_default(),
                ca_cert: args.tls_ca.clone(),
                key_dir: args.key_dir.clone(),
                retries: args.retries,
            })
        }
    };
    // Flags the chosen mode would ignore are refused before anything loads.
    if args.pll.is_some() && mode != Mode::Secure {
        bail!("--pll is the server's protection in secure mode: drop it or use --mode secure");
    }
    let options = GenerateOptions {
        prompt: args.prompt.clone(),
        model: args.model.clone(),
        adapter: args.adapter.clone(),
        mode,
        max_tokens: args.max_tokens as usize,
        seed: args.seed,
        top_p: args.top_p,
        temperature: args.temperature,
        pll: args.pll != Some(Switch::Off),
        device: args.device,
        stream: !args.json,
        check: args.check,
        top_logits: args.top_logits.map_or(0, |k| k as usize),
        remote,
    };
    let report = generate::run(&options)?;
    write_report(&report, args.json, || format!("\n{}", report.table()))
}

fn bench_token(args: &TokenArgs) -> Result<()> {
    if args.device == DeviceChoice::Cuda {
        if args.he_only {
            bail!(
                "--he-only runs the HE path alone, on the CPU; --device cuda is for the base \
                 model (drop --he-only)"
            );
        }
        // Before anything is built: a clear error where the GPU or the GPU build is missing.
        crate::device::check(args.device)?;
    }
    if args.he_only && args.mode != Mode::Secure {
        bail!("--he-only measures secure mode (and the plaintext adapter beside it)");
    }
    let options = TokenOptions {
        preset: args.shape.preset.clone(),
        rank: args.shape.rank as usize,
        targets: args.shape.targets.clone(),
        tokens: args.tokens as usize,
        prompt_tokens: args.prompt_tokens as usize,
        batch: args.batch as usize,
        pll: args.pll == Switch::On,
        mode: args.mode,
        he_only: args.he_only,
        memory_limit: args.memory_limit_mib.map(|mib| mib.saturating_mul(1 << 20)),
        device: args.device,
    };
    let run = || -> Result<()> {
        let Some(plot) = &args.plot else {
            let report = bench::token::run(&options)?;
            return write_report(&report, args.json, || report.table());
        };
        let points = match &args.plot_points {
            Some(list) => series::parse_points(list)?,
            None => series::default_points(args.plot_over).to_vec(),
        };
        let report = sweep::run_and_plot(&options, args.plot_over, &points, plot)?;
        write_report(&report, args.json, || report.table())
    };
    match args.threads {
        None => run(),
        Some(threads) => bench::thread_pool(threads as usize)?.install(run),
    }
}

fn bench_ops(args: &OpsArgs) -> Result<()> {
    let options = OpsOptions {
        n: args.n,
        iters: args.iters.map(|k| k as usize),
    };
    let report = match args.device {
        DeviceChoice::Cpu => bench::ops::run(&options)?,
        DeviceChoice::Cuda => bench::cuda::ops(&options)?,
    };
    // The stand-in driver's timings are never reported as a GPU's.
    if let Some(name) = report.device.as_ref().map(|d| d.name.as_str()) {
        if bench::cuda::is_emulator(name) {
            return write_notice(&bench::cuda::emulator_notice("ops", name));
        }
    }
    write_report(&report, args.json, || report.table())
}

fn bench_lora(args: &LoraArgs) -> Result<()> {
    let threads = match args.threads {
        Some(t) => t as usize,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let options = LoraOptions {
        d_in: args.d_in as usize,
        d_out: args.d_out as usize,
        rank: args.r as usize,
        n: args.n,
        tokens: args.tokens as usize,
        iters: args.iters.map(|k| k as usize),
        threads,
        memory_limit: args.memory_limit_mib.map(|mib| mib.saturating_mul(1 << 20)),
    };
    if args.device == DeviceChoice::Cuda {
        let report = bench::cuda::lora(&options, args.batch.map_or(64, |b| b as usize))?;
        if bench::cuda::is_emulator(&report.device) {
            return write_notice(&bench::cuda::emulator_notice("lora", &report.device));
        }
        return write_report(&report, args.json, || report.table());
    }
    if args.batch.is_some() {
        bail!("--batch is for --device cuda; the CPU batch is --tokens");
    }
    let report = bench::lora::run(&options)?;
    write_report(&report, args.json, || report.table())
}

/// Prints a notice in place of a report (stdout).
fn write_notice(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    write!(out, "{text}").context("writing the notice")?;
    out.flush().context("writing the notice")?;
    Ok(())
}

/// Prints one JSON object or the human table on stdout.
fn write_report<R: serde::Serialize>(
    report: &R,
    json: bool,
    table: impl FnOnce() -> String,
) -> Result<()> {
    // Write through a handle rather than `println!`, which panics on a closed pipe.
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report).context("writing the JSON report")?;
        writeln!(out).context("writing the JSON report")?;
    } else {
        write!(out, "{}", table()).context("writing the report")?;
    }
    out.flush().context("writing the report")?;
    Ok(())
}
