//! `bench serve --plot FILE.png`: the load run again at each point of a range of clients,
//! distinct key sets or replicas, and a chart of the throughput (all clients) and the p99
//! request latency against it, the two panels over one x axis.

use super::machine;
use super::serve::{self, ServeBenchOptions, ServeBenchReport};
use crate::chart::{bounds, check_plot_path, save_png, use_embedded_font};
use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use serde::Serialize;
use std::path::Path;

/// What a `bench serve` sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServeSweepOver {
    /// Concurrent clients (each its own key set unless --key-sets).
    Clients,
    /// Distinct key sets among a fixed number of clients: the same load, more keys.
    KeySets,
    /// Servers started here on one PostgreSQL state (--state).
    Replicas,
}

impl ServeSweepOver {
    pub fn default_points(self, clients: usize) -> Vec<usize> {
        match self {
            ServeSweepOver::Clients => vec![1, 2, 4, 8, 16],
            ServeSweepOver::KeySets => [1, 2, 4, 8, 16]
                .into_iter()
                .filter(|&k| k <= clients)
                .collect(),
            ServeSweepOver::Replicas => vec![1, 2],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ServeSweepOver::Clients => "concurrent clients",
            ServeSweepOver::KeySets => "distinct key sets (same clients, same load)",
            ServeSweepOver::Replicas => "server replicas on one PostgreSQL state",
        }
    }

    /// `base` at point `x`.
    fn at(self, base: &ServeBenchOptions, x: usize) -> ServeBenchOptions {
        let mut options = base.clone();
        match self {
            ServeSweepOver::Clients => {
                options.clients = x;
                options.key_sets = x;
            }
            ServeSweepOver::KeySets => options.key_sets = x,
            ServeSweepOver::Replicas => options.replicas = x,
        }
        options
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ServeSweepReport {
    pub over: ServeSweepOver,
    pub points: Vec<(usize, ServeBenchReport)>,
    pub plot: String,
}

/// Runs `base` at every point of `xs` and draws the chart into `path`. What can be refused
/// is refused before the first run.
pub fn run_and_plot(
    base: &ServeBenchOptions,
    over: ServeSweepOver,
    xs: &[usize],
    path: &Path,
) -> Result<ServeSweepReport> {
    if xs.is_empty() || xs.contains(&0) {
        bail!("--plot-points must be positive numbers");
    }
    for &x in xs {
        let options = over.at(base, x);
        if options.key_sets > options.clients {
            bail!(
                "--plot-points {x}: {} key sets for {} clients (at most one each)",
                options.key_sets,
                options.clients
            );
        }
        if options.replicas > 1 && options.state.is_none() {
            bail!("--plot-points {x}: replicas share one state; give --state postgres://…");
        }
        if base.server.is_some() && over == ServeSweepOver::Replicas {
            bail!("--plot-over replicas starts its servers here: drop --server");
        }
    }
    check_plot_path(path)?;
    let mut points = Vec::with_capacity(xs.len());
    for &x in xs {
        let report =
            serve::run(&over.at(base, x)).with_context(|| format!("{} = {x}", over.describe()))?;
        eprintln!(
            "bench serve: {} = {x}: {:.3} tokens/s, p99 {:.1} ms per request",
            over.describe(),
            report.tokens_per_s,
            report.request_ms.p99
        );
        points.push((x, report));
    }
    let title = format!(
        "helora bench serve: {}, {} tokens per client, PLL {}, on {}",
        base.preset,
        base.tokens,
        if base.pll { "on" } else { "off" },
        machine::cpu_model()
    );
    let measured: Vec<Measured> = points
        .iter()
        .map(|(x, r)| (*x as f64, r.tokens_per_s, r.request_ms.p99))
        .collect();
    draw(&measured, over, path, &title)?;
    Ok(ServeSweepReport {
        over,
        points,
        plot: path.display().to_string(),
    })
}

impl ServeSweepReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "bench serve sweep over {} (plot: {})\n{:>8} {:>12} {:>14} {:>14} {:>9}\n",
            self.over.describe(),
            self.plot,
            "x",
            "tokens/s",
            "p50 req ms",
            "p99 req ms",
            "failures"
        );
        for (x, r) in &self.points {
            out += &format!(
                "{x:>8} {:>12.3} {:>14.1} {:>14.1} {:>9}\n",
                r.tokens_per_s, r.request_ms.p50, r.request_ms.p99, r.failures
            );
        }
        out
    }
}

const SIZE: (u32, u32) = (1024, 760);

/// One point: x, tokens/s, p99 request ms.
type Measured = (f64, f64, f64);

/// A panel's y-axis label, colour and (x, y) points.
type Panel = (&'static str, RGBColor, Vec<(f64, f64)>);

fn draw(points: &[Measured], over: ServeSweepOver, path: &Path, title: &str) -> Result<()> {
    use_embedded_font()?;
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let (x_min, x_max) = bounds(&xs);
    let x_range = (x_min / 1.3)..(x_max * 1.3);
    let panels: [Panel; 2] = [
        (
            "throughput, all clients (tokens/s)",
            RGBColor(0, 114, 178),
            points.iter().map(|p| (p.0, p.1)).collect(),
        ),
        (
            "p99 latency per request (ms)",
            RGBColor(213, 94, 0),
            points.iter().map(|p| (p.0, p.2)).collect(),
        ),
    ];

    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    let canvas = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
    canvas.fill(&WHITE).map_err(|e| fail(&e))?;
    let root = canvas
        .titled(title, ("sans-serif", 20))
        .map_err(|e| fail(&e))?;
    let halves = root.split_evenly((2, 1));
    for (area, (label, color, series)) in halves.iter().zip(panels) {
        let ys: Vec<f64> = series
            .iter()
            .map(|p| p.1)
            .filter(|y| y.is_finite())
            .collect();
        let (_, y_max) = bounds(&ys);
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(x_range.clone().log_scale().base(2.0), 0.0..y_max * 1.15)
            .map_err(|e| fail(&e))?;
        chart
            .configure_mesh()
            .x_desc(over.describe())
            .y_desc(label)
            .x_label_formatter(&|x| {
                if (x - x.round()).abs() < 1e-9 {
                    format!("{x:.0}")
                } else {
                    String::new()
                }
            })
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(|e| fail(&e))?;
        let series: Vec<(f64, f64)> = series.into_iter().filter(|p| p.1.is_finite()).collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(3)))
            .map_err(|e| fail(&e))?;
        chart
            .draw_series(series.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| fail(&e))?;
    }
    drop(halves);
    root.present().map_err(|e| fail(&e))?;
    drop(root);
    drop(canvas);
    save_png(path, &pixels, SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_both_panels_into_a_png() {
        let path =
            std::env::temp_dir().join(format!("helora-serve-sweep-{}.png", std::process::id()));
        let points = [(1.0, 2.5, 80.0), (2.0, 4.0, 95.0), (16.0, 4.6, f64::NAN)];
        draw(&points, ServeSweepOver::KeySets, &path, "test").unwrap();
        let png = image::open(&path).unwrap().to_rgb8();
        assert_eq!(png.dimensions(), SIZE);
        // Both curves were drawn: pixels of each colour exist.
        let has = |c: [u8; 3]| png.pixels().any(|p| p.0 == c);
        assert!(has([0, 114, 178]) && has([213, 94, 0]));
        let _ = std::fs::remove_file(&path);
    }
}
