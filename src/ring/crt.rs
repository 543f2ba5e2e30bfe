//! Exact CRT reconstruction of RNS coefficients: each coefficient's centered
//! representative modulo Q = ∏ q_i, rounded to `f64`.
//!
//! One limb is a word-sized `center`. Several limbs go through Garner's mixed-radix
//! conversion (word-sized modular arithmetic only), then Horner's rule rebuilds the exact
//! integer in little-endian `u64` words, which is centered and rounded to nearest.

use super::{Basis, RingContext, RnsPoly};
use crate::math::Modulus;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CrtError {
    #[error("polynomial has degree {poly} but the ring has degree {ring}")]
    DegreeMismatch { poly: usize, ring: usize },
    #[error("basis {0:?} is empty or not part of the ring context")]
    BasisNotInContext(Basis),
}

/// Each coefficient of `poly` as its centered representative in (−Q/2, Q/2], Q the product
/// of the poly's basis primes, correctly rounded to the nearest `f64` (ties to even;
/// magnitudes beyond `f64::MAX` round to ±∞).
///
/// Works in either domain: a poly in NTT form is copied and brought back to coefficient
/// form with the context's tables first; `poly` itself is never modified.
pub fn centered_coefficients_f64(ctx: &RingContext, poly: &RnsPoly) -> Result<Vec<f64>, CrtError> {
    let basis = poly.basis();
    if poly.n() != ctx.n() {
        return Err(CrtError::DegreeMismatch {
            poly: poly.n(),
            ring: ctx.n(),
        });
    }
    if basis.is_empty() || basis.q > ctx.q().len() || basis.p > ctx.p().len() {
        return Err(CrtError::BasisNotInContext(basis));
    }
    let coeff_form;
    let poly = if poly.ntt_form {
        let mut copy = poly.clone();
        for (limb, data) in copy.limbs_mut().enumerate() {
            ctx.ntt_table(basis, limb).inverse(data);
        }
        copy.ntt_form = false;
        coeff_form = copy;
        &coeff_form
    } else {
        poly
    };

    let moduli: Vec<Modulus> = ctx.moduli(basis).copied().collect();
    if let [m] = moduli[..] {
        // Fast path: a single word-sized prime.
        return Ok(poly.limb(0).iter().map(|&r| m.center(r) as f64).collect());
    }
    if let [m0, m1] = moduli[..] {
        // Fast path: two primes (the client's compact replies), x below 2^124 in a u128.
        return Ok(centered_two_primes(m0, m1, poly.limb(0), poly.limb(1)));
    }
    let garner = Garner::new(moduli);
    let mut scratch = Scratch::new(garner.moduli.len());
    let mut residues = vec![0u64; garner.moduli.len()];
    Ok((0..poly.n())
        .map(|i| {
            for (limb, r) in residues.iter_mut().enumerate() {
                *r = poly.limb(limb)[i];
            }
            garner.centered_f64(&residues, &mut scratch)
        })
        .collect())
}

/// Garner's CRT for two coprime word-sized moduli, exact in 128 bits:
/// x = r0 + q0·((r1 − r0)·q0⁻¹ mod q1), centered into (−Q/2, Q/2].
#[derive(Clone, Copy, Debug)]
pub struct TwoPrimeCrt {
    m0: Modulus,
    m1: Modulus,
    inv: u64,
    inv_shoup: u64,
    product: u128,
}

impl TwoPrimeCrt {
    /// None when the moduli are not coprime.
    pub fn new(m0: Modulus, m1: Modulus) -> Option<Self> {
        let inv = m1.inv(m1.reduce(m0.value()))?;
        Some(Self {
            m0,
            m1,
            inv,
            inv_shoup: m1.shoup(inv),
            product: m0.value() as u128 * m1.value() as u128,
        })
    }

    /// The centered integer with residues `r0` mod q0 and `r1` mod q1.
    #[inline]
    pub fn centered(&self, r0: u64, r1: u64) -> i128 {
        let m1 = self.m1;
        let v1 = m1.mul_shoup(m1.sub(r1, m1.reduce(r0)), self.inv, self.inv_shoup);
        let x = r0 as u128 + self.m0.value() as u128 * v1 as u128;
        if x > self.product / 2 {
            x as i128 - self.product as i128
        } else {
            x as i128
        }
    }
}

/// Centered values from two primes' residues, as f64 (rounded to nearest, like Garner's).
fn centered_two_primes(m0: Modulus, m1: Modulus, r0: &[u64], r1: &[u64]) -> Vec<f64> {
    // Distinct primes are coprime.
    let crt = TwoPrimeCrt::new(m0, m1).expect("RNS primes are pairwise coprime");
    r0.iter()
        .zip(r1)
        .map(|(&a, &b)| crt.centered(a, b) as f64)
        .collect()
}

