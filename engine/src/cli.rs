//! Command-line interface: argument definitions and dispatch to the subcommands.

use crate::attack::{self, AttackCommand};
use crate::bench::{self, lora::LoraOptions, ops::OpsOptions};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::io::Write;

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
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Attacks on the server's protection (extraction of the LoRA weights).
    #[command(subcommand)]
    Attack(AttackCommand),
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Times each CKKS operation on the CPU, single-threaded (medians in microseconds).
    Ops(OpsArgs),
    /// Applies one LoRA plan to encrypted inputs on the CPU (client and server in-process).
    Lora(LoraArgs),
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
    /// Timed iterations of the single apply (default: adaptive).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub iters: Option<u32>,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OpsArgs {
    /// Ring degree N (supported: 8192, 65536).
    #[arg(long, default_value_t = 8192)]
    pub n: usize,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Timed iterations per operation (default: adaptive, about 0.5 s and at least 10).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub iters: Option<u32>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Ops(args)) => bench_ops(&args),
        Command::Bench(BenchCommand::Lora(args)) => bench_lora(&args),
        Command::Attack(AttackCommand::Extract(args)) => {
            let report = attack::extract(&args)?;
            write_report(&report, args.json, || report.table())
        }
    }
}

fn bench_ops(args: &OpsArgs) -> Result<()> {
    let options = OpsOptions {
        n: args.n,
        iters: args.iters.map(|k| k as usize),
    };
    let report = bench::ops::run(&options)?;
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
    };
    let report = bench::lora::run(&options)?;
    write_report(&report, args.json, || report.table())
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
