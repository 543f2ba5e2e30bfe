//! CKKS encoding: the canonical embedding between vectors of N/2 complex slots and
//! polynomials of Z[X]/(X^N + 1), scaled by Δ and rounded.
//!
//! Slot j holds m(ζ^(5^j mod 2N)) with ζ = exp(iπ/N). With this order the automorphism
//! X → X^(5^k) rotates the slots left by k and X → X^(2N−1) conjugates them.
//!
//! Since ζ^(N/2·5^j) = i (5^j ≡ 1 mod 4), m(ζ^(5^j)) = w(ζ^(5^j)) for the half-length complex
//! polynomial w_i = m_i + i·m_(i+N/2), i < N/2. The slots are thus N/2 evaluations of w, which
//! the "special FFT" computes in O(N log N): a radix-2 FFT whose butterfly at span 2h uses the
//! rotation-group root exp(2πi·(5^j mod 8h)/(8h)) in place of the usual ω^j.

use super::{Complex, Params, Plaintext};
use crate::ring::{
    arith, bit_reverse, centered_coefficients_f64, Basis, CrtError, RingContext, RnsPoly, MAX_LOG_N,
};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum EncodeError {
    #[error("ring degree {0} is not a power of two in 2 … 2^17")]
    Degree(usize),
    #[error("encoder is built for degree {encoder} but the ring has degree {ring}")]
    RingMismatch { encoder: usize, ring: usize },
    #[error("polynomial has degree {poly} but the encoder is built for degree {encoder}")]
    PolyDegree { poly: usize, encoder: usize },
    #[error("basis {0:?} is not part of the ring context")]
    BasisNotInContext(Basis),
    #[error("{given} values do not fit in {slots} slots")]
    TooManyValues { given: usize, slots: usize },
    #[error("value {index} is NaN or infinite")]
    NonFiniteValue { index: usize },
    #[error("scale {0} must be finite and positive")]
    InvalidScale(f64),
    #[error("a scaled coefficient does not fit in 127 bits (or is not finite)")]
    Overflow,
    #[error("a scaled coefficient of {coefficient_bits} bits does not fit modulo Q of {modulus_bits} bits")]
    ExceedsModulus {
        coefficient_bits: u32,
        modulus_bits: u32,
    },
    #[error(transparent)]
    Crt(#[from] CrtError),
}

/// Encoder/decoder for one ring degree N, with the special FFT's roots precomputed.
#[derive(Clone, Debug)]
pub struct Encoder {
    n: usize,
    /// twiddles[h + j], j < h, for the butterflies of span 2h: exp(2πi·(5^j mod 8h)/(8h)).
    twiddles: Vec<Complex>,
}

/// 2^127: the first magnitude a scaled coefficient may not reach.
const COEFF_LIMIT: f64 = 1.7014118346046923e38;

impl Encoder {
    pub fn new(n: usize) -> Result<Self, EncodeError> {
        if !n.is_power_of_two() || n < 2 || n.trailing_zeros() > MAX_LOG_N {
            return Err(EncodeError::Degree(n));
        }
        let slots = n / 2;
        let mut twiddles = vec![Complex::ZERO; slots];
        let mut h = 1;
        while h < slots {
            let order = 8 * h;
            let mut g = 1;
            for j in 0..h {
                twiddles[h + j] = unit_root(g, order);
                g = g * 5 % order;
            }
            h *= 2;
        }
        Ok(Self { n, twiddles })
    }

    /// Ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of complex slots, N/2.
    pub fn slots(&self) -> usize {
        self.n / 2
    }

    /// Encodes real values (zero-padded to N/2 slots) as round(Δ·m), in NTT form over `basis`.
    pub fn encode(
        &self,
        ctx: &RingContext,
        values: &[f64],
        scale: f64,
        basis: Basis,
    ) -> Result<RnsPoly, EncodeError> {
        let values: Vec<Complex> = values.iter().map(|&v| Complex::from(v)).collect();
        self.encode_complex(ctx, &values, scale, basis)
    }

    /// Encodes real values as a plaintext at `level` (over Q_level) and `scale`: the form
    /// encryption takes.
    pub fn encode_at(
        &self,
        params: &Params,
        values: &[f64],
        level: usize,
        scale: f64,
    ) -> Result<Plaintext, EncodeError> {
        let poly = self.encode(params.ring(), values, scale, Basis::level(level))?;
        Ok(Plaintext { poly, level, scale })
    }

    /// The real parts of `pt`'s slots.
    pub fn decode_plaintext(
        &self,
        params: &Params,
        pt: &Plaintext,
    ) -> Result<Vec<f64>, EncodeError> {
        self.decode(params.ring(), &pt.poly, pt.scale)
    }

    /// Encodes complex values (zero-padded to N/2 slots) as round(Δ·m), in NTT form over
    /// `basis`. Coefficients may reach 2^127 in magnitude and must stay below Q/2.
    pub fn encode_complex(
        &self,
        ctx: &RingContext,
        values: &[Complex],
        scale: f64,
        basis: Basis,
    ) -> Result<RnsPoly, EncodeError> {
        self.check_ring(ctx)?;
        if !ctx.contains(basis) {
            return Err(EncodeError::BasisNotInContext(basis));
        }
        check_scale(scale)?;
        let slots = self.slots();
        if values.len() > slots {
            return Err(EncodeError::TooManyValues {
                given: values.len(),
                slots,
            });
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(EncodeError::NonFiniteValue { index });
        }

        let mut w = values.to_vec();
        w.resize(slots, Complex::ZERO);
        self.special_ifft(&mut w);
        // m_i = Re w_i and m_(i+N/2) = Im w_i.
        let mut coeffs = vec![0i128; self.n];
        for (i, z) in w.iter().enumerate() {
            coeffs[i] = round_to_integer(z.re * scale)?;
            coeffs[i + slots] = round_to_integer(z.im * scale)?;
        }
        check_fits_modulus(ctx, basis, &coeffs)?;

        // Coefficients of real inputs fit an i64 (|value|·scale < 2^63): the word-sized
        // reduction is several times cheaper than the 128-bit one.
        let small: Option<Vec<i64>> = coeffs.iter().map(|&c| i64::try_from(c).ok()).collect();
        let mut poly = match small {
            Some(small) => arith::from_signed(ctx, &small, basis),
            None => {
                let mut poly = RnsPoly::zero(self.n, basis, false);
                for (limb, data) in poly.limbs_mut().enumerate() {
                    let m = ctx.modulus(basis, limb);
                    for (d, &c) in data.iter_mut().zip(&coeffs) {
                        *d = m.from_i128(c);
                    }
                }
                poly
            }
        };
        arith::ntt_forward(ctx, &mut poly);
        Ok(poly)
    }

    /// Decodes the real parts of the slots of `poly` (NTT or coefficient form) at `scale`.
    pub fn decode(
        &self,
        ctx: &RingContext,
        poly: &RnsPoly,
        scale: f64,
    ) -> Result<Vec<f64>, EncodeError> {
        Ok(self
            .decode_complex(ctx, poly, scale)?
            .into_iter()
            .map(|z| z.re)
            .collect())
    }

    /// Decodes all N/2 slots of `poly` (NTT or coefficient form; not modified) at `scale`,
    /// from the exact centered coefficients modulo the poly's basis.
    pub fn decode_complex(
        &self,
        ctx: &RingContext,
        poly: &RnsPoly,
        scale: f64,
    ) -> Result<Vec<Complex>, EncodeError> {
        self.check_ring(ctx)?;
        if poly.n() != self.n {
            return Err(EncodeError::PolyDegree {
                poly: poly.n(),
                encoder: self.n,
            });
        }
        check_scale(scale)?;
        let coeffs = centered_coefficients_f64(ctx, poly)?;
        let slots = self.slots();
        let mut w: Vec<Complex> = (0..slots)
            .map(|i| Complex::new(coeffs[i] / scale, coeffs[i + slots] / scale))
            .collect();
        self.special_fft(&mut w);
        Ok(w)
    }

    fn check_ring(&self, ctx: &RingContext) -> Result<(), EncodeError> {
        if ctx.n() != self.n {
            return Err(EncodeError::RingMismatch {
                encoder: self.n,
                ring: ctx.n(),
            });
        }
        Ok(())
    }

    /// In place: coefficients w_0 … w_(N/2−1) → slots w(ζ^(5^j)), j < N/2.
    /// Bit-reversed input, then decimation-in-time butterflies.
    fn special_fft(&self, a: &mut [Complex]) {
        bit_reverse_permute(a);
        let mut h = 1;
        while h < a.len() {
            let tw = &self.twiddles[h..2 * h];
            for block in a.chunks_exact_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for ((x, y), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(tw) {
                    let u = *x;
                    let v = *y * w;
                    *x = u + v;
                    *y = u - v;
                }
            }
            h *= 2;
        }
    }

    /// Inverse of [`Self::special_fft`]: each butterfly undone (the 1/2 deferred to one final
    /// 1/(N/2)), then the bit-reversal.
    fn special_ifft(&self, a: &mut [Complex]) {
        let mut h = a.len() / 2;
        while h >= 1 {
            let tw = &self.twiddles[h..2 * h];
            for block in a.chunks_exact_mut(2 * h) {
                let (lo, hi) = block.split_at_mut(h);
                for ((x, y), &w) in lo.iter_mut().zip(hi.iter_mut()).zip(tw) {
                    let (u, v) = (*x, *y);
                    *x = u + v;
                    *y = (u - v) * w.conj();
                }
            }
            h /= 2;
        }
        bit_reverse_permute(a);
        // A power of two: exact.
        let inv = 1.0 / a.len() as f64;
        for x in a.iter_mut() {
            *x = x.scale(inv);
        }
    }
}

fn check_scale(scale: f64) -> Result<(), EncodeError> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(EncodeError::InvalidScale(scale))
    }
}