/// Per-basis constants of Garner's algorithm. With P_j = q_0 ··· q_{j−1}, an integer
/// x ∈ [0, Q) is x = Σ v_j·P_j with mixed-radix digits 0 ≤ v_j < q_j, and
/// v_i = (x − Σ_{j<i} v_j·P_j)·P_i^{−1} mod q_i.
struct Garner {
    moduli: Vec<Modulus>,
    /// Row i: P_j mod q_i for j < i.
    prefix_mod: Vec<Vec<u64>>,
    /// P_i^{−1} mod q_i with its Shoup constant.
    prefix_inv: Vec<(u64, u64)>,
    /// Q and (Q − 1)/2 as little-endian words (Q is odd: a product of odd primes).
    q_words: Vec<u64>,
    half_q_words: Vec<u64>,
}

/// Buffers reused across coefficients.
struct Scratch {
    digits: Vec<u64>,
    value: Vec<u64>,
    magnitude: Vec<u64>,
}

impl Scratch {
    fn new(limbs: usize) -> Self {
        Self {
            digits: vec![0; limbs],
            value: Vec::with_capacity(limbs + 1),
            magnitude: vec![0; limbs + 1],
        }
    }
}

impl Garner {
    fn new(moduli: Vec<Modulus>) -> Self {
        let mut prefix_mod = Vec::with_capacity(moduli.len());
        let mut prefix_inv = Vec::with_capacity(moduli.len());
        for (i, m) in moduli.iter().enumerate() {
            let mut row = Vec::with_capacity(i);
            let mut p = 1 % m.value();
            for q_j in &moduli[..i] {
                row.push(p);
                p = m.mul(p, m.reduce(q_j.value()));
            }
            // Distinct primes are coprime, so the inverse exists.
            let inv = m.inv(p).expect("RNS primes are pairwise coprime");
            prefix_mod.push(row);
            prefix_inv.push((inv, m.shoup(inv)));
        }
        let mut q_words = vec![1u64];
        for m in &moduli {
            mul_add_small(&mut q_words, m.value(), 0);
        }
        let half_q_words = shr1(&q_words);
        Self {
            moduli,
            prefix_mod,
            prefix_inv,
            q_words,
            half_q_words,
        }
    }

    /// Centered `f64` value of the integer with these residues (one per modulus).
    fn centered_f64(&self, residues: &[u64], s: &mut Scratch) -> f64 {
        // Mixed-radix digits.
        for (i, m) in self.moduli.iter().enumerate() {
            // Products are below 2^124, so 15 of them plus a residue fit a u128: reduce once
            // per chunk instead of once per term.
            let mut acc = 0u64;
            for (vs, ps) in s.digits[..i].chunks(15).zip(self.prefix_mod[i].chunks(15)) {
                let sum = vs
                    .iter()
                    .zip(ps)
                    .fold(acc as u128, |sum, (&v, &p)| sum + v as u128 * p as u128);
                acc = m.reduce_u128(sum);
            }
            let (inv, inv_s) = self.prefix_inv[i];
            s.digits[i] = m.mul_shoup(m.sub(residues[i], acc), inv, inv_s);
        }
        // x = v_0 + q_0·(v_1 + q_1·(v_2 + …)), exactly.
        let k = self.moduli.len();
        s.value.clear();
        s.value.push(s.digits[k - 1]);
        for i in (0..k - 1).rev() {
            mul_add_small(&mut s.value, self.moduli[i].value(), s.digits[i]);
        }
        if cmp_words(&s.value, &self.half_q_words) == std::cmp::Ordering::Greater {
            // x − Q = −(Q − x).
            sub_words(&self.q_words, &s.value, &mut s.magnitude);
            -words_to_f64(&s.magnitude)
        } else {
            words_to_f64(&s.value)
        }
    }
}

/// a ← a·b + c, growing `a` by a word when the product carries out.
fn mul_add_small(a: &mut Vec<u64>, b: u64, c: u64) {
    let mut carry = c as u128;
    for w in a.iter_mut() {
        let t = *w as u128 * b as u128 + carry;
        *w = t as u64;
        carry = t >> 64;
    }
    if carry != 0 {
        a.push(carry as u64);
    }
}

/// a >> 1.
fn shr1(a: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = (0..a.len())
        .map(|i| (a[i] >> 1) | a.get(i + 1).map_or(0, |&hi| hi << 63))
        .collect();
    trim(&mut out);
    out
}

fn trim(a: &mut Vec<u64>) {
    while a.len() > 1 && a.last() == Some(&0) {
        a.pop();
    }
}

/// Compares two numbers; either may carry leading zero words.
fn cmp_words(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    for i in (0..len).rev() {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x.cmp(&y);
        }
    }
    std::cmp::Ordering::Equal
}

