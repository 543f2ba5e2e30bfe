//! Key material. The secret key stays with the client; everything the server needs is in
//! [`EvaluationKeys`] (relinearisation and Galois keys), tagged with the parameter id.

use crate::ring::RnsPoly;
use std::collections::BTreeMap;
use zeroize::Zeroize;

/// Ternary secret s, kept in NTT form over Q_L ∪ P. Never serialized: it must not leave
/// the process that generated it.
#[derive(Clone)]
pub struct SecretKey {
    pub(crate) ntt: RnsPoly,
    pub(crate) params_id: u64,
}

/// Every copy (the key generator's, each encryptor's and decryptor's) wipes its residues
/// when dropped, so the key does not linger in freed memory.
impl Drop for SecretKey {
    fn drop(&mut self) {
        self.ntt.data_mut().zeroize();
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// (b, a) = (−a·s + e, a) over Q_L, NTT form.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub b: RnsPoly,
    pub a: RnsPoly,
    pub params_id: u64,
}

/// A hybrid key-switching key from s' to s: per digit j, (b_j, a_j) over Q_L ∪ P with
/// b_j = −a_j·s + e_j + P·T_j·s' (T_j ≡ 1 on digit j's primes, 0 on the others).
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchingKey {
    pub digits: Vec<[RnsPoly; 2]>,
}

/// What the server holds for one client.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EvaluationKeys {
    pub params_id: u64,
    /// Switches s² → s after a ciphertext product.
    pub relin: Option<SwitchingKey>,
    /// Switches σ_g(s) → s, by Galois element g.
    pub galois: BTreeMap<u64, SwitchingKey>,
}
