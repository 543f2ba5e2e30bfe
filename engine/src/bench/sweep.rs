//! `bench token --plot`: the per-token latency of each mode over a range of ranks or batch
//! sizes, with a few decode steps per point. The full-model path builds the model once
//! and runs lora and secure at every point, and plain once over ranks (it has no adapter)
//! or at every batch size; `--he-only` runs the HE path and the plaintext adapter product
//! at every point.

use super::series::{Sweep, SweepOver, SweepPoint, MAX_BATCH, POINT_TOKENS};
use super::token::{self, TokenOptions, TokenReport};
use super::{machine, plot};
use crate::chart::check_plot_path;
use crate::generate::Mode;
use crate::model::Model;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// `bench token --plot`: the main run of `options`, then the sweep over `xs` (on the same
/// model: the full model is built once), drawn into `path`. Everything that can be
/// refused is refused before the first run.
pub fn run_and_plot(
    options: &TokenOptions,
    over: SweepOver,
    xs: &[usize],
    path: &Path,
) -> Result<TokenReport> {
    match over {
        SweepOver::Rank => {
            if let Some(&bad) = xs.iter().find(|&&r| r > helora::linear::MAX_RANK) {
                bail!(
                    "rank {bad} in --plot-points is outside 1 … {}",
                    helora::linear::MAX_RANK
                );
            }
        }
        SweepOver::Batch => {
            if let Some(&bad) = xs.iter().find(|&&b| b > MAX_BATCH) {
                bail!("batch size {bad} in --plot-points is outside 1 … {MAX_BATCH}");
            }
        }
    }
    check_plot_path(path)?;
    // A batch point of the full model needs its caches to fit and its queries to stay
    // within the PLL's budget.
    if over == SweepOver::Batch && !options.he_only {
        for &batch in xs {
            token::check_full(&TokenOptions {
                batch,
                ..sweep_base(options)
            })
            .with_context(|| format!("--plot-points batch size {batch}"))?;
        }
    }
    let (mut report, sweep) = if options.he_only {
        let report = token::run_he_only(options)?;
        (report, run(options, over, xs, None)?)
    } else {
        let config = token::check_full(options)?;
        let model = token::build_model(options, &config)?;
        let report = token::full_report(&model, options)?;
        (report, run(options, over, xs, Some(&model))?)
    };
    let title = format!(
        "helora bench token: {}{}, {} on {}",
        options.preset,
        if options.he_only {
            " (HE path only)"
        } else {
            ""
        },
        match over {
            SweepOver::Rank => format!("batch {}", options.batch),
            SweepOver::Batch => format!("rank {}", options.rank),
        },
        machine::cpu_model()
    );
    plot::draw(&sweep, path, &title)?;
    report.sweep = Some(sweep);
    report.plot = Some(path.display().to_string());
    Ok(report)
}

/// The options every point starts from: a few tokens, secure mode.
fn sweep_base(options: &TokenOptions) -> TokenOptions {
    TokenOptions {
        tokens: options.tokens.min(POINT_TOKENS),
        prompt_tokens: options.prompt_tokens.min(POINT_TOKENS),
        mode: Mode::Secure,
        ..options.clone()
    }
}

/// Runs the sweep over `xs`; `model` is the full model (`None` with `--he-only`).
pub fn run(
    options: &TokenOptions,
    over: SweepOver,
    xs: &[usize],
    model: Option<&Model>,
) -> Result<Sweep> {
    if xs.is_empty() {
        bail!("the sweep has no points");
    }
    let base = sweep_base(options);
    // The base model alone, per batch size (its cost changes with the batch; a rank does
    // not change it, so a rank sweep measures it once).
    let plain = |batch: usize| -> Result<Option<f64>> {
        let Some(model) = model else {
            return Ok(None);
        };
        let options = TokenOptions {
            mode: Mode::Plain,
            batch,
            ..base.clone()
        };
        Ok(Some(token::full_report(model, &options)?.ms_per_token))
    };
    let plain_once = match over {
        SweepOver::Rank => plain(base.batch)?,
        SweepOver::Batch => None,
    };
    let mut points = Vec::with_capacity(xs.len());
    for &x in xs {
        let mut point = base.clone();
        let (per, plain_ms) = match over {
            SweepOver::Rank => {
                point.rank = x;
                (1.0, plain_once)
            }
            SweepOver::Batch => {
                point.batch = x;
                (x as f64, plain(x)?.map(|ms| ms / x as f64))
            }
        };
        let report = match model {
            Some(model) => token::full_report(model, &point)?,
            None => token::run_he_only(&point)?,
        };
        points.push(SweepPoint {
            x,
            plain_ms_per_token: plain_ms,
            lora_ms_per_token: report.lora_ms_per_token / per,
            secure_ms_per_token: report.ms_per_token / per,
        });
    }
    Ok(Sweep {
        over,
        he_only: model.is_none(),
        tokens: base.tokens,
        prompt_tokens: base.prompt_tokens,
        points,
    })
}
