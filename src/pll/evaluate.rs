//! One protected application: the plan with perturbed B diagonals, then every output
//! re-randomised and flooded. With the protection off, exactly the plain plan.

use super::flooding::sanitize;
use super::noise::perturbed_diagonals;
use super::{Adapter, PllError, PllSettings};
use crate::backend::Backend;
use crate::ckks::{Ciphertext, Encryptor, Evaluator};
use crate::linear::{LoraGroup, OutputDiagonals};
use rand_core::RngCore;

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
    let step2 = adapters
        .iter()
        .map(|a| {
            (a.noise_std > 0.0)
                .then(|| perturbed_diagonals(&a.plan, a.noise_std, evaluator, rng))
                .transpose()
        })
        .collect::<Result<Vec<Option<OutputDiagonals<B>>>, _>>()?;
    let refs: Vec<Option<&OutputDiagonals<B>>> = step2.iter().map(Option::as_ref).collect();
    let mut outputs = group.apply_with(evaluator, inputs, &refs)?;
    if settings.flooding {
        for (adapter, cts) in adapters.iter().zip(&mut outputs) {
            for ct in cts {
                sanitize(evaluator, encryptor, ct, adapter.flood_std, rng)?;
            }
        }
    }
    Ok(outputs)
}
