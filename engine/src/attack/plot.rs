//! `attack behaviour --plot FILE.png`: token and answer agreement with the true adapter
//! against the number of queries, for the copy (a curve) and the base (a flat line: it
//! makes no queries). Queries on a logarithmic axis; the style of `bench token --plot`.

use super::behaviour::{BehaviourReport, QueryDesign};
use crate::chart::{bounds, save_png, use_embedded_font};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (1024, 640);

/// A series' label, colour and (queries, agreement) points, and whether it is the copy's
/// (a marked curve) or the base's (a flat line).
type Series = (&'static str, RGBColor, Vec<(f64, f64)>, bool);

pub fn draw(report: &BehaviourReport, path: &Path) -> Result<()> {
    use_embedded_font()?;
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let xs: Vec<f64> = report.points.iter().map(|p| p.queries as f64).collect();
    let (x_min, x_max) = bounds(&xs);
    let x_range = (x_min / 1.3)..(x_max * 1.3);

    let mut pixels = vec![0u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    let root = BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let title = format!(
        "Behaviour extraction: {} queries, PLL {}",
        match report.design {
            QueryDesign::Basis => "basis",
            QueryDesign::Text => "text",
        },
        if report.pll {
            format!("on (σ = {})", report.noise)
        } else {
            "off".into()
        }
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x_range.log_scale().base(2.0), 0.0..1.05)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc(match report.design {
            QueryDesign::Basis => "queries per site (log scale)",
            QueryDesign::Text => "prompt tokens sent (log scale)",
        })
        .y_desc("agreement with the true adapter")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .draw()
        .map_err(|e| fail(&e))?;

    let copy_token: Vec<(f64, f64)> = report
        .points
        .iter()
        .map(|p| (p.queries as f64, p.copy.token_agreement))
        .collect();
    let copy_answer: Vec<(f64, f64)> = report
        .points
        .iter()
        .map(|p| (p.queries as f64, p.copy.answer_agreement))
        .collect();
    let flat = |y: f64| vec![(x_min / 1.3, y), (x_max * 1.3, y)];
    let series: [Series; 4] = [
        (
            "copy: token agreement",
            RGBColor(213, 94, 0),
            copy_token,
            true,
        ),
        (
            "copy: answer agreement",
            RGBColor(0, 114, 178),
            copy_answer,
            true,
        ),
        (
            "base: token agreement",
            RGBColor(230, 159, 0),
            flat(report.base.token_agreement),
            false,
        ),
        (
            "base: answer agreement",
            RGBColor(86, 180, 233),
            flat(report.base.answer_agreement),
            false,
        ),
    ];
    for (label, color, points, marked) in series {
        let width = if marked { 3 } else { 2 };
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(width)))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(width))
            });
        if marked {
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| fail(&e))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
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