/// out ← a − b for a ≥ b; `out` has at least a.len() words, extra words are zeroed.
fn sub_words(a: &[u64], b: &[u64], out: &mut [u64]) {
    let mut borrow = false;
    for (i, o) in out.iter_mut().enumerate() {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        let (d1, b1) = x.overflowing_sub(y);
        let (d2, b2) = d1.overflowing_sub(borrow as u64);
        *o = d2;
        borrow = b1 || b2;
    }
    debug_assert!(!borrow, "sub_words needs a ≥ b");
}

/// Nearest `f64` (ties to even) of a little-endian multi-word magnitude.
fn words_to_f64(a: &[u64]) -> f64 {
    let Some(top) = a.iter().rposition(|&w| w != 0) else {
        return 0.0;
    };
    if top == 0 {
        return a[0] as f64;
    }
    // The top 64 significant bits, with every lower bit folded into bit 0 as a sticky bit:
    // rounding to 53 bits only needs the round bit and whether anything below it is set,
    // so the u64 → f64 cast then rounds exactly as the full number would.
    let lz = a[top].leading_zeros();
    let (hi, rest_of_next) = if lz == 0 {
        (a[top], 0)
    } else {
        ((a[top] << lz) | (a[top - 1] >> (64 - lz)), a[top - 1] << lz)
    };
    let sticky = rest_of_next != 0 || a[..top - 1].iter().any(|&w| w != 0);
    let mantissa = (hi | sticky as u64) as f64;
    // value = hi · 2^shift with shift = (number of bits) − 64.
    let shift = 64 * top as u32 - lz;
    if shift > 1023 {
        return f64::INFINITY;
    }
    mantissa * f64::from_bits(((shift + 1023) as u64) << 52)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::sampling::{seeded_rng, uniform_below};

    /// The two-prime fast path against Garner's general one, bit for bit, on random
    /// residues and on the values around 0 and ±Q/2 where centering switches sign.
    #[test]
    fn two_primes_match_garner() {
        for (q0, q1) in [
            ((1u64 << 50) - 27, (1u64 << 40) - 87),
            ((1 << 62) - 57, (1 << 61) - 1),
        ] {
            let (m0, m1) = (Modulus::new(q0).unwrap(), Modulus::new(q1).unwrap());
            let garner = Garner::new(vec![m0, m1]);
            let mut scratch = Scratch::new(2);
            let q = q0 as u128 * q1 as u128;
            let mut xs: Vec<u128> = vec![0, 1, q / 2 - 1, q / 2, q / 2 + 1, q - 1];
            let mut rng = seeded_rng([5; 32]);
            xs.extend((0..2000).map(|_| {
                uniform_below(&mut rng, q0) as u128
                    + q0 as u128 * uniform_below(&mut rng, q1) as u128
            }));
            let r0: Vec<u64> = xs.iter().map(|&x| (x % q0 as u128) as u64).collect();
            let r1: Vec<u64> = xs.iter().map(|&x| (x % q1 as u128) as u64).collect();
            let fast = centered_two_primes(m0, m1, &r0, &r1);
            for (i, &x) in xs.iter().enumerate() {
                let general = garner.centered_f64(&[r0[i], r1[i]], &mut scratch);
                assert_eq!(fast[i].to_bits(), general.to_bits(), "x = {x}");
            }
        }
    }

    #[test]
    fn words_to_f64_rounds_to_nearest_even() {
        // 2^64 + 2^11 is exactly halfway between 2^64 and 2^64 + 2^12: ties to even (down).
        assert_eq!(words_to_f64(&[1 << 11, 1]), 18446744073709551616.0);
        // One more bit anywhere below breaks the tie upward.
        assert_eq!(words_to_f64(&[(1 << 11) + 1, 1]), 18446744073709555712.0);
        assert_eq!(
            words_to_f64(&[1, 1 << 11, 1]),
            2f64.powi(128) + 2f64.powi(75) * 2.0
        );
        assert_eq!(words_to_f64(&[0, 0, 0]), 0.0);
        assert_eq!(words_to_f64(&[u64::MAX]), 2f64.powi(64));
        let mut big = vec![0u64; 17];
        big[16] = 1; // 2^1024
        assert_eq!(words_to_f64(&big), f64::INFINITY);
        big[16] = 0;
        big[15] = 1 << 63; // 2^1023
        assert_eq!(words_to_f64(&big), 2f64.powi(1023));
    }

    #[test]
    fn word_helpers() {
        let mut a = vec![u64::MAX];
        mul_add_small(&mut a, u64::MAX, u64::MAX);
        // (2^64 − 1)^2 + 2^64 − 1 = 2^128 − 2^64.
        assert_eq!(a, vec![0, u64::MAX]);
        assert_eq!(shr1(&[1, 1]), vec![1 << 63]);
        let mut out = [0u64; 2];
        sub_words(&[0, 1], &[1], &mut out);
        assert_eq!(out, [u64::MAX, 0]);
        assert_eq!(cmp_words(&[5, 0], &[5]), std::cmp::Ordering::Equal);
    }
}
