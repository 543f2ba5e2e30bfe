//! Plaintexts for the benchmarks. Timings do not depend on the values, so until the CKKS
//! encoder lands this is a uniformly random NTT-form polynomial over Q_level.
//! TODO(encoder): encode a random real vector with `helora::ckks::Encoder` instead.

use anyhow::Result;
use helora::ckks::{Params, Plaintext};
use helora::math::sampling;
use helora::ring::{Basis, RnsPoly};

/// A plaintext at `level` with the default scale.
pub fn random(params: &Params, level: usize) -> Result<Plaintext> {
    let ctx = params.ring();
    let basis = Basis::level(level);
    let mut rng = sampling::os_rng()?;
    let mut poly = RnsPoly::zero(ctx.n(), basis, true);
    for (i, limb) in poly.limbs_mut().enumerate() {
        let q = ctx.modulus(basis, i).value();
        limb.iter_mut()
            .for_each(|x| *x = sampling::uniform_below(&mut rng, q));
    }
    Ok(Plaintext {
        poly,
        level,
        scale: params.default_scale(),
    })
}
