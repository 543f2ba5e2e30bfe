//! The registration challenge: the server, not the client, chooses the `a` half of every
//! public and switching key. A client that crafts `a` (a = 0 switches re-randomisation
//! off; a chosen `a` shapes key-switching errors) could read the server's secrets from
//! what it decrypts, and nothing the server sees in a key reveals that `a` was crafted. So
//! each key's `a` is expanded from a seed the server hands out, per key part, and the key
//! set names that seed; the server refuses keys made from any other. The seed need not be
//! secret: what matters is that the client cannot pick it.

use super::{EvaluationKeys, Params, PublicKey, SwitchingKey};
use crate::math::sampling::{self, EntropyError};
use crate::ring::{Basis, RingContext, RnsPoly};
use rand_core::RngCore;

/// Which key part an `a` belongs to: every part has its own stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyPart {
    Public,
    Relinearization { digit: usize },
    Galois { element: u64, digit: usize },
}

impl KeyPart {
    /// A distinct 64-bit label per part (Galois elements are below 2^17, digits below 2^8).
    fn label(self) -> u64 {
        match self {
            KeyPart::Public => 1,
            KeyPart::Relinearization { digit } => (2 << 56) | digit as u64,
            KeyPart::Galois { element, digit } => (3 << 56) | (element << 8) | digit as u64,
        }
    }
}

/// 16 bytes, the AES-128 key of every `a` stream of one client's keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct KeySeed(pub [u8; 16]);

impl KeySeed {
    /// A fresh seed from the operating system.
    pub fn random() -> Result<Self, EntropyError> {
        let seed = sampling::os_seed()?;
        Ok(Self(seed[..16].try_into().expect("16 of 32 bytes")))
    }

    /// A seed from a generator (a key generator draws a placeholder from its own stream
    /// until it is given the server's).
    pub(crate) fn draw(rng: &mut impl RngCore) -> Self {
        let mut seed = [0u8; 16];
        rng.fill_bytes(&mut seed);
        Self(seed)
    }

    /// The `a` of `part`, uniform over `basis` in NTT form: the AES-CTR stream of seeded
    /// ciphertexts (docs/format.md), keyed with this seed, its counter starting at
    /// label·2^64 so that no two parts share a block.
    pub(crate) fn expand(&self, ctx: &RingContext, basis: Basis, part: KeyPart) -> RnsPoly {
        let mut rng = sampling::expansion_rng(stream_seed(self.0, part.label()));
        super::keygen::uniform_ntt(ctx, basis, &mut rng)
    }

    /// Whether `keys` and `public_key` were made from this seed: both name it and every
    /// `a` is its expansion (a key built in memory, not decoded, could name the seed and
    /// carry another `a`).
    pub fn made(&self, params: &Params, keys: &EvaluationKeys, public_key: &PublicKey) -> bool {
        let ctx = params.ring();
        let full = ctx.full_basis();
        let key_made = |key: &SwitchingKey, part: &dyn Fn(usize) -> KeyPart| {
            key.digits
                .iter()
                .enumerate()
                .all(|(j, [_, a])| *a == self.expand(ctx, full, part(j)))
        };
        keys.a_seed == *self
            && public_key.a_seed == *self
            && public_key.a == self.expand(ctx, Basis::level(params.max_level()), KeyPart::Public)
            && keys
                .relin
                .as_ref()
                .is_none_or(|k| key_made(k, &|digit| KeyPart::Relinearization { digit }))
            && keys
                .galois
                .iter()
                .all(|(&element, k)| key_made(k, &|digit| KeyPart::Galois { element, digit }))
    }
}

/// The 32-byte seed of the AES-CTR stream: the key, then the counter block label·2^64.
fn stream_seed(key: [u8; 16], label: u64) -> [u8; 32] {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(&key);
    seed[16..].copy_from_slice(&((label as u128) << 64).to_le_bytes());
    seed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_have_distinct_labels() {
        let parts = [
            KeyPart::Public,
            KeyPart::Relinearization { digit: 0 },
            KeyPart::Relinearization { digit: 1 },
            KeyPart::Galois {
                element: 5,
                digit: 0,
            },
            KeyPart::Galois {
                element: 5,
                digit: 1,
            },
            KeyPart::Galois {
                element: (1 << 17) - 1,
                digit: 255,
            },
        ];
        for (i, p) in parts.iter().enumerate() {
            for q in &parts[i + 1..] {
                assert_ne!(p.label(), q.label(), "{p:?} and {q:?}");
            }
        }
    }
}
