//! One protected application: the plan with perturbed B diagonals, then every output
//! re-randomised and flooded. With the protection off, exactly the plain plan.
//!
//! Everything the protection adds is independent of the input (E, Enc_pk(0), the flood),
//! so a helper thread draws it while the plan runs: E first (step 3 waits for it), then
//! the masks (needed at the end). On a busy server this hides the latency, not the work.

use super::flooding::{apply_mask, draw_mask};
use super::{Adapter, PllError, PllSettings};
use crate::backend::Backend;
use crate::ckks::{Ciphertext, Encryptor, Evaluator};
use crate::linear::LoraGroup;
use crate::math::sampling;
use crate::ring::RnsPoly;
use rand_chacha::ChaCha12Rng;
use rand_core::RngCore;
use std::sync::mpsc;

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
    // The helper's own stream (ChaCha12, as rand's StdRng), seeded from the server's.
    let mut helper_rng: ChaCha12Rng = sampling::fork(rng);
    let (send_noise, noise) = mpsc::channel::<Perturbations>();
    std::thread::scope(|scope| {
        // E first (step 3 waits for it), then the masks (needed only at the end).
        let helper = scope.spawn(move || -> Result<Masks, PllError> {
            let perturbations = adapters
                .iter()
                .map(|a| a.perturbation.map(|p| p.draw(params, &mut helper_rng)))
                .collect();
            // The receiver is gone only if the plan already failed.
            let _ = send_noise.send(perturbations);
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
                            draw_mask(
                                params,
                                encryptor,
                                level,
                                scale,
                                a.flood_std,
                                &mut helper_rng,
                            )
                        })
                        .collect()
                })
                .collect()
        });
        let mut drawn: Option<Perturbations> = None;
        let outputs = group.apply_with::<PllError>(evaluator, inputs, &mut |p| {
            if drawn.is_none() {
                drawn = Some(noise.recv().map_err(|_| helper_failed())?);
            }
            let e = drawn
                .as_mut()
                .and_then(|d| d.get_mut(p))
                .and_then(Option::take);
            e.map(|e| adapters[p].plan.output_diagonals_plus(evaluator, e))
                .transpose()
                .map_err(PllError::from)
        });
        // Joined on every path, so that the helper never outlives an error.
        let masks = helper.join().map_err(|_| helper_failed()).and_then(|m| m);
        let mut outputs = outputs?;
        for (cts, masks) in outputs.iter_mut().zip(masks?.iter()) {
            for (ct, mask) in cts.iter_mut().zip(masks) {
                apply_mask(evaluator, ct, mask)?;
            }
        }
        Ok(outputs)
    })
}

fn helper_failed() -> PllError {
    PllError::Malformed("the protection thread failed".into())
}
