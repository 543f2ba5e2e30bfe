//! Key material. The secret key stays with the client; everything the server needs is in
//! [`EvaluationKeys`] (relinearisation and Galois keys), tagged with the parameter id.

use super::{CkksError, KeySeed, Params};
use crate::ring::{Basis, RnsPoly};
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

/// (b, a) = (−a·s + e, a) over Q_L, NTT form; `a` is expanded from `a_seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicKey {
    pub b: RnsPoly,
    pub a: RnsPoly,
    pub params_id: u64,
    /// The seed every `a` of this client's keys comes from (the server's challenge).
    pub a_seed: KeySeed,
}

impl PublicKey {
    /// Whether both halves are over Q_L in NTT form with reduced residues, as an encryptor
    /// needs them (a client's key is checked before the server encrypts with it).
    pub fn check_well_formed(&self, params: &Params) -> Result<(), CkksError> {
        params.ensure_id(self.params_id)?;
        let basis = Basis::level(params.max_level());
        let ctx = params.ring();
        let well_formed = |p: &RnsPoly| {
            p.basis() == basis
                && p.ntt_form
                && p.n() == params.n()
                && p.limbs()
                    .enumerate()
                    .all(|(i, limb)| limb.iter().all(|&x| x < ctx.modulus(basis, i).value()))
        };
        if !(well_formed(&self.b) && well_formed(&self.a)) {
            return Err(CkksError::Malformed(
                "public key is not over Q_L in NTT form with reduced residues".into(),
            ));
        }
        Ok(())
    }
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
    /// The seed every switching key's `a` comes from (the server's challenge).
    pub a_seed: KeySeed,
    /// Switches s² → s after a ciphertext product.
    pub relin: Option<SwitchingKey>,
    /// Switches σ_g(s) → s, by Galois element g.
    pub galois: BTreeMap<u64, SwitchingKey>,
}
