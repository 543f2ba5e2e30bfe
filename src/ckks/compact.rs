//! The smallest reply: a level-0 ciphertext modulus-switched from q_0 to 2^b, kept in
//! coefficient form. c' = ⌊c·2^b/q_0⌉ divides the message and its scale by q_0/2^b and
//! adds a rounding error r_0 + r_1·s (|r_i| ≤ 1/2). The r_1·s term dominates (coefficient
//! std √(N·2/3/12) ≈ 21 at N = 2^13), so c0 is stored with fewer bits than c1: dropping
//! k low bits of c0 adds only ≈ 2^k/√12 (in 2^b units), not multiplied by s.

use super::ciphertext::{Ciphertext, Plaintext};
use super::encryptor::Decryptor;
use super::evaluator::Evaluator;
use super::CkksError;
use crate::backend::Backend;
use crate::ring::{arith, Basis, RnsPoly, TwoPrimeCrt};

/// A reply switched to 2^c1_bits; c0 is rounded further to `c0_bits` (≤ c1_bits), so
/// c0 ∈ [0, 2^c0_bits) stands for c0·2^(c1_bits − c0_bits) and c1 ∈ [0, 2^c1_bits).
#[derive(Clone, Debug, PartialEq)]
pub struct CompactCiphertext {
    pub c0_bits: u32,
    pub c1_bits: u32,
    pub c0: Vec<u64>,
    pub c1: Vec<u64>,
    pub scale: f64,
}

impl CompactCiphertext {
    /// Whether the widths are usable with a first prime of `q0_bits` bits.
    pub fn widths_valid(c0_bits: u32, c1_bits: u32, q0_bits: u32) -> bool {
        MIN_COMPACT_BITS <= c0_bits && c0_bits <= c1_bits && c1_bits < q0_bits
    }
}

/// Smallest width accepted: below it the rounding error swamps any message.
pub const MIN_COMPACT_BITS: u32 = 12;

impl<B: Backend> Evaluator<B> {
    /// Drops `ct` to level 0 and switches c1 to 2^c1_bits and c0 to 2^c0_bits
    /// (MIN_COMPACT_BITS ≤ c0_bits ≤ c1_bits < width of q_0).
    pub fn compact(
        &self,
        ct: &Ciphertext<B::Poly>,
        c0_bits: u32,
        c1_bits: u32,
    ) -> Result<CompactCiphertext, CkksError> {
        let ring = self.params().ring();
        let q0 = ring.q()[0];
        if !CompactCiphertext::widths_valid(c0_bits, c1_bits, q0.bits()) {
            return Err(CkksError::InvalidParams(format!(
                "compact widths c0 {c0_bits}, c1 {c1_bits} must satisfy {MIN_COMPACT_BITS} ≤ c0 ≤ c1 < {}",
                q0.bits()
            )));
        }
        let low = self.drop_to_level(ct, 0)?;
        let switch = |p: &B::Poly, bits: u32| -> Result<Vec<u64>, CkksError> {
            let mut host = self.backend().download(p)?;
            arith::ntt_inverse(ring, &mut host);
            let mask = (1u64 << bits) - 1;
            let (q, half) = (q0.value() as u128, q0.value() as u128 / 2);
            // ⌊c·2^bits/q⌉, wrapping 2^bits to 0.
            Ok(host
                .limb(0)
                .iter()
                .map(|&c| ((((c as u128) << bits) + half) / q) as u64 & mask)
                .collect())
        };
        Ok(CompactCiphertext {
            c0_bits,
            c1_bits,
            c0: switch(&low.c0, c0_bits)?,
            c1: switch(&low.c1, c1_bits)?,
            scale: low.scale * 2f64.powi(c1_bits as i32) / q0.value() as f64,
        })
    }
}

impl Decryptor {
    /// Decrypts a compact reply into a level-0 plaintext (NTT form) ready for decoding.
    /// c0 + c1·s is computed exactly over q_0·p_0 and then reduced mod 2^bits.
    pub fn decrypt_compact(&self, ct: &CompactCiphertext) -> Result<Plaintext, CkksError> {
        let params = self.params();
        let ring = params.ring();
        let n = params.n();
        let basis = Basis::new(1, 1);
        let (q0, p0) = (ring.q()[0], ring.p()[0]);
        if ct.c0.len() != n || ct.c1.len() != n {
            return Err(CkksError::Malformed(format!(
                "compact reply has {} and {} coefficients, expected {n}",
                ct.c0.len(),
                ct.c1.len()
            )));
        }
        // |c0 + c1·s| < 2^c1_bits·(N + 1) must stay below q_0·p_0 / 2 to be recovered exactly.
        let bits = ct.c1_bits;
        if !CompactCiphertext::widths_valid(ct.c0_bits, bits, q0.bits())
            || bits + params.spec().log_n + 2 >= q0.bits() + p0.bits()
        {
            return Err(CkksError::Malformed(format!(
                "compact widths {}/{bits} are not usable with these parameters",
                ct.c0_bits
            )));
        }
        if !(ct.scale.is_finite() && ct.scale > 0.0) {
            return Err(CkksError::Malformed(format!(
                "compact reply scale {} is not positive",
                ct.scale
            )));
        }
        let limit = 1u64 << bits;
        if ct.c0.iter().any(|&c| c >> ct.c0_bits != 0) || ct.c1.iter().any(|&c| c >= limit) {
            return Err(CkksError::Malformed(
                "a compact coefficient exceeds its width".into(),
            ));
        }
        let lift = |values: &[u64], shift: u32| {
            let data = [q0, p0]
                .iter()
                .flat_map(|m| values.iter().map(move |&v| m.reduce(v << shift)))
                .collect();
            RnsPoly::from_data(n, basis, false, data)
        };
        let (Some(mut v), Some(c0)) = (lift(&ct.c1, 0), lift(&ct.c0, bits - ct.c0_bits)) else {
            return Err(CkksError::Malformed(
                "compact reply has the wrong length".into(),
            ));
        };
        arith::ntt_forward(ring, &mut v);
        arith::mul_assign(ring, &mut v, &self.secret_key().ntt.restricted(basis));
        arith::ntt_inverse(ring, &mut v);
        arith::add_assign(ring, &mut v, &c0);
        // Two-prime CRT to the centered integer, then its residue mod 2^c1_bits, centered.
        let crt = TwoPrimeCrt::new(q0, p0).ok_or(CkksError::InvalidParams(
            "q_0 and p_0 are not coprime".into(),
        ))?;
        let mask = limit - 1;
        let mut m = RnsPoly::zero(n, Basis::level(0), false);
        for (out, (&a, &b)) in m
            .limb_mut(0)
            .iter_mut()
            .zip(v.limb(0).iter().zip(v.limb(1)))
        {
            let x = crt.centered(a, b);
            let r = (x as u64) & mask;
            let centered = if r >= limit / 2 {
                r as i64 - limit as i64
            } else {
                r as i64
            };
            *out = q0.from_i64(centered);
        }
        arith::ntt_forward(ring, &mut m);
        Ok(Plaintext {
            poly: m,
            level: 0,
            scale: ct.scale,
        })
    }
}
