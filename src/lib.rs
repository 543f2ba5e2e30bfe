//! helora: an RNS-CKKS engine for private LoRA inference.
//!
//! Layers, each using only the ones below it: [`math`] (modular arithmetic, primes,
//! sampling) → [`ring`] (RNS polynomials, NTT, basis extension) → [`ckks`] (parameters,
//! encoding, keys, encryption, evaluation, serialization). Every evaluator operation
//! reaches the hardware through a [`backend::Backend`].

pub mod backend;
pub mod ckks;
pub mod linear;
pub mod math;
pub mod pll;
pub mod ring;
