//! One protected application: the plan with perturbed B diagonals, then every output
//! re-randomised and flooded. With the protection off, exactly the plain plan.
//!
//! Everything the protection adds is independent of the input (E with the B diagonals it
//! perturbs, Enc_pk(0), the flood), so a second job on the worker pool prepares it while
//! the plan runs: the perturbed diagonals first (step 3 needs them), then the masks (needed
//! at the end). The diagonals come from their own seed and are made by whichever side needs
//! them first, so the plan never waits on a job that no thread has picked up. On a busy
//! server this hides the latency, not the work.

use super::flooding::{apply_mask, draw_mask};
use super::{Adapter, PllError, PllSettings};
use crate::backend::Backend;
use crate::ckks::{Ciphertext, Encryptor, Evaluator};
use crate::linear::{LoraGroup, OutputDiagonals};
use crate::math::sampling::{self, NoiseRng};
use rand::SeedableRng;
use rand_core::RngCore;
use std::sync::{Mutex, OnceLock};

/// Per adapter, its step-3 diagonals B + E (None without noise), until the plan takes them.
type Perturbed<B> = Vec<Mutex<Option<Result<OutputDiagonals<B>, PllError>>>>;
/// Enc_pk(0) + flood per adapter and output ciphertext.
type Masks = Vec<Vec<Ciphertext>>;

/// y_p = x·A_p·(B_p + E_p) for adapters sharing one input, protected per `settings`.
pub(crate) fn apply_protected<B: Backend>(
    evaluator: &Evaluator<B>,
    encryptor: &mut Encryptor,
    adapters: &[&Adapter<B>],
    inputs: &[Ciphertext<B::Poly>],
    settings: &PllSettings,
    rng: &mut impl RngCore,
) -> Result<Vec<Vec<Ciphertext<B::Poly>>>, PllError> {
    let group = LoraGroup::new(adapters.iter().map(|a| &a.plan).collect())?;
    if settings.is_off() {
        return Ok(group.apply(evaluator, inputs)?);
    }
    let scale = inputs
        .first()
        .ok_or(PllError::Malformed("no input ciphertext".into()))?
        .scale;
    let params = evaluator.params();
    // Seeded from the server's stream: E from a seed either side may expand, the masks
    // from the helper's own generator.
    let mut perturbation_seed = [0u8; 32];
    rng.fill_bytes(&mut perturbation_seed);
    let mut mask_rng: NoiseRng = sampling::fork(rng);
    let perturbed = OnceLock::<Perturbed<B>>::new();
    let perturb = || -> Perturbed<B> {
        let mut rng = NoiseRng::from_seed(perturbation_seed);
        adapters
            .iter()
            .map(|a| {
                let diagonals = a.perturbation.map(|p| {
                    let e = p.draw(params, &mut rng);
                    Ok(a.plan.output_diagonals_plus(evaluator, e)?)
                });
                Mutex::new(diagonals)
            })
            .collect()
    };
    let (outputs, masks) = rayon::join(
        || {
            group.apply_with::<PllError>(evaluator, inputs, &mut |p| {
                let slot = perturbed
                    .get_or_init(perturb)
                    .get(p)
                    .ok_or_else(protection_failed)?;
                let taken = slot.lock().map_err(|_| protection_failed())?.take();
                taken.transpose()
            })
        },
        || -> Result<Masks, PllError> {
            perturbed.get_or_init(perturb);
            adapters
                .iter()
                .map(|a| {
                    // Every output is re-randomised whenever the protection is on; the flood
                    // in the mask is zero without flooding (`flood_std` = 0).
                    let level = a.plan.output_level();
                    (0..a.plan.output_layout().chunks)
                        .map(|_| {
                            draw_mask(params, encryptor, level, scale, a.flood_std, &mut mask_rng)
                        })
                        .collect()
                })
                .collect()
        },
    );
    let mut outputs = outputs?;
    for (cts, masks) in outputs.iter_mut().zip(masks?.iter()) {
        for (ct, mask) in cts.iter_mut().zip(masks) {
            apply_mask(evaluator, ct, mask)?;
        }
    }
    Ok(outputs)
}

/// A perturbation slot that is missing or whose preparing thread panicked.
fn protection_failed() -> PllError {
    PllError::Malformed("the protection's perturbed diagonals are unavailable".into())
}
