//! RNS polynomials over Z[X]/(X^N + 1): NTT, pointwise arithmetic, automorphisms,
//! basis extension (ModUp/ModDown) and rescaling. CPU reference implementations; the
//! backends call into these or reproduce them bit-exactly. The hot loops run on the vector
//! kernels of [`simd`] (AVX-512 IFMA, AVX-512, AVX2) picked at run time, bit-identical to their portable scalar references.

pub mod arith;
pub mod automorphism;
mod basis_extension;
mod context;
mod crt;
mod ntt;
mod poly;
pub(crate) mod simd;

pub use basis_extension::{rescale, BaseConverter, BasisExtender};
pub use context::{RingContext, MAX_LOG_N, MIN_LOG_N};
pub use crt::{centered_coefficients_f64, CrtError, TwoPrimeCrt};
pub(crate) use ntt::bit_reverse;
pub use ntt::NttTable;
pub use poly::{Basis, RnsPoly};
pub use simd::SimdTier;

use crate::math::MathError;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RingError {
    #[error("ring degree {0} is not a power of two in 2^10 … 2^17")]
    Degree(usize),
    #[error("a ring needs at least one ciphertext prime")]
    NoPrimes,
    #[error("the same prime appears twice in the modulus chain")]
    DuplicatePrime,
    #[error("{prime} is not a prime congruent to 1 mod 2·{n}")]
    NotNttPrime { prime: u64, n: usize },
    #[error(transparent)]
    Math(#[from] MathError),
}
