//! Rounded-Gaussian noise of a chosen width, as CKKS objects: what the PLL adds to its B
//! diagonals (the per-query perturbation, [`Evaluator::perturbed`]) and to its outputs (the
//! flood, [`Plaintext::rounded_gaussian`]). Callers above this layer never build ring
//! polynomials themselves.

use super::ciphertext::{ExtendedPlaintext, Plaintext};
use super::keygen::rounded_gaussian_ntt;
use super::{CkksError, Evaluator, Params};
use crate::backend::Backend;
use crate::ring::{Basis, RnsPoly};
use rand_core::RngCore;

fn check_level(params: &Params, level: usize) -> Result<(), CkksError> {
    if level > params.max_level() {
        return Err(CkksError::Malformed(format!(
            "level {level} is above the top level {}",
            params.max_level()
        )));
    }
    Ok(())
}

fn check_std(std: f64) -> Result<(), CkksError> {
    if !(std.is_finite() && std >= 0.0) {
        return Err(CkksError::Malformed(format!(
            "noise std {std} is not a finite non-negative number"
        )));
    }
    Ok(())
}

impl Plaintext {
    /// The zero plaintext over Q_level at `scale`.
    pub fn zero(params: &Params, level: usize, scale: f64) -> Result<Self, CkksError> {
        check_level(params, level)?;
        let poly = RnsPoly::zero(params.n(), Basis::level(level), true);
        Ok(Self { poly, level, scale })
    }

    /// A plaintext whose every coefficient is round(N(0, std²)) (integer units), over
    /// Q_level at `scale`: added to a ciphertext, it floods its decryption error.
    pub fn rounded_gaussian(
        params: &Params,
        level: usize,
        scale: f64,
        std: f64,
        rng: &mut impl RngCore,
    ) -> Result<Self, CkksError> {
        check_level(params, level)?;
        check_std(std)?;
        let poly = rounded_gaussian_ntt(params.ring(), Basis::level(level), std, rng);
        Ok(Self { poly, level, scale })
    }
}

impl<B: Backend> Evaluator<B> {
    /// `pt` with round(N(0, std²)) added to every coefficient (integer units at its
    /// scale), in both its extended and its Q part: a fresh perturbation of an encoded
    /// operand.
    pub fn perturbed(
        &self,
        pt: &ExtendedPlaintext<B::Poly>,
        std: f64,
        rng: &mut impl RngCore,
    ) -> Result<ExtendedPlaintext<B::Poly>, CkksError> {
        check_std(std)?;
        let backend = self.backend();
        let basis = backend.basis(&pt.extended);
        let noise = rounded_gaussian_ntt(self.params().ring(), basis, std, rng);
        let mut extended = backend.upload_owned(noise)?;
        backend.add_assign(&mut extended, &pt.extended);
        // The Q part of an extended plaintext is its first level + 1 limbs.
        let mut q_part = extended.clone();
        backend.truncate_q(&mut q_part, pt.level + 1);
        Ok(ExtendedPlaintext {
            extended,
            q_part,
            level: pt.level,
            scale: pt.scale,
        })
    }

    /// Encodes real `values` at `level` and `scale` as an extended plaintext (over
    /// Q_level ∪ P), ready for [`linear_combinations_hoisted`](Self::linear_combinations_hoisted).
    pub fn encode_extended(
        &self,
        encoder: &super::Encoder,
        values: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<ExtendedPlaintext<B::Poly>, CkksError> {
        let params = self.params();
        check_level(params, level)?;
        let basis = Basis::new(level + 1, params.p_primes().len());
        let poly = encoder.encode(params.ring(), values, scale, basis)?;
        self.extended_plaintext(&poly, scale)
    }
}
