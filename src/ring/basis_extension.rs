//! Fast basis conversion between RNS bases, and the two key-switching steps built on it:
//! ModUp (a digit of Q_l extended to Q_l ∪ P) and ModDown (divide by P, back to Q_l).
//!
//! The conversion is Halevi–Polyakov–Shoup's: with y_i = [x_i·(S/s_i)^-1]_{s_i}, the sum
//! Σ y_i·(S/s_i) equals x + u·S for a small integer u, and u ≈ Σ y_i/s_i is estimated in
//! floating point and subtracted. The result is the *centered* representative of x mod S
//! (in (−S/2, S/2], or one S off when x sits within float rounding of ±S/2): small digits
//! keep key-switching noise low, and ModDown becomes a rounding rather than a floor.

use super::simd::{self, Scaled, SimdTier};
use super::{Basis, RingContext, RnsPoly};
use crate::math::Modulus;
use std::ops::Range;

/// Converts residues over `from` to residues over `to`.
#[derive(Clone, Debug)]
pub struct BaseConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    /// (S/s_i)^-1 mod s_i (the kernels derive their own Shoup constants).
    inv_hat: Vec<u64>,
    /// (S/s_i) mod t_j and its Shoup constant, row-major by target:
    /// `hat_mod_to[j * from.len() + i]`.
    hat_mod_to: Vec<(u64, u64)>,
    /// S mod t_j and its Shoup constant.
    product_mod_to: Vec<(u64, u64)>,
    /// 1/s_i, for the estimate of u.
    inv_from_f64: Vec<f64>,
}

impl BaseConverter {
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Self {
        let inv_hat = from
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let hat = from
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i)
                    .fold(1u64, |acc, (_, s)| m.mul(acc, m.reduce(s.value())));
                // Distinct primes: S/s_i is invertible mod s_i.
                m.inv(hat).unwrap_or(0)
            })
            .collect();
        let mut hat_mod_to = Vec::with_capacity(to.len() * from.len());
        for t in to {
            for i in 0..from.len() {
                let hat = from
                    .iter()
                    .enumerate()
                    .filter(|&(k, _)| k != i)
                    .fold(1u64, |acc, (_, s)| t.mul(acc, t.reduce(s.value())));
                hat_mod_to.push((hat, t.shoup(hat)));
            }
        }
        let product_mod_to = to
            .iter()
            .map(|t| {
                let p = from
                    .iter()
                    .fold(1u64, |acc, s| t.mul(acc, t.reduce(s.value())));
                (p, t.shoup(p))
            })
            .collect();
        let inv_from_f64 = from.iter().map(|s| 1.0 / s.value() as f64).collect();
        Self {
            from: from.to_vec(),
            to: to.to_vec(),
            inv_hat,
            hat_mod_to,
            product_mod_to,
            inv_from_f64,
        }
    }

    /// `output[j] = Σ_i [x_i·(S/s_i)^-1]_{s_i} · (S/s_i) − u·S mod t_j` (the centered x) for
    /// every coefficient, for the first `output.len()` targets. Coefficient form in and out.
    pub fn convert(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        assert_eq!(input.len(), self.from.len());
        assert!(output.len() <= self.to.len());
        let path = SimdTier::best();
        if let [source] = self.from.as_slice() {
            // One source prime: the centered residue reduced modulo each target (the general
            // formula with S/s = 1, done without products).
            for (out, t) in output.iter_mut().zip(&self.to) {
                simd::center_reduce(path, source, t, input[0], out);
            }
            return;
        }
        let n = input.first().map_or(0, |l| l.len());
        let k = self.from.len();
        // y_i = [x_i · inv_hat_i]_{s_i}, source-major so every loop below is a plain stream.
        let mut y = vec![0u64; n * k];
        for ((limb, m), (yi, &w)) in input
            .iter()
            .zip(&self.from)
            .zip(y.chunks_exact_mut(n.max(1)).zip(&self.inv_hat))
        {
            simd::mul_const_to(path, m, limb, yi, w);
        }
        let y: Vec<&[u64]> = y.chunks_exact(n.max(1)).collect();
        // u = round(Σ y_i / s_i): how many S the plain sum overshoots the centered x by.
        let mut u = vec![0u64; n];
        simd::overshoot(path, &y, &self.inv_from_f64, &mut u);
        let scaled = Scaled {
            sources: &self.from,
            y: &y,
            u: &u,
        };
        for (j, (out, t)) in output.iter_mut().zip(&self.to).enumerate() {
            let hats = &self.hat_mod_to[j * k..(j + 1) * k];
            simd::hat_sum(path, t, &scaled, hats, self.product_mod_to[j], out);
        }
    }
}

