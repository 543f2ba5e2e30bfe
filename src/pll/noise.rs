//! The per-query perturbation: step 3 of the plan runs with B + E, E fresh.
//!
//! E has one complex Gaussian entry per (row j < r', column c) of every output ciphertext,
//! σ_E per real component. Slot c then holds Σ_j u_j·(B_jc + E_jc): the real part of an
//! output gets noise of std σ_E·‖u‖, proportional to the signal's own factor u = x·A, so a
//! client that scales x scales the noise with it; the imaginary parts and the slots beyond
//! d_out get the same-size mask, which drowns the parts of the circuit's error that grow
//! with u. Cost: r' encodings per output ciphertext, no key switch.

use crate::backend::Backend;
use crate::ckks::{Complex, Encoder, Evaluator};
use crate::linear::{LinearError, LoraPlan, Matrix, OutputDiagonals};
use crate::math::sampling::standard_normal;
use rand_core::RngCore;

/// σ_E for a relative noise σ: σ·rms(B), so that E‖u·E‖² / ‖u·B‖² = σ² for an isotropic u.
pub(crate) fn perturbation_std(noise: f64, b: &Matrix) -> f64 {
    let count = (b.rows() * b.cols()) as f64;
    let sum: f64 = (0..b.rows())
        .flat_map(|j| (0..b.cols()).map(move |c| (j, c)))
        .map(|(j, c)| b.get(j, c).powi(2))
        .sum();
    noise * (sum / count).sqrt()
}

/// Step-3 plaintexts of diag(B + E) for one application, E fresh from `rng`.
pub(crate) fn perturbed_diagonals<B: Backend>(
    plan: &LoraPlan<B>,
    b: &Matrix,
    std: f64,
    evaluator: &Evaluator<B>,
    encoder: &Encoder,
    rng: &mut impl RngCore,
) -> Result<OutputDiagonals<B>, LinearError> {
    plan.encode_output_diagonals(evaluator, encoder, |row, col| {
        let e = Complex::new(standard_normal(rng), standard_normal(rng)).scale(std);
        Complex::from(b.get_padded(row, col)) + e
    })
}
