//! One protected application: the plan with perturbed B diagonals, then every output
//! re-randomised and flooded. With the protection off, exactly the plain plan.
//!
//! Everything the protection adds is independent of the input (E with the B diagonals it
//! perturbs, Enc_pk(flood)), so it is prepared beside the plan, in two joins on the worker
//! pool:
//!
//! ```text
//! (step 1 of the plan ‖ B + E for every member)  then  (steps 2–3 ‖ the masks)  then  + mask
//! ```
//!
//! A join runs its second half on another core when one is idle and after the first half
//! otherwise, so on a busy server this hides the latency, not the work.

use super::flooding::{apply_mask, draw_mask};
use super::{Adapter, PllError, PllSettings};
use crate::ckks::{Backend, Ciphertext, Encryptor, Evaluator};
use crate::linear::{LoraGroup, OutputDiagonals};
use crate::math::sampling::{self, NoiseRng};
use rayon::prelude::*;

/// y_p = x·A_p·(B_p + E_p) for adapters sharing one input, protected per `settings`. All
/// the protection's randomness comes from `rng`.
pub(crate) fn apply_protected<B: Backend>(
    evaluator: &Evaluator<B>,
    encryptor: &Encryptor,
    adapters: &[&Adapter<B>],
    inputs: &[Ciphertext<B::Poly>],
    settings: &PllSettings,
    rng: &mut NoiseRng,
) -> Result<Vec<Vec<Ciphertext<B::Poly>>>, PllError> {
    let group = LoraGroup::new(adapters.iter().map(|a| &a.plan).collect())?;
    if settings.is_off() {
        return Ok(group.apply(evaluator, inputs)?);
    }
    let scale = inputs
        .first()
        .ok_or(PllError::Malformed("no input ciphertext".into()))?
        .scale;
    let mut mask_rng: NoiseRng = sampling::fork(rng);
    let (z, perturbed) = rayon::join(
        || group.step1(evaluator, inputs),
        || perturbed_diagonals(evaluator, adapters, rng),
    );
    let perturbed = perturbed?;
    let diagonals: Vec<&OutputDiagonals<B>> = adapters
        .iter()
        .zip(&perturbed)
        .map(|(a, own)| own.as_ref().unwrap_or(a.plan.output_diagonals()))
        .collect();
    let (outputs, masks) = rayon::join(
        || group.finish(evaluator, z?, &diagonals),
        || masks(evaluator, encryptor, adapters, scale, &mut mask_rng),
    );
    let mut outputs = outputs?;
    for (cts, masks) in outputs.iter_mut().zip(masks?.iter()) {
        for (ct, mask) in cts.iter_mut().zip(masks) {
            apply_mask(evaluator, ct, mask)?;
        }
    }
    Ok(outputs)
}

/// Per adapter, its B diagonals plus a fresh E (None where it adds no noise).
fn perturbed_diagonals<B: Backend>(
    evaluator: &Evaluator<B>,
    adapters: &[&Adapter<B>],
    rng: &mut NoiseRng,
) -> Result<Vec<Option<OutputDiagonals<B>>>, PllError> {
    adapters
        .iter()
        .map(|a| {
            a.perturbation
                .map(|p| p.draw(evaluator, &a.plan, rng))
                .transpose()
        })
        .collect()
}

/// Per adapter and output ciphertext, Enc_pk(flood): every output is re-randomised whenever
/// the protection is on; the flood is zero without flooding (`flood_std` = 0).
fn masks<B: Backend>(
    evaluator: &Evaluator<B>,
    encryptor: &Encryptor,
    adapters: &[&Adapter<B>],
    scale: f64,
    rng: &mut NoiseRng,
) -> Result<Vec<Vec<Ciphertext>>, PllError> {
    let params = evaluator.params();
    // One generator per mask, forked in order, so the masks are drawn in parallel.
    let jobs: Vec<(&Adapter<B>, NoiseRng)> = adapters
        .iter()
        .flat_map(|&a| (0..a.plan.output_layout().chunks).map(move |_| a))
        .map(|a| (a, sampling::fork(rng)))
        .collect();
    let mut masks = jobs
        .into_par_iter()
        .map(|(a, mut rng)| {
            let level = a.plan.output_level();
            draw_mask(params, encryptor, level, scale, a.flood_std, &mut rng)
        })
        .collect::<Result<Vec<_>, PllError>>()?
        .into_iter();
    Ok(adapters
        .iter()
        .map(|a| masks.by_ref().take(a.plan.output_layout().chunks).collect())
        .collect())
}
