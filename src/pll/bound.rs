//! How well a client can estimate W = A·B from Q answers y' = x·A·(B + E), E fresh with
//! iid N(0, σ_E²) entries, σ_E = σ·rms(B) (docs/security.md derives these).
//!
//! Lower bound, valid for every unbiased estimator and every choice of inputs, even for an
//! attacker given A for free (Cramér–Rao): the Fisher information of one answer about B is
//! P_u ⊗ I / σ_E² with P_u the projector on u = x·A, whatever x's scale; summing over the
//! queries and minimising the error of W = A·B over the designs gives
//!     E‖Ŵ − W‖_F² ≥ d_out·σ_E²·(Σ_k s_k(A))² / Q,
//! that is, relative to ‖W‖_F, ε(Q) ≥ σ·√(κ·r / Q) with the shape factor
//!     κ = ‖B‖_F²·(Σ_k s_k(A))² / (r²·‖A·B‖_F²)   (= 1 when A's singular values are equal
//! and B's rows are orthogonal with equal norms; ≈ 1 for random factors).
//! Without A the client must also identify A on all of R^d_in: fewer than d_in linearly
//! independent queries leave W undetermined on the rest.

use super::attack::linalg::symmetric_eigenvalues;
use crate::linear::Matrix;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExtractionBound {
    /// σ, the relative noise.
    pub noise: f64,
    pub rank: usize,
    pub d_in: usize,
    pub d_out: usize,
    /// κ, see [`shape_factor`].
    pub kappa: f64,
}

impl ExtractionBound {
    /// Lower bound on the rms relative error ‖Ŵ − AB‖_F / ‖AB‖_F after `queries` answers.
    pub fn relative_error(&self, queries: u64) -> f64 {
        if queries == 0 {
            return f64::INFINITY;
        }
        self.noise * (self.kappa * self.rank as f64 / queries as f64).sqrt()
    }
}

/// κ = ‖B‖_F²·(Σ_k s_k(A))² / (r²·‖A·B‖_F²), from r × r Gram matrices only.
pub fn shape_factor(a: &Matrix, b: &Matrix) -> f64 {
    let r = a.cols();
    let gram = |m: usize, get: &dyn Fn(usize, usize) -> f64| -> Vec<f64> {
        let mut g = vec![0.0; r * r];
        for j in 0..r {
            for k in 0..r {
                g[j * r + k] = (0..m).map(|i| get(i, j) * get(i, k)).sum();
            }
        }
        g
    };
    let ata = gram(a.rows(), &|i, j| a.get(i, j));
    let bbt = gram(b.cols(), &|c, j| b.get(j, c));
    let ab_norm2: f64 = ata.iter().zip(&bbt).map(|(g, h)| g * h).sum();
    let b_norm2: f64 = (0..r).map(|j| bbt[j * r + j]).sum();
    let singular_sum: f64 = symmetric_eigenvalues(ata, r)
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    if ab_norm2 <= 0.0 {
        return f64::INFINITY;
    }
    b_norm2 * singular_sum.powi(2) / ((r * r) as f64 * ab_norm2)
}

/// σ that keeps the bound at `target` after `budget` queries: target·√(Q / (κ·r)).
pub fn noise_for_target(target: f64, budget: u64, rank: usize, kappa: f64) -> f64 {
    target * (budget as f64 / (kappa * rank.max(1) as f64)).sqrt()
}

/// Queries needed for an rms relative error `target`: max(d_in, κ·r·σ²/ε²).
pub fn queries_needed(noise: f64, rank: usize, kappa: f64, target: f64, d_in: usize) -> f64 {
    (kappa * rank as f64 * (noise / target).powi(2)).max(d_in as f64)
}

/// Expected error of plain least squares with each basis vector queried Q/d_in times
/// (isotropic factors): σ·√(d_in / Q).
pub fn least_squares_error(noise: f64, d_in: usize, queries: u64) -> f64 {
    noise * (d_in as f64 / queries.max(1) as f64).sqrt()
}

/// Expected error of least squares from Q > d_in + 1 standard-normal inputs (isotropic
/// factors): σ·√(d_in / (Q − d_in − 1)), the mean of the inverse Wishart's trace.
pub fn random_least_squares_error(noise: f64, d_in: usize, queries: u64) -> f64 {
    let excess = queries as f64 - d_in as f64 - 1.0;
    if excess <= 0.0 {
        return f64::INFINITY;
    }
    noise * (d_in as f64 / excess).sqrt()
}

/// The error left after projecting a least-squares estimate of error `least_squares` on
/// the best rank-r approximation (isotropic factors, strong signal): the noise's share in
/// the tangent space of rank-r matrices, r·(d_in + d_out − r) of d_in·d_out dimensions.
pub fn low_rank_error(least_squares: f64, rank: usize, d_in: usize, d_out: usize) -> f64 {
    let share = (rank * (d_in + d_out).saturating_sub(rank)) as f64 / (d_in * d_out) as f64;
    least_squares * share.min(1.0).sqrt()
}