/// The conversion's constants, for a device backend that uploads them (read-only views).
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl BaseConverter {
    pub(crate) fn source_moduli(&self) -> &[Modulus] {
        &self.from
    }

    pub(crate) fn target_moduli(&self) -> &[Modulus] {
        &self.to
    }

    /// (S/s_i)^-1 mod s_i.
    pub(crate) fn inv_hat(&self) -> &[u64] {
        &self.inv_hat
    }

    /// (S/s_i) mod t_j with its Shoup constant, at `[j * from.len() + i]`.
    pub(crate) fn hat_mod_to(&self) -> &[(u64, u64)] {
        &self.hat_mod_to
    }

    /// S mod t_j with its Shoup constant.
    pub(crate) fn product_mod_to(&self) -> &[(u64, u64)] {
        &self.product_mod_to
    }

    /// 1/s_i in f64.
    pub(crate) fn inv_from_f64(&self) -> &[f64] {
        &self.inv_from_f64
    }
}

/// One digit of the hybrid key-switching decomposition at one level.
#[derive(Clone, Debug)]
struct Digit {
    /// Limbs of Q_l that form this digit.
    limbs: Range<usize>,
    /// Digit primes → every other limb of Q_l ∪ P (in basis order).
    converter: BaseConverter,
    targets: Vec<usize>,
}

/// Precomputed ModUp / ModDown tables for every level, for digits of `alpha` primes.
#[derive(Clone, Debug)]
pub struct BasisExtender {
    alpha: usize,
    /// `digits[l]`: the decomposition of Q_l.
    digits: Vec<Vec<Digit>>,
    /// P → Q_L (a level uses the first l+1 targets).
    p_to_q: BaseConverter,
    /// P^-1 mod q_i.
    p_inv: Vec<u64>,
}

