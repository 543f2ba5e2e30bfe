//! Command-line interface: argument definitions and dispatch to the subcommands.

use crate::attack::{self, AttackCommand};
use crate::bench::series::{self, SweepOver};
use crate::bench::sweep;
use crate::bench::{self, lora::LoraOptions, ops::OpsOptions, token::TokenOptions};
use crate::device::DeviceChoice;
use crate::generate::{self, GenerateOptions, Mode};
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
    /// Renders a chat template for a parent helora process: a request on stdin, the reply on
    /// stdout (`model::chat_process`); not for people.
    #[command(name = crate::model::chat_process::SUBCOMMAND, hide = true)]
    RenderChatTemplate,
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
}

#[derive(Debug, Args)]
pub struct TokenArgs {
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
        Command::Attack(AttackCommand::Extract(args)) => {
            let report = attack::extract(&args)?;
            write_report(&report, args.json, || report.table())
        }
        Command::RenderChatTemplate => crate::model::chat_process::serve(),
    }
}

fn generate_text(args: &GenerateArgs) -> Result<()> {
    let mode = args.mode.unwrap_or(match (&args.model, &args.adapter) {
        (Some(_), None) => Mode::Plain,
        _ => Mode::Secure,
    });
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
        preset: args.preset.clone(),
        rank: args.rank as usize,
        targets: args.targets.clone(),
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
