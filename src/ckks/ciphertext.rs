//! Plaintexts and ciphertexts. Both live in the NTT domain over Q_level; the polynomial
//! type is the backend's (host `RnsPoly` by default).

use super::{CkksError, Params};
use crate::ring::{centered_coefficients_f64, RnsPoly};

/// An encoded message m with Δ·v ≈ m.
#[derive(Clone, Debug, PartialEq)]
pub struct Plaintext<P = RnsPoly> {
    pub poly: P,
    pub level: usize,
    pub scale: f64,
}

impl Plaintext {
    /// Its coefficients as centred integers (as f64), unscaled: a decryption's raw error
    /// where the message is zero.
    pub fn centered_coefficients(&self, params: &Params) -> Result<Vec<f64>, CkksError> {
        centered_coefficients_f64(params.ring(), &self.poly)
            .map_err(|e| CkksError::Malformed(format!("plaintext coefficients: {e}")))
    }
}

/// A plaintext kept over Q_l ∪ P as well as Q_l, for products inside a hoisted key switch.
#[derive(Clone, Debug, PartialEq)]
pub struct ExtendedPlaintext<P = RnsPoly> {
    pub extended: P,
    pub q_part: P,
    pub level: usize,
    pub scale: f64,
}

/// (c0, c1) with c0 + c1·s ≈ m.
#[derive(Clone, Debug, PartialEq)]
pub struct Ciphertext<P = RnsPoly> {
    pub c0: P,
    pub c1: P,
    pub level: usize,
    pub scale: f64,
}

/// A fresh symmetric encryption whose `c1` is regenerated from a 32-byte public seed:
/// half the bytes of a full ciphertext on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct SeededCiphertext {
    pub c0: RnsPoly,
    pub seed: [u8; 32],
    pub level: usize,
    pub scale: f64,
}
