//! Word-sized modular arithmetic, NTT-friendly primes and randomness.

mod aes_ctr;
mod modulus;
mod primes;
pub mod sampling;
mod ziggurat;

pub use aes_ctr::AesCtrRng;
pub use modulus::{Modulus, MAX_MODULUS_BITS};
pub use primes::{is_prime, ntt_prime_chain, ntt_primes, primitive_root_of_unity};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MathError {
    #[error("modulus {0} is out of range: it must be in [2, 2^62)")]
    ModulusOutOfRange(u64),
    #[error("not enough {bits}-bit primes congruent to 1 mod {n}·2 (wanted {count})")]
    NoPrimes { bits: u32, n: usize, count: usize },
    #[error("no primitive {order}-th root of unity modulo {q}")]
    NoRootOfUnity { q: u64, order: u64 },
}
