//! RNS-CKKS: parameters, encoding, keys, encryption, evaluation and serialization.

mod ciphertext;
mod compact;
mod complex;
mod encoder;
mod encryptor;
mod evaluator;
mod galois;
mod gaussian;
mod key_seed;
mod keygen;
mod keys;
mod params;
mod security;
mod serialization;

/// The hardware an [`Evaluator`] runs on: layers above name it only as a type parameter.
pub use crate::backend::{keep_workers_awake, Backend, CpuBackend};
pub use ciphertext::{Ciphertext, ExtendedPlaintext, Plaintext, SeededCiphertext};
pub use compact::{CompactCiphertext, MIN_COMPACT_BITS};
pub use complex::Complex;
pub use encoder::{EncodeError, Encoder};
pub use encryptor::{expand_seeded, Decryptor, Encryptor, SymmetricEncryptor};
pub use evaluator::{Decomposed, Evaluator, Terms};
pub use galois::{conjugation_element, galois_elements, rotation_element};
pub use key_seed::KeySeed;
pub use keygen::KeyGenerator;
pub use keys::{EvaluationKeys, PublicKey, SecretKey, SwitchingKey};
pub use params::{ParamSpec, Params};
pub use security::max_modulus_bits_128;
pub use serialization::{Serializable, FORMAT_VERSION, MAGIC};

use crate::backend::BackendError;
use crate::math::sampling::EntropyError;
use crate::ring::RingError;

#[derive(Debug, thiserror::Error)]
pub enum CkksError {
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    #[error("insecure parameters: N = 2^{log_n} with a {modulus_bits}-bit modulus Q·P exceeds the 128-bit security bound of {max_bits} bits (HE standard, ternary secret){}", if *max_bits == 0 { " — no table entry for this degree" } else { "" })]
    Insecure {
        log_n: u32,
        modulus_bits: u32,
        max_bits: u32,
    },
    #[error("object was made for parameter set {found:#018x}, expected {expected:#018x}")]
    ParamsMismatch { expected: u64, found: u64 },
    #[error("scales differ: {left} vs {right}")]
    ScaleMismatch { left: f64, right: f64 },
    #[error("operand is at level {found}, level {needed} is needed")]
    LevelMismatch { needed: usize, found: usize },
    #[error("cannot {operation} at level {level}")]
    LevelTooLow {
        operation: &'static str,
        level: usize,
    },
    #[error("no relinearisation key loaded")]
    MissingRelinKey,
    #[error("no Galois key for element {galois}{}", step.map(|s| format!(" (rotation by {s})")).unwrap_or_default())]
    MissingGaloisKey { galois: u64, step: Option<i64> },
    #[error("{0} is not a Galois element of this ring")]
    InvalidGaloisElement(u64),
    #[error("malformed input: {0}")]
    Malformed(String),
    #[error("serialization: {0}")]
    Serialization(String),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Ring(#[from] RingError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
}
