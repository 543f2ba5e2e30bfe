//! Plaintexts for the benchmarks: random real slot values in [-1, 1), encoded with the CKKS
//! encoder at the default scale. Timings do not depend on the values, but real encodings
//! keep the operands in the range the operations are built for.

use anyhow::{Context, Result};
use helora::ckks::{Encoder, Params, Plaintext};
use helora::math::sampling;

/// `count` values uniform in [-1, 1).
pub fn random_values(count: usize) -> Result<Vec<f64>> {
    let mut rng = sampling::os_rng()?;
    let unit = (1u64 << 53) as f64;
    Ok((0..count)
        .map(|_| 2.0 * sampling::uniform_below(&mut rng, 1 << 53) as f64 / unit - 1.0)
        .collect())
}

/// `values` encoded at `level` with the default scale.
pub fn encode(
    encoder: &Encoder,
    params: &Params,
    values: &[f64],
    level: usize,
) -> Result<Plaintext> {
    let scale = params.default_scale();
    encoder
        .encode_at(params, values, level, scale)
        .context("encoding the benchmark values")
}

/// A plaintext of random values filling every slot, at `level`.
pub fn random(encoder: &Encoder, params: &Params, level: usize) -> Result<Plaintext> {
    encode(encoder, params, &random_values(params.slots())?, level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_in_range() {
        let v = random_values(1000).unwrap();
        assert_eq!(v.len(), 1000);
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        assert!(v.iter().any(|&x| x < -0.5) && v.iter().any(|&x| x > 0.5));
    }
}
