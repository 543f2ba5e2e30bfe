//! The attacker's copy of each projection's ΔW = a·b (the adapter's scale included) from
//! the first n replies of a site: least squares for basis queries (each reply is a row of
//! ΔW; repeats are averaged, rows never queried stay zero), ridge regression for recorded
//! hidden states (fewer tokens than d_in, or inputs in a subspace, leave ΔW
//! underdetermined); optionally the best approximation of the adapter's rank.

use super::collect::{Inputs, Observations};
use crate::adapter::LoraFactors;
use anyhow::{anyhow, bail, Result};
use helora::pll::attack::linalg::{cholesky, cholesky_solve, low_rank_approximation, Mat};

/// Subspace iterations of the rank-r truncation (noisy copies have a smaller gap than the
/// factor attack's, hence more than its 15).
const TRUNCATION_ITERATIONS: usize = 40;

#[derive(Clone, Copy, Debug)]
pub struct FitOptions {
    /// λ of the ridge, relative to the mean diagonal of XᵀX.
    pub ridge: f64,
    /// Keep the best approximation of this rank.
    pub truncate_to: Option<usize>,
}

/// Per module of the site, ΔŴ (d_in × d_out) from its first `n` queries.
pub fn fit(observed: &Observations, n: usize, options: &FitOptions) -> Result<Vec<Mat>> {
    if n > observed.queries {
        bail!(
            "{n} queries asked of layer {}, which answered {}",
            observed.site.layer,
            observed.queries
        );
    }
    let fitted = match &observed.inputs {
        Inputs::Basis { magnitude } => basis_least_squares(observed, n, *magnitude),
        Inputs::Recorded(inputs) => ridge(observed, inputs, n, options.ridge)?,
    };
    Ok(match options.truncate_to {
        Some(rank) => fitted
            .iter()
            .map(|w| low_rank_approximation(w, rank, TRUNCATION_ITERATIONS))
            .collect(),
        None => fitted,
    })
}

fn basis_least_squares(observed: &Observations, n: usize, magnitude: f64) -> Vec<Mat> {
    let d_in = observed.site.d_in;
    let mut counts = vec![0u32; d_in];
    for q in 0..n {
        counts[q % d_in] += 1;
    }
    observed
        .site
        .d_out
        .iter()
        .zip(&observed.replies)
        .map(|(&d_out, replies)| {
            let mut w = Mat::zeros(d_in, d_out);
            for (q, reply) in replies.chunks_exact(d_out).take(n).enumerate() {
                let i = q % d_in;
                let weight = 1.0 / (f64::from(counts[i]) * magnitude);
                for (acc, &y) in w.row_mut(i).iter_mut().zip(reply) {
                    *acc += f64::from(y) * weight;
                }
            }
            w
        })
        .collect()
}

/// ΔŴ = (XᵀX + λI)⁻¹·XᵀY, every module of the site solved at once (they share X).
fn ridge(observed: &Observations, inputs: &[f32], n: usize, ridge: f64) -> Result<Vec<Mat>> {
    let site = &observed.site;
    let d_in = site.d_in;
    let widths: usize = site.d_out.iter().sum();
    let x = Mat {
        rows: n,
        cols: d_in,
        data: inputs[..n * d_in].iter().map(|&v| f64::from(v)).collect(),
    };
    let mut y = Mat::zeros(n, widths);
    let mut offset = 0;
    for (&d_out, replies) in site.d_out.iter().zip(&observed.replies) {
        for (q, reply) in replies.chunks_exact(d_out).take(n).enumerate() {
            for (acc, &v) in y.row_mut(q)[offset..offset + d_out].iter_mut().zip(reply) {
                *acc = f64::from(v);
            }
        }
        offset += d_out;
    }
    let xt = x.transpose();
    let mut gram = xt.mul(&x);
    let trace: f64 = (0..d_in).map(|i| gram.data[i * d_in + i]).sum();
    if trace == 0.0 {
        // No input seen (or only zeros): nothing is known of ΔW.
        return Ok(site.d_out.iter().map(|&d| Mat::zeros(d_in, d)).collect());
    }
    let lambda = ridge * trace / d_in as f64;
    for i in 0..d_in {
        gram.data[i * d_in + i] += lambda;
    }
    cholesky(&mut gram).map_err(|pivot| {
        anyhow!(
            "layer {}: XᵀX + λI is singular at pivot {pivot} ({n} tokens for d_in = {d_in}): \
             raise --ridge",
            site.layer
        )
    })?;
    let mut solution = xt.mul(&y);
    cholesky_solve(&gram, &mut solution);
    let mut offset = 0;
    Ok(site
        .d_out
        .iter()
        .map(|&d_out| {
            let mut w = Mat::zeros(d_in, d_out);
            for i in 0..d_in {
                w.row_mut(i)
                    .copy_from_slice(&solution.row(i)[offset..offset + d_out]);
            }
            offset += d_out;
            w
        })
        .collect())
}

/// The true ΔW = a·b of a projection (what the attacker does not have: for the report).
pub fn true_delta(factors: &LoraFactors) -> Result<Mat> {
    let (a, b) = factors.to_matrices()?;
    let mat = |m: &helora::linear::Matrix| Mat {
        rows: m.rows(),
        cols: m.cols(),
        data: (0..m.rows())
            .flat_map(|i| (0..m.cols()).map(move |j| (i, j)))
            .map(|(i, j)| m.get(i, j))
            .collect(),
    };
    Ok(mat(&a).mul(&mat(&b)))
}

/// ‖fitted − truth‖_F / ‖truth‖_F.
pub fn relative_error(fitted: &Mat, truth: &Mat) -> f64 {
    let diff: f64 = fitted
        .data
        .iter()
        .zip(&truth.data)
        .map(|(f, t)| (f - t).powi(2))
        .sum();
    diff.sqrt() / truth.frobenius().max(f64::MIN_POSITIVE)
}
