//! Circuit privacy: what the client decrypts must not depend on A and B beyond the
//! (noisy) result. Two steps on every output ciphertext:
//! - re-randomisation: + Enc_pk(0), fresh. c1 becomes an RLWE sample independent of the
//!   circuit, so the ciphertext is simulatable from its decryption alone;
//! - flooding: + round(N(0, σ_f²)) on every coefficient of c0. The client knows s and so
//!   the exact decrypted error; the circuit's part of it (rescale roundings, key-switch
//!   errors times the encoded A and B) is a function of A and B (Li–Micciancio). σ_f is
//!   sized for s bits of statistical security over a client's whole budget Q the way
//!   OpenFHE sizes its decryption flooding (Li–Micciancio–Schultz–Sorrell):
//!   σ_f = 2^(s/2)·√(12·Q)·ρ, ρ the circuit error's bound. In Rényi terms the order-2
//!   divergence over the budget is then exp(Q·N·ρ²/σ_f²) = exp(N / (12·2^s)).
//!
//! rms is measured per adapter when it is registered (a server-side self-test with a
//! throwaway key and an all-zero input, whose decryption is exactly the circuit's error).

use super::PllError;
use crate::ckks::{
    Backend, Ciphertext, Decryptor, Encoder, Encryptor, Evaluator, KeyGenerator, Params, Plaintext,
    SymmetricEncryptor,
};
use crate::linear::LoraPlan;
use rand_core::RngCore;

/// Self-test runs; the largest measured rms is kept.
const CALIBRATION_RUNS: usize = 2;
/// Margin over the measured rms (it concentrates tightly over N coefficients; the margin
/// covers other inputs' rounding patterns).
const CALIBRATION_MARGIN: f64 = 2.0;
/// σ_f may use at most q_out / 2^12: its 8σ_f tails (10⁻¹⁵ per coefficient) stay below
/// q_out / 2^9, beside a message of at most Δ·2^8 = q_out / 4 at the default parameters.
const FLOOD_HEADROOM_BITS: i32 = 12;

/// σ_f = 2^(s/2)·√(12·budget)·ρ for `security` = s bits over `budget` queries.
pub fn flood_std(circuit_error: f64, budget: u64, security: u32) -> f64 {
    circuit_error * (12.0 * budget as f64).sqrt() * 2f64.powf(f64::from(security) / 2.0)
}

/// Checks that σ_f leaves room for the message modulo the output's modulus.
pub(crate) fn check_flood_fits(params: &Params, level: usize, std: f64) -> Result<(), PllError> {
    let q_bits: f64 = params.q_primes()[..=level]
        .iter()
        .map(|&q| (q as f64).log2())
        .sum();
    if !std.is_finite() || std.log2() > q_bits - FLOOD_HEADROOM_BITS as f64 {
        return Err(PllError::Settings(format!(
            "flooding this budget needs σ_f = 2^{:.1}, more than the {q_bits:.0}-bit output \
             modulus holds: lower the budget or the flooding security",
            std.log2()
        )));
    }
    Ok(())
}

/// Enc_pk(flood) at `level` and `scale`, flood = round(N(0, σ_f²)) per coefficient (zero
/// without flooding): what an output gets added, re-randomising c1 and flooding c0.
/// Independent of the input, so it is drawn while the plan runs; all its randomness comes
/// from `rng`.
pub(crate) fn draw_mask(
    params: &Params,
    encryptor: &Encryptor,
    level: usize,
    scale: f64,
    std: f64,
    rng: &mut impl RngCore,
) -> Result<Ciphertext, PllError> {
    let flood = if std > 0.0 {
        Plaintext::rounded_gaussian(params, level, scale, std, rng)?
    } else {
        Plaintext::zero(params, level, scale)?
    };
    Ok(encryptor.encrypt_with(&flood, rng)?)
}

/// ct += mask (re-randomised and flooded).
pub(crate) fn apply_mask<B: Backend>(
    evaluator: &Evaluator<B>,
    ct: &mut Ciphertext<B::Poly>,
    mask: &Ciphertext,
) -> Result<(), PllError> {
    evaluator.add_assign(ct, &evaluator.upload(mask)?)?;
    Ok(())
}

/// rms (per coefficient) of the plan's input-independent error, with a margin: the plan
/// runs on encryptions of zero under a throwaway key, on `evaluator`, which this replaces
/// the keys of.
pub(crate) fn calibrate<B: Backend>(
    evaluator: &mut Evaluator<B>,
    encoder: &Encoder,
    plan: &LoraPlan<B>,
) -> Result<f64, PllError> {
    let params = evaluator.params().clone();
    let mut keygen = KeyGenerator::new(&params)?;
    evaluator.set_keys(&keygen.evaluation_keys(&plan.rotation_steps(), false)?)?;
    let mut encryptor = SymmetricEncryptor::new(&params, keygen.secret_key())?;
    let decryptor = Decryptor::new(&params, keygen.secret_key())?;
    let level = plan.input_level();
    let scale = params.default_scale();
    let mut worst: f64 = 0.0;
    for _ in 0..CALIBRATION_RUNS {
        let zero = vec![0.0; params.slots()];
        let inputs = (0..plan.input_layout().chunks)
            .map(|_| {
                let ct = encryptor.encrypt(&encoder.encode_at(&params, &zero, level, scale)?)?;
                Ok(evaluator.upload(&ct)?)
            })
            .collect::<Result<Vec<_>, PllError>>()?;
        for y in plan.apply(evaluator, &inputs)? {
            let pt = decryptor.decrypt(&evaluator.download(&y)?)?;
            let coeffs = pt.centered_coefficients(&params)?;
            let rms = (coeffs.iter().map(|c| c * c).sum::<f64>() / coeffs.len() as f64).sqrt();
            worst = worst.max(rms);
        }
    }
    Ok(worst * CALIBRATION_MARGIN)
}