/// Nearest integer of a scaled coefficient, exactly (f64 → i128 is exact below 2^127).
fn round_to_integer(x: f64) -> Result<i128, EncodeError> {
    // Adding and subtracting 1.5·2^52 rounds below 2^51 without a libm call (the portable
    // x86-64 target has no rounding instruction); ties go to even, not away from zero.
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    let r = if x.abs() < (1u64 << 51) as f64 {
        (x + ROUNDER) - ROUNDER
    } else {
        x.round()
    };
    // Also rejects NaN, which huge-but-finite inputs can produce inside the FFT (∞ − ∞).
    if r.abs() < COEFF_LIMIT {
        Ok(r as i128)
    } else {
        Err(EncodeError::Overflow)
    }
}

/// Every coefficient must lie in (−Q/2, Q/2] to decode back to itself. Coefficients are below
/// 2^127, so only a Q below 2^128 can be too small; that Q is checked exactly.
fn check_fits_modulus(ctx: &RingContext, basis: Basis, coeffs: &[i128]) -> Result<(), EncodeError> {
    let q = ctx
        .moduli(basis)
        .try_fold(1u128, |acc, m| acc.checked_mul(m.value() as u128));
    let Some(q) = q else {
        return Ok(());
    };
    let max = coeffs.iter().map(|c| c.unsigned_abs()).max().unwrap_or(0);
    // Q is odd, so (−Q/2, Q/2] ∩ Z = [−(Q−1)/2, (Q−1)/2].
    if max > (q - 1) / 2 {
        return Err(EncodeError::ExceedsModulus {
            coefficient_bits: 128 - max.leading_zeros(),
            modulus_bits: 128 - q.leading_zeros(),
        });
    }
    Ok(())
}

