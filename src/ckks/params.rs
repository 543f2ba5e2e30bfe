//! CKKS parameter sets: ring degree, modulus chain, special primes, key-switching digits
//! and the default scale, validated against the 128-bit security table.

use super::security::max_modulus_bits_128;
use super::CkksError;
use crate::math::{ntt_prime_chain, MAX_MODULUS_BITS};
use crate::ring::{Basis, RingContext, RnsPoly, MAX_LOG_N, MIN_LOG_N};
use std::sync::Arc;

/// What a user chooses; [`Params::new`] derives the primes and checks everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub log_n: u32,
    /// Bit sizes of q_0 … q_L (q_0 first: it holds the final result, so it is usually larger).
    pub q_bits: Vec<u32>,
    /// Bit sizes of the special primes p_0 … p_{k-1} (the key-switching modulus P).
    pub p_bits: Vec<u32>,
    /// Number of digits of hybrid key switching (dnum); digits hold ⌈(L+1)/dnum⌉ primes.
    pub digits: usize,
    /// log2 of the default encoding scale.
    pub log_scale: u32,
}

impl ParamSpec {
    /// N = 2^13, three ciphertext primes (60, 50, 50 bits: two rescales of 2^50), one
    /// 58-bit special prime, three digits: 218 bits, the whole of the 128-bit table's
    /// allowance. Every scale is 2^50 because the PLL's flood is sized from the circuit's
    /// error: 30 bits of statistical security over 4096 queries put σ_f at 2^22.8 × the
    /// circuit's error, whose size relative to the signal the scales fix. At 2^40 the flood
    /// was several times the result; at 2^50 it is about 0.5 % (docs/security.md §4.2).
    /// q_0's 10 bits above Δ keep |y| < 2^9 in the output.
    pub fn n13_depth2() -> Self {
        Self {
            log_n: 13,
            q_bits: vec![60, 50, 50],
            p_bits: vec![58],
            digits: 3,
            log_scale: 50,
        }
    }

    /// N = 2^16, 25 ciphertext primes (24 levels of 2^40), nine 50-bit special primes,
    /// three digits: 1460 bits of the 1772 allowed.
    pub fn n16_depth24() -> Self {
        let mut q_bits = vec![50];
        q_bits.extend(std::iter::repeat_n(40, 24));
        Self {
            log_n: 16,
            q_bits,
            p_bits: vec![50; 9],
            digits: 3,
            log_scale: 40,
        }
    }

    /// The preset for a ring degree N (2^13 or 2^16), for benchmarks and the CLI.
    pub fn preset(n: usize) -> Option<Self> {
        match n {
            8192 => Some(Self::n13_depth2()),
            65536 => Some(Self::n16_depth24()),
            _ => None,
        }
    }

    pub fn total_modulus_bits(&self) -> u32 {
        self.q_bits.iter().chain(&self.p_bits).sum()
    }
}

/// A validated parameter set with its primes and ring.
#[derive(Clone, Debug)]
pub struct Params {
    spec: ParamSpec,
    q: Vec<u64>,
    p: Vec<u64>,
    alpha: usize,
    ring: Arc<RingContext>,
    id: u64,
}

