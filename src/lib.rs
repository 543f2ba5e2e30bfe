//! helora: an RNS-CKKS engine for private LoRA inference.
//!
//! Layers, each using only the ones below it (docs/architecture.md, checked by
//! `tests/layers.rs`): [`math`] (modular arithmetic, primes, randomness) → [`ring`] (RNS
//! polynomials, NTT, basis extension, the CPU's vector kernels) → [`backend`] (the
//! hardware: CPU, CUDA) → [`ckks`] (parameters, encoding, keys, encryption, evaluation,
//! serialization) → [`linear`] (LoRA plans) → [`pll`] (the Private Linear Layer).
//! `linear` and `pll` use only `ckks`'s API (and `math::sampling` for randomness), never
//! `ring` or `backend` directly.

pub mod backend;
pub mod ckks;
pub mod linear;
pub mod math;
pub mod pll;
pub mod ring;
