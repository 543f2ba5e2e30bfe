//! Pointwise arithmetic on RNS polynomials, limb by limb with each limb's modulus, through the
//! vectorised [`simd`](super::simd) where the CPU has them.

use super::simd::{self, SimdTier};
use super::{RingContext, RnsPoly};

fn check_same(a: &RnsPoly, b: &RnsPoly) {
    assert_eq!(a.basis(), b.basis(), "operands are over different bases");
    assert_eq!(a.ntt_form, b.ntt_form, "operands are in different domains");
}

/// a += b
pub fn add_assign(ctx: &RingContext, a: &mut RnsPoly, b: &RnsPoly) {
    check_same(a, b);
    let (basis, path) = (a.basis(), SimdTier::best());
    for (i, (x, y)) in a.limbs_mut().zip(b.limbs()).enumerate() {
        simd::add(path, ctx.modulus(basis, i), x, y);
    }
}

/// a -= b
pub fn sub_assign(ctx: &RingContext, a: &mut RnsPoly, b: &RnsPoly) {
    check_same(a, b);
    let (basis, path) = (a.basis(), SimdTier::best());
    for (i, (x, y)) in a.limbs_mut().zip(b.limbs()).enumerate() {
        simd::sub(path, ctx.modulus(basis, i), x, y);
    }
}

/// a = -a
pub fn neg_assign(ctx: &RingContext, a: &mut RnsPoly) {
    let (basis, path) = (a.basis(), SimdTier::best());
    for (i, x) in a.limbs_mut().enumerate() {
        simd::neg(path, ctx.modulus(basis, i), x);
    }
}

/// a *= b (pointwise; both in NTT form for a ring product).
pub fn mul_assign(ctx: &RingContext, a: &mut RnsPoly, b: &RnsPoly) {
    check_same(a, b);
    let (basis, path) = (a.basis(), SimdTier::best());
    for (i, (x, y)) in a.limbs_mut().zip(b.limbs()).enumerate() {
        simd::mul(path, ctx.modulus(basis, i), x, y);
    }
}

/// acc += a * b (pointwise).
pub fn mul_add_assign(ctx: &RingContext, acc: &mut RnsPoly, a: &RnsPoly, b: &RnsPoly) {
    check_same(acc, a);
    check_same(a, b);
    let (basis, path) = (acc.basis(), SimdTier::best());
    for (i, ((z, x), y)) in acc.limbs_mut().zip(a.limbs()).zip(b.limbs()).enumerate() {
        simd::mul_add(path, ctx.modulus(basis, i), z, x, y);
    }
}

/// a *= c_i on limb i (a constant given by its residues, already reduced).
pub fn mul_scalar_assign(ctx: &RingContext, a: &mut RnsPoly, residues: &[u64]) {
    let (basis, path) = (a.basis(), SimdTier::best());
    assert_eq!(residues.len(), basis.len(), "one residue per limb");
    for (i, x) in a.limbs_mut().enumerate() {
        simd::mul_const(path, ctx.modulus(basis, i), x, residues[i]);
    }
}

/// Forward NTT of every limb.
pub fn ntt_forward(ctx: &RingContext, a: &mut RnsPoly) {
    assert!(!a.ntt_form, "polynomial is already in NTT form");
    let basis = a.basis();
    for (i, x) in a.limbs_mut().enumerate() {
        ctx.ntt_table(basis, i).forward(x);
    }
    a.ntt_form = true;
}

/// Inverse NTT of every limb.
pub fn ntt_inverse(ctx: &RingContext, a: &mut RnsPoly) {
    assert!(a.ntt_form, "polynomial is already in coefficient form");
    let basis = a.basis();
    for (i, x) in a.limbs_mut().enumerate() {
        ctx.ntt_table(basis, i).inverse(x);
    }
    a.ntt_form = false;
}

/// A polynomial with small signed coefficients (secret, error) over `basis`, coefficient form.
pub fn from_signed(ctx: &RingContext, coeffs: &[i64], basis: super::Basis) -> RnsPoly {
    let mut p = RnsPoly::zero(ctx.n(), basis, false);
    let largest = coeffs.iter().map(|c| c.unsigned_abs()).max().unwrap_or(0);
    for (i, limb) in p.limbs_mut().enumerate() {
        let m = ctx.modulus(basis, i);
        if largest < m.value() {
            // |c| < q: c or q + c, without a branch on the sign (Gaussian signs are random,
            // and the branchy path mispredicts half the time). Equal to `from_i64`.
            let q = m.value();
            limb.iter_mut()
                .zip(coeffs)
                .for_each(|(x, &c)| *x = (c as u64).wrapping_add(q & ((c >> 63) as u64)));
        } else {
            limb.iter_mut()
                .zip(coeffs)
                .for_each(|(x, &c)| *x = m.from_i64(c));
        }
    }
    p
}