impl Params {
    pub fn new(spec: ParamSpec) -> Result<Self, CkksError> {
        let invalid = |why: String| Err(CkksError::InvalidParams(why));
        if !(MIN_LOG_N..=MAX_LOG_N).contains(&spec.log_n) {
            return invalid(format!(
                "log N = {} is outside {MIN_LOG_N} … {MAX_LOG_N}",
                spec.log_n
            ));
        }
        if spec.q_bits.is_empty() || spec.p_bits.is_empty() {
            return invalid(
                "at least one ciphertext prime and one special prime are required".into(),
            );
        }
        if let Some(&b) = spec
            .q_bits
            .iter()
            .chain(&spec.p_bits)
            .find(|&&b| !(20..=MAX_MODULUS_BITS).contains(&b))
        {
            return invalid(format!(
                "prime size {b} bits is outside 20 … {MAX_MODULUS_BITS}"
            ));
        }
        if spec.digits == 0 || spec.digits > spec.q_bits.len() {
            return invalid(format!(
                "digit count {} must be in 1 … {} (the number of ciphertext primes)",
                spec.digits,
                spec.q_bits.len()
            ));
        }
        let max_bits = *spec.q_bits.iter().chain(&spec.p_bits).max().unwrap_or(&0);
        // The key-switch inner product accumulates `digits` products below 2^(2·bits) in 128
        // bits, with one bit to spare (compared by division: a shift would drop high bits).
        if spec.digits as u128 > (u128::MAX >> 1) >> (2 * max_bits) {
            return invalid(format!(
                "{} digits of {max_bits}-bit primes overflow the key-switch accumulator",
                spec.digits
            ));
        }
        if !(10..=60).contains(&spec.log_scale) {
            return invalid(format!(
                "scale 2^{} does not fit the ciphertext primes",
                spec.log_scale
            ));
        }
        let alpha = spec.q_bits.len().div_ceil(spec.digits);
        let total = spec.total_modulus_bits();
        match max_modulus_bits_128(spec.log_n) {
            None => {
                return Err(CkksError::Insecure {
                    log_n: spec.log_n,
                    modulus_bits: total,
                    max_bits: 0,
                });
            }
            Some(max) if total > max => {
                return Err(CkksError::Insecure {
                    log_n: spec.log_n,
                    modulus_bits: total,
                    max_bits: max,
                });
            }
            Some(_) => {}
        }
        let n = 1usize << spec.log_n;
        let (q, p) = ntt_prime_chain(n, &spec.q_bits, &spec.p_bits)
            .map_err(|e| CkksError::InvalidParams(e.to_string()))?;
        let ring = Arc::new(RingContext::new(n, &q, &p)?);
        let id = fingerprint(&spec, &q, &p);
        Ok(Self {
            spec,
            q,
            p,
            alpha,
            ring,
            id,
        })
    }

    pub fn spec(&self) -> &ParamSpec {
        &self.spec
    }

    pub fn n(&self) -> usize {
        self.ring.n()
    }

    pub fn slots(&self) -> usize {
        self.ring.n() / 2
    }

    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }

    pub fn q_primes(&self) -> &[u64] {
        &self.q
    }

    pub fn p_primes(&self) -> &[u64] {
        &self.p
    }

    /// Primes per key-switching digit.
    pub fn alpha(&self) -> usize {
        self.alpha
    }

    pub fn default_scale(&self) -> f64 {
        2f64.powi(self.spec.log_scale as i32)
    }

    pub fn ring(&self) -> &Arc<RingContext> {
        &self.ring
    }

    /// A 64-bit fingerprint of the parameter set: messages carry it so that nothing is
    /// interpreted under the wrong parameters.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// An error unless `poly` is an NTT-form polynomial of this ring over Q_level, the shape
    /// of every plaintext and ciphertext half (`what` names it in the message).
    pub(crate) fn ensure_level_poly(
        &self,
        poly: &RnsPoly,
        level: usize,
        what: &str,
    ) -> Result<(), CkksError> {
        if level > self.max_level()
            || poly.basis() != Basis::level(level)
            || !poly.ntt_form
            || poly.n() != self.n()
        {
            return Err(CkksError::Malformed(format!(
                "{what} is not an NTT-form polynomial over the {} primes of level {level} of these parameters",
                level + 1
            )));
        }
        Ok(())
    }

    /// An error unless an object tagged `found` belongs to this parameter set.
    pub fn ensure_id(&self, found: u64) -> Result<(), CkksError> {
        if found != self.id {
            return Err(CkksError::ParamsMismatch {
                expected: self.id,
                found,
            });
        }
        Ok(())
    }
}

/// FNV-1a over the spec and the primes (stable across platforms and versions).
fn fingerprint(spec: &ParamSpec, q: &[u64], p: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(spec.log_n as u64);
    eat(spec.digits as u64);
    eat(spec.log_scale as u64);
    eat(q.len() as u64);
    q.iter().for_each(|&v| eat(v));
    eat(p.len() as u64);
    p.iter().for_each(|&v| eat(v));
    h
}
