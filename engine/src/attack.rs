//! `helora attack extract`: the extraction attack of `helora::pll::attack` against a
//! server with random LoRA factors, through the real encrypted protocol, with the PLL on
//! or off. Reports the attacker's relative error on A·B and the bound it cannot beat.
//! `helora attack behaviour` ([`behaviour`]): the attack on a real adapter, judged by what
//! the stolen copy answers.

pub mod agreement;
pub mod behaviour;
pub mod collect;
pub mod copy;
pub mod fit;
pub mod plot;
pub mod prompts;
pub mod sites;

use crate::progress::Progress;
use crate::switch::Switch;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use helora::pll::attack::{self, AttackConfig, AttackReport, Design};
use helora::pll::PllSettings;
use serde::Serialize;

#[derive(Debug, Subcommand)]
pub enum AttackCommand {
    /// Recovers A·B by least squares from Q chosen inputs (and its best rank-r
    /// approximation), against a server holding random A (d×r) and B (r×d).
    Extract(ExtractArgs),
    /// Steals a real adapter through the real protocol and measures what the copy answers.
    ///
    /// K client ids (`--clients`) send chosen (`--design basis`) or ordinary (`--design
    /// text`) queries to an in-process server with the PLL as it would serve; a copy of
    /// every attacked projection's ΔW is fitted (least squares, ridge); its greedy answers
    /// on 11 held-out domain prompts are compared with the true adapter's, beside the base
    /// model's: token agreement (teacher-forced on the true adapter's answer) and answer
    /// agreement (the whole greedy answer equal), at each point of `--queries`.
    ///
    /// E.g. `helora attack behaviour --queries 48,192,576 --plot basis.png` (the demo
    /// adapter, PLL on, σ = 0.1), `helora attack behaviour --design text --prompts customer
    /// --queries 128,512 --json`. Figures: docs/security.md §6, "Behaviour extraction".
    Behaviour(behaviour::BehaviourArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DesignArg {
    /// Scaled basis vectors, cycled.
    Basis,
    /// Standard-normal vectors.
    Random,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Dimension: A is d×r, B is r×d.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=attack::MAX_DIMENSION as i64))]
    pub d: u32,
    /// LoRA rank (1 … 64, at most d).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub r: u32,
    /// Queries the attacker makes (the server's budget is set to this).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
    pub queries: u64,
    /// Private Linear Layer on the server.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub pll: Switch,
    /// σ: relative noise of the PLL (with --pll on). Default: the PLL's, 0.1.
    #[arg(long)]
    pub noise: Option<f64>,
    /// How the attacker picks its inputs.
    #[arg(long, value_enum, default_value_t = DesignArg::Basis)]
    pub design: DesignArg,
    /// Multiplies every input (inputs have norm ≈ √d at 1).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints: the attack's own report.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ExtractReport(pub AttackReport);

impl ExtractReport {
    pub fn table(&self) -> String {
        let r = &self.0;
        let predicted = |p: Option<f64>| p.map_or("—".into(), |p| format!("{p:.4e}"));
        let rows = [
            ("d × r", format!("{} × {}", r.d, r.r)),
            ("queries", r.queries.to_string()),
            (
                "pll",
                if r.pll {
                    format!("on (σ = {}, σ_f = {:.3e})", r.noise, r.flood_std)
                } else {
                    "off".into()
                },
            ),
            ("inputs", format!("{} × {}", r.design.name(), r.input_scale)),
            (
                "least squares",
                format!(
                    "{:.4e} (predicted {})",
                    r.least_squares_error,
                    predicted(r.predicted_least_squares_error)
                ),
            ),
            (
                "rank-r projection",
                format!(
                    "{:.4e} (predicted {})",
                    r.low_rank_error,
                    predicted(r.predicted_low_rank_error)
                ),
            ),
            ("relative error", format!("{:.4e}", r.relative_error)),
            ("bound", format!("{:.4e} (κ = {:.3})", r.bound, r.kappa)),
            (
                "time",
                format!(
                    "{:.1} s ({:.1} s protocol, {:.1} s solve)",
                    r.seconds, r.protocol_seconds, r.solve_seconds
                ),
            ),
        ];
        rows.iter().map(|(k, v)| format!("{k:<18} {v}\n")).collect()
    }
}

/// The attacked server's PLL, as both attacks take it from `--pll` and `--noise`: the
/// defaults with σ = `noise` if given, or none at all (where `--noise` is an error).
fn pll_settings(pll: Switch, noise: Option<f64>) -> Result<PllSettings> {
    if pll == Switch::Off {
        if noise.is_some() {
            bail!("--noise is the PLL's: with --pll off there is no noise to set");
        }
        return Ok(PllSettings::off());
    }
    let defaults = PllSettings::default();
    Ok(PllSettings {
        noise: noise.unwrap_or(defaults.noise),
        ..defaults
    })
}

/// Runs `helora attack extract` and returns its report.
pub fn extract(args: &ExtractArgs) -> Result<ExtractReport> {
    let settings = pll_settings(args.pll, args.noise)?;
    let config = AttackConfig {
        d: args.d as usize,
        r: args.r as usize,
        queries: args.queries,
        settings,
        design: match args.design {
            DesignArg::Basis => Design::Basis,
            DesignArg::Random => Design::Random,
        },
        input_scale: args.scale,
    };
    let progress = Progress::start_long("attack", args.queries, "queries");
    let report = attack::run_with_progress(&config, |_, _| progress.advance())
        .context("running the extraction attack")?;
    progress.finish();
    Ok(ExtractReport(report))
}
