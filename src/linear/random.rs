//! Random factors shaped like a freshly trained LoRA adapter, for tests, benchmarks and
//! the extraction harness: A Kaiming-uniform as PEFT initialises it (bound 1/√d_in),
//! B ~ N(0, 0.02²).

use super::{LinearError, Matrix};
use crate::math::sampling::{standard_normal, uniform_unit};
use rand_core::RngCore;

/// (A: d_in × r, B: r × d_out).
pub fn random_lora_factors<R: RngCore>(
    d_in: usize,
    d_out: usize,
    r: usize,
    rng: &mut R,
) -> Result<(Matrix, Matrix), LinearError> {
    let bound = 1.0 / (d_in as f64).sqrt();
    let a = (0..d_in * r)
        .map(|_| (2.0 * uniform_unit(rng) - 1.0) * bound)
        .collect();
    let b = (0..r * d_out)
        .map(|_| 0.02 * standard_normal(rng))
        .collect();
    Ok((Matrix::new(d_in, r, a)?, Matrix::new(r, d_out, b)?))
}