impl BasisExtender {
    pub fn new(ctx: &RingContext, alpha: usize) -> Self {
        assert!(
            alpha >= 1 && !ctx.p().is_empty(),
            "key switching needs digits and special primes"
        );
        let q_count = ctx.q().len();
        let digits = (0..q_count)
            .map(|level| {
                let basis = Basis::new(level + 1, ctx.p().len());
                (0..level + 1)
                    .step_by(alpha)
                    .map(|start| {
                        let limbs = start..(start + alpha).min(level + 1);
                        let targets: Vec<usize> =
                            (0..basis.len()).filter(|i| !limbs.contains(i)).collect();
                        let from: Vec<Modulus> =
                            limbs.clone().map(|i| *ctx.modulus(basis, i)).collect();
                        let to: Vec<Modulus> =
                            targets.iter().map(|&i| *ctx.modulus(basis, i)).collect();
                        Digit {
                            limbs,
                            converter: BaseConverter::new(&from, &to),
                            targets,
                        }
                    })
                    .collect()
            })
            .collect();
        let p_to_q = BaseConverter::new(ctx.p(), ctx.q());
        let p_inv = ctx
            .q()
            .iter()
            .map(|m| {
                let p_mod = ctx
                    .p()
                    .iter()
                    .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.value())));
                m.inv(p_mod).unwrap_or(0)
            })
            .collect();
        Self {
            alpha,
            digits,
            p_to_q,
            p_inv,
        }
    }

    pub fn alpha(&self) -> usize {
        self.alpha
    }

    /// Number of digits at `level`.
    pub fn digit_count(&self, level: usize) -> usize {
        self.digits[level].len()
    }

    /// The limbs of Q_l that form digit `digit` at `level`, and the conversion from them to
    /// the other limbs of Q_l ∪ P (in basis order).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn digit(&self, level: usize, digit: usize) -> (Range<usize>, &BaseConverter) {
        let d = &self.digits[level][digit];
        (d.limbs.clone(), &d.converter)
    }

    /// The conversion P → Q_L of ModDown (a level uses its first l + 1 targets) and
    /// P^-1 mod q_i.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn mod_down_constants(&self) -> (&BaseConverter, &[u64]) {
        (&self.p_to_q, &self.p_inv)
    }

    /// Extends digit `digit` of `c` (over Q_l) to Q_l ∪ P, output in NTT form.
    /// `c_coeff` is `c` in coefficient form and `c_ntt` the same polynomial in NTT form
    /// (the digit's own limbs are copied from it, saving their transforms).
    pub fn mod_up(
        &self,
        ctx: &RingContext,
        c_coeff: &RnsPoly,
        c_ntt: &RnsPoly,
        digit: usize,
    ) -> RnsPoly {
        let level = c_coeff.basis().q - 1;
        assert_eq!(c_coeff.basis(), Basis::level(level));
        assert!(!c_coeff.ntt_form && c_ntt.ntt_form);
        let d = &self.digits[level][digit];
        let basis = Basis::new(level + 1, ctx.p().len());
        let mut out = RnsPoly::zero(ctx.n(), basis, true);
        let input: Vec<&[u64]> = d.limbs.clone().map(|i| c_coeff.limb(i)).collect();
        {
            // Targets are exactly the limbs outside the digit, in basis order.
            let mut targets: Vec<&mut [u64]> = out
                .limbs_mut()
                .enumerate()
                .filter(|(i, _)| !d.limbs.contains(i))
                .map(|(_, l)| l)
                .collect();
            d.converter.convert(&input, &mut targets);
        }
        for &t in &d.targets {
            ctx.ntt_table(basis, t).forward(out.limb_mut(t));
        }
        for i in d.limbs.clone() {
            out.limb_mut(i).copy_from_slice(c_ntt.limb(i));
        }
        out
    }

    /// Returns ⌊x / P⌉ over Q_l (exact rounding unless x mod P sits within float error of
    /// ±P/2), NTT form, for x over Q_l ∪ P in NTT form.
    pub fn mod_down(&self, ctx: &RingContext, x: &RnsPoly) -> RnsPoly {
        let basis = x.basis();
        assert!(x.ntt_form && basis.p == ctx.p().len());
        let q_count = basis.q;
        // Coefficient form of the P limbs only.
        let mut p_part = x.data()[q_count * ctx.n()..].to_vec();
        for (k, limb) in p_part.chunks_exact_mut(ctx.n()).enumerate() {
            ctx.ntt_table(basis, q_count + k).inverse(limb);
        }
        // The conversion of x mod P to Q_l is written straight into the output limbs, which
        // then become (x − conversion)·P⁻¹ in place.
        let out_basis = Basis::level(q_count - 1);
        let mut out = RnsPoly::zero(ctx.n(), out_basis, true);
        {
            let input: Vec<&[u64]> = p_part.chunks_exact(ctx.n()).collect();
            let mut outs: Vec<&mut [u64]> = out.limbs_mut().collect();
            self.p_to_q.convert(&input, &mut outs);
        }
        let path = SimdTier::best();
        for i in 0..q_count {
            let limb = out.limb_mut(i);
            ctx.ntt_table(out_basis, i).forward(limb);
            simd::sub_mul_const(path, &ctx.q()[i], x.limb(i), limb, self.p_inv[i]);
        }
        out
    }
}

/// Divides by the last prime of Q_l with rounding: ⌊x / q_l⌉ over Q_{l-1}. NTT form in/out.
pub fn rescale(ctx: &RingContext, x: &RnsPoly) -> RnsPoly {
    let basis = x.basis();
    assert!(
        x.ntt_form && basis.p == 0 && basis.q >= 2,
        "rescale needs an NTT-form polynomial over Q_l, l ≥ 1"
    );
    let last = basis.q - 1;
    let q_last = ctx.q()[last];
    let half = q_last.value() / 2;
    // r = [x + ⌊q_l/2⌋]_{q_l} in coefficient form; then ⌊(x + h)/q_l⌋ = (x - (r - h)) / q_l.
    let path = SimdTier::best();
    let mut r = x.limb(last).to_vec();
    ctx.ntt_table(basis, last).inverse(&mut r);
    simd::add_const(path, &q_last, &mut r, half);
    let out_basis = Basis::level(last - 1);
    let mut out = RnsPoly::zero(ctx.n(), out_basis, true);
    for i in 0..last {
        let m = ctx.q()[i];
        // [r − h]_{q_i} into the output limb, to NTT form, then (x − it)·q_l⁻¹ in place.
        let limb = out.limb_mut(i);
        simd::reduce_sub_const(path, &q_last, &m, &r, m.reduce(half), limb);
        ctx.ntt_table(out_basis, i).forward(limb);
        let inv = m.inv(m.reduce(q_last.value())).unwrap_or(0);
        simd::sub_mul_const(path, &m, x.limb(i), limb, inv);
    }
    out
}
