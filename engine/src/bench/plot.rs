//! `bench token --plot FILE.png`: ms/token against rank or batch size, one curve per mode,
//! with the published scheme's 1610 ms/token as a reference line; both axes logarithmic.
//! Text is drawn with DejaVu Sans compiled into the binary (plotters' `ab_glyph`), so the
//! chart renders on machines without any system font.

use super::published::PAPER_MS_PER_TOKEN;
use super::series::{Sweep, SweepOver};
use crate::chart::{bounds, save_png, use_embedded_font};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (1024, 640);

/// A mode's label, colour and (x, ms/token) points.
type Curve = (&'static str, RGBColor, Vec<(f64, f64)>);

/// Draws `sweep` into the PNG at `path`; `title` heads the chart.
pub fn draw(sweep: &Sweep, path: &Path, title: &str) -> Result<()> {
    use_embedded_font()?;
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());

    let xs: Vec<f64> = sweep.points.iter().map(|p| p.x as f64).collect();
    let mut ys: Vec<f64> = vec![PAPER_MS_PER_TOKEN];
    for p in &sweep.points {
        ys.extend(p.plain_ms_per_token);
        ys.extend([p.lora_ms_per_token, p.secure_ms_per_token]);
    }
    let ys: Vec<f64> = ys.into_iter().filter(|y| *y > 0.0).collect();
    let (x_min, x_max) = bounds(&xs);
    let (y_min, y_max) = bounds(&ys);
    // A little room on either side; a single point still gets a visible range.
    let x_range = (x_min / 1.3)..(x_max * 1.3);
    let y_range = (y_min / 2.0)..(y_max * 2.0);

    // Drawn in memory and written at the end: a failed write (a full disk) is then an
    // I/O error in words.
    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.log_scale().base(2.0), y_range.log_scale())
        .map_err(|e| fail(&e))?;
    let x_desc = match sweep.over {
        SweepOver::Rank => "LoRA rank",
        SweepOver::Batch => "sequences in flight (batch)",
    };
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(match sweep.over {
            SweepOver::Rank => "decode ms per token (log scale)",
            SweepOver::Batch => "decode ms per token = step / batch (log scale)",
        })
        // Ranks and batch sizes are whole: ticks between them stay unlabelled.
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| ms_label(*y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| fail(&e))?;

    let reference = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(
            [
                (x_min / 1.3, PAPER_MS_PER_TOKEN),
                (x_max * 1.3, PAPER_MS_PER_TOKEN),
            ],
            reference.stroke_width(2),
        ))
        .map_err(|e| fail(&e))?
        .label("published scheme: 1610 ms/token (ChatGLM2-6B, rank 8, CPU)")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], reference));

    let curves: [Curve; 3] = [
        (
            "plain (base model only)",
            RGBColor(0, 114, 178),
            sweep
                .points
                .iter()
                .filter_map(|p| p.plain_ms_per_token.map(|y| (p.x as f64, y)))
                .collect(),
        ),
        (
            if sweep.he_only {
                "lora (adapter alone, plaintext)"
            } else {
                "lora (adapter in plaintext)"
            },
            RGBColor(0, 158, 115),
            sweep
                .points
                .iter()
                .map(|p| (p.x as f64, p.lora_ms_per_token))
                .collect(),
        ),
        (
            if sweep.he_only {
                "secure (HE path only)"
            } else {
                "secure (encrypted adapter)"
            },
            RGBColor(213, 94, 0),
            sweep
                .points
                .iter()
                .map(|p| (p.x as f64, p.secure_ms_per_token))
                .collect(),
        ),
    ];
    for (label, color, points) in curves {
        let points: Vec<(f64, f64)> = points.into_iter().filter(|p| p.1 > 0.0).collect();
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(3)))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    drop(chart);
    drop(root);
    save_png(path, &pixels, SIZE)
}

/// A tick value with as many decimals as its size needs.
fn ms_label(y: f64) -> String {
    match y {
        y if y >= 10.0 => format!("{y:.0}"),
        y if y >= 1.0 => format!("{y:.1}"),
        y => format!("{y:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::series::SweepPoint;
    use super::*;

    #[test]
    fn draws_a_png_without_system_fonts() {
        let sweep = Sweep {
            over: SweepOver::Rank,
            he_only: false,
            tokens: 2,
            prompt_tokens: 2,
            points: [1, 8, 64]
                .iter()
                .map(|&x| SweepPoint {
                    x,
                    plain_ms_per_token: Some(30.0),
                    lora_ms_per_token: 31.0 + x as f64 / 10.0,
                    secure_ms_per_token: 200.0 + x as f64,
                })
                .collect(),
        };
        let dir = std::env::temp_dir().join(format!("helora-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sweep.png");
        draw(&sweep, &path, "test").unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_full_disk_is_an_error_in_words() {
        let sweep = Sweep {
            over: SweepOver::Batch,
            he_only: true,
            tokens: 1,
            prompt_tokens: 1,
            points: vec![SweepPoint {
                x: 1,
                plain_ms_per_token: None,
                lora_ms_per_token: 1.0,
                secure_ms_per_token: 2.0,
            }],
        };
        // /dev/full refuses every write with ENOSPC, as a full disk does.
        let e = format!(
            "{:#}",
            draw(&sweep, Path::new("/dev/full"), "t").unwrap_err()
        );
        assert!(e.contains("No space left on device"), "{e}");
        assert!(!e.contains("Os {") && e.lines().count() == 1, "{e}");
    }
}
