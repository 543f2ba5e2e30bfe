//! The points of a `bench token --plot` sweep: ms/token per mode over ranks or batch
//! sizes, as the sweep measures them, the report prints them and the plot draws them.

use anyhow::{bail, Result};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepOver {
    Rank,
    Batch,
}

pub const DEFAULT_RANKS: &[usize] = &[1, 2, 4, 8, 16, 32, 64];
pub const DEFAULT_BATCHES: &[usize] = &[1, 2, 4, 8, 16];
/// Largest batch size: of `--batch`, and of a sweep point.
pub const MAX_BATCH: usize = 4096;
/// Decode steps and prompt tokens per point, at most (each point is a short run).
pub const POINT_TOKENS: usize = 4;

/// Median ms per token at one point; over batch sizes, a step's time divided by the batch.
#[derive(Clone, Debug, Serialize)]
pub struct SweepPoint {
    pub x: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plain_ms_per_token: Option<f64>,
    pub lora_ms_per_token: f64,
    pub secure_ms_per_token: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sweep {
    pub over: SweepOver,
    pub he_only: bool,
    /// Decode steps and prompt tokens of each point.
    pub tokens: usize,
    pub prompt_tokens: usize,
    pub points: Vec<SweepPoint>,
}

/// The points swept when none are given.
pub fn default_points(over: SweepOver) -> &'static [usize] {
    match over {
        SweepOver::Rank => DEFAULT_RANKS,
        SweepOver::Batch => DEFAULT_BATCHES,
    }
}

impl Sweep {
    /// One line per point.
    pub fn table(&self) -> String {
        let x = match self.over {
            SweepOver::Rank => "rank",
            SweepOver::Batch => "batch",
        };
        let mut out = format!(
            "sweep over {x} ({} decode steps, {} prompt tokens per point; median ms/token{}):\n",
            self.tokens,
            self.prompt_tokens,
            if self.over == SweepOver::Batch {
                ", step time / batch"
            } else {
                ""
            }
        );
        out.push_str(&format!(
            "{x:>6}  {:>10}  {:>10}  {:>10}  {:>9}\n",
            "plain", "lora", "secure", "secure/lora"
        ));
        for p in &self.points {
            let plain = p
                .plain_ms_per_token
                .map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
            out.push_str(&format!(
                "{:>6}  {plain:>10}  {:>10.3}  {:>10.1}  {:>9.1}\n",
                p.x,
                p.lora_ms_per_token,
                p.secure_ms_per_token,
                p.secure_ms_per_token / p.lora_ms_per_token.max(f64::MIN_POSITIVE)
            ));
        }
        out
    }
}

/// A comma-separated list of positive integers, as `--plot-points` takes it.
pub fn parse_points(list: &str) -> Result<Vec<usize>> {
    list.split(',')
        .map(|s| match s.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => bail!("{s:?} in --plot-points is not a positive integer"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_or_fail_clearly() {
        assert_eq!(parse_points("1, 2,64").unwrap(), vec![1, 2, 64]);
        assert!(parse_points("1,x")
            .unwrap_err()
            .to_string()
            .contains("\"x\""));
        assert!(parse_points("0").is_err());
    }
}
