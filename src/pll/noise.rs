//! The per-query perturbation: step 3 of the plan runs with B + E, E fresh.
//!
//! E has one complex Gaussian entry per (row j < r', column c) of every output ciphertext,
//! σ_E per real component. Slot c then holds Σ_j u_j·(B_jc + E_jc): the real part of an
//! output gets noise of std σ_E·‖u‖, proportional to the signal's own factor u = x·A, so a
//! client that scales x scales the noise with it; the imaginary parts and the slots beyond
//! d_out get the same-size mask, which drowns the parts of the circuit's error that grow
//! with u.
//!
//! iid complex Gaussian slots are exactly iid real Gaussian coefficients (the canonical
//! embedding is a scaled orthogonal map: N/2 slots' real and imaginary parts have variance
//! N/2 times a coefficient's), so E is drawn directly as a polynomial per diagonal, std
//! σ_E·Δ_B·√(2/N), and added to the plan's encoded B: no encoding, no key switch. E does
//! not depend on the input, so it is drawn while step 1 runs.

use super::PllError;
use crate::ckks::{Backend, Evaluator, Params};
use crate::linear::{LoraPlan, Matrix, OutputDiagonals};
use crate::math::sampling::NoiseRng;
use rand::SeedableRng;
use rand_core::RngCore;

/// Largest coefficient std accepted (keeps the rounded draws exact in i64).
const MAX_COEFFICIENT_STD: f64 = (1u64 << 56) as f64;

/// σ_E for a relative noise σ: σ·rms(B), so that E‖u·E‖² / ‖u·B‖² = σ² for an isotropic u.
pub(crate) fn perturbation_std(noise: f64, b: &Matrix) -> f64 {
    let count = (b.rows() * b.cols()) as f64;
    let sum: f64 = (0..b.rows())
        .flat_map(|j| (0..b.cols()).map(move |c| (j, c)))
        .map(|(j, c)| b.get(j, c).powi(2))
        .sum();
    noise * (sum / count).sqrt()
}

/// The perturbation of one plan: the std of E per coefficient of its step-3 plaintexts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Perturbation {
    coefficient_std: f64,
}

impl Perturbation {
    /// The perturbation of std `std` (σ_E, per real component of a slot) for `plan`.
    pub(crate) fn new<B: Backend>(
        params: &Params,
        plan: &LoraPlan<B>,
        std: f64,
    ) -> Result<Self, PllError> {
        let level = plan.output_diagonal_level();
        let coefficient_std =
            std * params.q_primes()[level] as f64 * (2.0 / params.n() as f64).sqrt();
        if !(coefficient_std.is_finite() && coefficient_std < MAX_COEFFICIENT_STD) {
            return Err(PllError::Settings(format!(
                "a perturbation of std {std} does not fit the plaintexts"
            )));
        }
        Ok(Self { coefficient_std })
    }

    /// `plan`'s B diagonals plus a fresh E, for one application: each diagonal's E from its
    /// own generator, seeded from `rng`, so they are drawn in parallel.
    pub(crate) fn draw<B: Backend>(
        &self,
        evaluator: &Evaluator<B>,
        plan: &LoraPlan<B>,
        rng: &mut impl RngCore,
    ) -> Result<OutputDiagonals<B>, PllError> {
        let count = plan.output_layout().chunks * plan.rank_padded();
        let seeds: Vec<[u8; 32]> = (0..count)
            .map(|_| {
                let mut seed = [0; 32];
                rng.fill_bytes(&mut seed);
                seed
            })
            .collect();
        plan.map_output_diagonals(|k, pt| {
            let seed = seeds
                .get(k)
                .ok_or_else(|| PllError::Malformed("no seed for a diagonal".into()))?;
            let mut rng = NoiseRng::from_seed(*seed);
            Ok(evaluator.perturbed(pt, self.coefficient_std, &mut rng)?)
        })
    }
}
