//! One protected application: the plan with perturbed B diagonals, then every output
//! re-randomised and flooded. With the protection off, exactly the plain plan.
//!
//! Everything the protection adds is independent of the input (E, Enc_pk(0), the flood),
//! so a second job on the worker pool draws it while the plan runs: E first, then the
//! masks (needed at the end). E is drawn from its own seed by whichever side needs it
//! first, so the plan never waits on a job that no thread has picked up. On a busy server
//! this hides the latency, not the work.

use super::flooding::{apply_mask, draw_mask};
use super::{Adapter, PllError, PllSettings};
use crate::backend::Backend;
use crate::ckks::{Ciphertext, Encryptor, Evaluator};
use crate::linear::LoraGroup;
use crate::math::sampling::{self, NoiseRng};
use crate::ring::RnsPoly;
use rand::SeedableRng;
use rand_core::RngCore;
use std::sync::OnceLock;

/// E per adapter (None without noise), per output ciphertext and diagonal.
type Perturbations = Vec<Option<Vec<Vec<RnsPoly>>>>;
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
    let flooding = settings.flooding;
    // Seeded from the server's stream: E from a seed either side may expand, the masks
    // from the helper's own generator.
    let mut perturbation_seed = [0u8; 32];
    rng.fill_bytes(&mut perturbation_seed);
    let mut mask_rng: NoiseRng = sampling::fork(rng);
    let perturbations = OnceLock::<Perturbations>::new();
    let draw_perturbations = || {
        let mut rng = NoiseRng::from_seed(perturbation_seed);
        adapters
            .iter()
            .map(|a| a.perturbation.map(|p| p.draw(params, &mut rng)))
            .collect()
    };
    let (outputs, masks) = rayon::join(
        || {
            group.apply_with::<PllError>(evaluator, inputs, &mut |p| {
                let drawn = perturbations.get_or_init(draw_perturbations);
                drawn
                    .get(p)
                    .and_then(Option::as_ref)
                    .map(|e| adapters[p].plan.output_diagonals_plus(evaluator, e))
                    .transpose()
                    .map_err(PllError::from)
            })
        },
        || -> Result<Masks, PllError> {
            perturbations.get_or_init(draw_perturbations);
            adapters
                .iter()
                .map(|a| {
                    let count = if flooding {
                        a.plan.output_layout().chunks
                    } else {
                        0
                    };
                    let level = a.plan.output_level();
                    (0..count)
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
