//! Command-line interface: argument definitions and dispatch to the subcommands.

use crate::bench::{self, ops::OpsOptions};
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
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Times each CKKS operation on the CPU, single-threaded (medians in microseconds).
    Ops(OpsArgs),
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
    }
}

fn bench_ops(args: &OpsArgs) -> Result<()> {
    let options = OpsOptions {
        n: args.n,
        iters: args.iters.map(|k| k as usize),
    };
    let report = bench::ops::run(&options)?;
    // Write through a handle rather than `println!`, which panics on a closed pipe.
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).context("writing the JSON report")?;
        writeln!(out).context("writing the JSON report")?;
    } else {
        write!(out, "{}", report.table()).context("writing the report")?;
    }
    out.flush().context("writing the report")?;
    Ok(())
}
