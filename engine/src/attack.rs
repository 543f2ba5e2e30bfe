//! `helora attack extract`: the extraction attack of `helora::pll::attack` against a
//! server with random LoRA factors, through the real encrypted protocol, with the PLL on
//! or off. Reports the attacker's relative error on A·B and the bound it cannot beat.

use crate::progress::Progress;
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
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
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub pll: OnOff,
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

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct ExtractReport {
    pub d: usize,
    pub r: usize,
    pub queries: u64,
    pub pll: bool,
    pub design: &'static str,
    pub input_scale: f64,
    /// σ, the server's relative noise (0 with the PLL off).
    pub noise: f64,
    /// Flooding std per coefficient (0 without flooding).
    pub flood_std: f64,
    pub kappa: f64,
    /// The attacker's best: min of the two estimates below.
    pub relative_error: f64,
    pub least_squares_error: f64,
    pub low_rank_error: f64,
    /// Lower bound σ·√(κ·r/Q) of docs/security.md (0 with the PLL off).
    pub bound: f64,
    /// What docs/security.md predicts for the two estimates (null while Q < d).
    pub predicted_least_squares_error: Option<f64>,
    pub predicted_low_rank_error: Option<f64>,
    pub protocol_seconds: f64,
    pub solve_seconds: f64,
    pub seconds: f64,
}

impl ExtractReport {
    fn new(report: &AttackReport) -> Self {
        Self {
            d: report.d,
            r: report.r,
            queries: report.queries,
            pll: report.pll,
            design: report.design.name(),
            input_scale: report.input_scale,
            noise: report.noise,
            flood_std: report.flood_std,
            kappa: report.kappa,
            relative_error: report.relative_error,
            least_squares_error: report.least_squares_error,
            low_rank_error: report.low_rank_error,
            bound: report.bound,
            predicted_least_squares_error: report.predicted_least_squares_error,
            predicted_low_rank_error: report.predicted_low_rank_error,
            protocol_seconds: report.protocol_seconds,
            solve_seconds: report.solve_seconds,
            seconds: report.seconds,
        }
    }

    pub fn table(&self) -> String {
        let predicted = |p: Option<f64>| p.map_or("—".into(), |p| format!("{p:.4e}"));
        let rows = [
            ("d × r", format!("{} × {}", self.d, self.r)),
            ("queries", self.queries.to_string()),
            (
                "pll",
                if self.pll {
                    format!("on (σ = {}, σ_f = {:.3e})", self.noise, self.flood_std)
                } else {
                    "off".into()
                },
            ),
            ("inputs", format!("{} × {}", self.design, self.input_scale)),
            (
                "least squares",
                format!(
                    "{:.4e} (predicted {})",
                    self.least_squares_error,
                    predicted(self.predicted_least_squares_error)
                ),
            ),
            (
                "rank-r projection",
                format!(
                    "{:.4e} (predicted {})",
                    self.low_rank_error,
                    predicted(self.predicted_low_rank_error)
                ),
            ),
            ("relative error", format!("{:.4e}", self.relative_error)),
            (
                "bound",
                format!("{:.4e} (κ = {:.3})", self.bound, self.kappa),
            ),
            (
                "time",
                format!(
                    "{:.1} s ({:.1} s protocol, {:.1} s solve)",
                    self.seconds, self.protocol_seconds, self.solve_seconds
                ),
            ),
        ];
        rows.iter().map(|(k, v)| format!("{k:<18} {v}\n")).collect()
    }
}

/// Runs `helora attack extract` and returns its report.
pub fn extract(args: &ExtractArgs) -> Result<ExtractReport> {
    let pll = args.pll == OnOff::On;
    if !pll && args.noise.is_some() {
        bail!("--noise is the PLL's: with --pll off there is no noise to set");
    }
    let settings = if pll {
        let defaults = PllSettings::default();
        PllSettings {
            noise: args.noise.unwrap_or(defaults.noise),
            ..defaults
        }
    } else {
        PllSettings::off()
    };
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
    Ok(ExtractReport::new(&report))
}