fn bit_reverse_permute(a: &mut [Complex]) {
    let bits = a.len().trailing_zeros();
    for i in 0..a.len() {
        let r = bit_reverse(i, bits);
        if i < r {
            a.swap(i, r);
        }
    }
}

/// exp(2πi·k/order) for `order` a power of two ≥ 4, to about an ulp: exact quarter-turn and
/// octant symmetries keep the angle given to sin/cos within [0, π/4].
fn unit_root(k: usize, order: usize) -> Complex {
    let k = k % order;
    let quarter = order / 4;
    let (turns, r) = (k / quarter, k % quarter);
    // num/order is exact (power-of-two order), so the angle carries one rounding.
    let angle = |num: usize| std::f64::consts::TAU * (num as f64 / order as f64);
    let base = if 2 * r <= quarter {
        let (s, c) = angle(r).sin_cos();
        Complex::new(c, s)
    } else {
        // θ = π/2 − φ: cos θ = sin φ, sin θ = cos φ.
        let (s, c) = angle(quarter - r).sin_cos();
        Complex::new(s, c)
    };
    // Multiply by i^turns.
    match turns {
        0 => base,
        1 => Complex::new(-base.im, base.re),
        2 => -base,
        _ => Complex::new(base.im, -base.re),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Naive evaluation of w at the slot roots ζ^(5^j), O(N²).
    fn naive_eval(w: &[Complex]) -> Vec<Complex> {
        let slots = w.len();
        let order = 4 * slots; // 2N
        let mut g = 1;
        (0..slots)
            .map(|_| {
                let mut acc = Complex::ZERO;
                for (i, &c) in w.iter().enumerate() {
                    acc += c * unit_root(g * i % order, order);
                }
                g = g * 5 % order;
                acc
            })
            .collect()
    }

    fn max_diff(a: &[Complex], b: &[Complex]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (*x - *y).abs())
            .fold(0.0, f64::max)
    }

    fn random_vec(seed: u64, len: usize) -> Vec<Complex> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..len)
            .map(|_| Complex::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Forward special FFT = naive evaluation; inverse undoes it. For |w_i| ≤ √2 the naive
        /// sums are below N/2·√2 in size, so 1e-12 is ~2^13 ulps of headroom at N = 2^11.
        #[test]
        fn special_fft_matches_naive(log_n in 1u32..=11, seed: u64) {
            let n = 1usize << log_n;
            let enc = Encoder::new(n).unwrap();
            let w = random_vec(seed, n / 2);
            let mut fast = w.clone();
            enc.special_fft(&mut fast);
            prop_assert!(max_diff(&fast, &naive_eval(&w)) < 1e-12 * n as f64);
            enc.special_ifft(&mut fast);
            prop_assert!(max_diff(&fast, &w) < 1e-14 * log_n as f64);
        }
    }

    #[test]
    fn unit_roots_are_accurate() {
        // The direct formula is itself off by up to ~2π·2^-53 ≈ 7e-16 (its rounded angle).
        let order = 1 << 12;
        for k in 0..order {
            let direct = std::f64::consts::TAU * k as f64 / order as f64;
            let z = unit_root(k, order);
            assert!(
                (z.re - direct.cos()).abs() < 1e-15 && (z.im - direct.sin()).abs() < 1e-15,
                "k = {k}"
            );
            assert!((z.abs() - 1.0).abs() < 3e-16);
        }
        assert_eq!(unit_root(order / 4, order), Complex::I);
    }

    #[test]
    fn rejects_bad_degrees() {
        for n in [0, 1, 3, 1000, 1 << 18] {
            assert_eq!(Encoder::new(n).unwrap_err(), EncodeError::Degree(n));
        }
    }
}
