//! Basis extension, rescale and automorphisms against exact big-integer references.
//!
//! Every check is bit-exact: residues are reconstructed by CRT into integers, and the
//! integer the operation must produce is computed directly.

use helora::math::{ntt_prime_chain, sampling};
use helora::ring::{arith, automorphism, rescale, Basis, BasisExtender, RingContext, RnsPoly};
use num_bigint::{BigInt, BigUint};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand_core::RngCore;

fn context(log_n: u32, q_bits: &[u32], p_bits: &[u32]) -> RingContext {
    let n = 1usize << log_n;
    let (q, p) = ntt_prime_chain(n, q_bits, p_bits).unwrap();
    RingContext::new(n, &q, &p).unwrap()
}

fn moduli(ctx: &RingContext, basis: Basis) -> Vec<u64> {
    ctx.moduli(basis).map(|m| m.value()).collect()
}

fn product(ms: &[u64]) -> BigUint {
    ms.iter().fold(BigUint::one(), |acc, &m| acc * m)
}

/// CRT reconstruction of coefficient `c` into [0, Π m).
fn crt(poly: &RnsPoly, ms: &[u64], c: usize) -> BigUint {
    let big = product(ms);
    let mut acc = BigUint::zero();
    for (i, &m) in ms.iter().enumerate() {
        let hat = &big / m;
        let hat_mod = (&hat % m).to_u64_digits().first().copied().unwrap_or(0);
        let inv = BigInt::from(hat_mod)
            .extended_gcd(&BigInt::from(m))
            .x
            .mod_floor(&BigInt::from(m));
        let inv = inv.to_biguint().unwrap();
        acc += BigUint::from(poly.limb(i)[c]) * inv % m * hat;
    }
    acc % big
}

/// The centered representative of x ∈ [0, m) — and, when x is within float rounding of
/// m/2 (where the conversion's estimate may land on either side), also the other one.
fn rounding_candidates(x: &BigInt, m: &BigUint) -> Vec<BigInt> {
    let m = BigInt::from(m.clone());
    let half = &m / 2;
    let centered = if x > &half { x - &m } else { x.clone() };
    let mut out = vec![centered];
    if (x - &half).magnitude() < &(m.magnitude() >> 40u32) {
        out.push(if x > &half { x.clone() } else { x - &m });
    }
    out
}

/// Whether coefficient `c` of `poly` equals the signed integer `v` on every limb.
fn limbs_equal(poly: &RnsPoly, c: usize, moduli: &[u64], v: &BigInt) -> bool {
    moduli.iter().enumerate().all(|(i, &m)| {
        let r = v.mod_floor(&BigInt::from(m));
        poly.limb(i)[c] == r.to_u64_digits().1.first().copied().unwrap_or(0)
    })
}

fn residue(x: &BigUint, m: u64) -> u64 {
    (x % m).to_u64_digits().first().copied().unwrap_or(0)
}

fn random_poly(ctx: &RingContext, basis: Basis, ntt_form: bool) -> RnsPoly {
    let mut rng = sampling::os_rng().unwrap();
    let mut p = RnsPoly::zero(ctx.n(), basis, ntt_form);
    for (i, limb) in p.limbs_mut().enumerate() {
        let q = ctx.modulus(basis, i).value();
        limb.iter_mut()
            .for_each(|x| *x = sampling::uniform_below(&mut rng, q));
    }
    p
}

fn sample_coefficients(n: usize) -> Vec<usize> {
    let mut rng = sampling::os_rng().unwrap();
    let mut cs: Vec<usize> = (0..48)
        .map(|_| (rng.next_u64() % n as u64) as usize)
        .collect();
    cs.extend([0, 1, n - 1]);
    cs
}

/// Shapes: (log N, q bits, p bits, alpha).
const SHAPES: [(u32, &[u32], &[u32], usize); 4] = [
    (12, &[50, 40, 40], &[50], 1),
    (12, &[60, 45, 45, 45, 45], &[61, 61], 2),
    (13, &[50, 40, 40, 40, 40, 40, 40], &[50, 50, 50], 3),
    (12, &[36, 30, 30, 30], &[62], 4),
];

#[test]
fn mod_up_extends_the_centered_digit() {
    for &(log_n, q_bits, p_bits, alpha) in &SHAPES {
        let ctx = context(log_n, q_bits, p_bits);
        let ext = BasisExtender::new(&ctx, alpha);
        for level in 0..ctx.q().len() {
            let basis = Basis::level(level);
            let c_coeff = random_poly(&ctx, basis, false);
            let mut c_ntt = c_coeff.clone();
            arith::ntt_forward(&ctx, &mut c_ntt);
            let out_basis = Basis::new(level + 1, ctx.p().len());
            let out_ms = moduli(&ctx, out_basis);
            for digit in 0..ext.digit_count(level) {
                let mut up = ext.mod_up(&ctx, &c_coeff, &c_ntt, digit);
                assert_eq!(up.basis(), out_basis);
                arith::ntt_inverse(&ctx, &mut up);
                let limbs: Vec<usize> =
                    (digit * alpha..((digit + 1) * alpha).min(level + 1)).collect();
                let digit_ms: Vec<u64> = limbs.iter().map(|&i| ctx.q()[i].value()).collect();
                let d = product(&digit_ms);
                let digit_poly = RnsPoly::from_data(
                    ctx.n(),
                    Basis::level(limbs.len() - 1),
                    false,
                    limbs
                        .iter()
                        .flat_map(|&i| c_coeff.limb(i).to_vec())
                        .collect(),
                )
                .unwrap();
                for c in sample_coefficients(ctx.n()) {
                    let x = crt(&digit_poly, &digit_ms, c);
                    let found = rounding_candidates(&BigInt::from(x), &d)
                        .iter()
                        .any(|v| limbs_equal(&up, c, &out_ms, v));
                    assert!(
                        found,
                        "ModUp mismatch: log_n {log_n} level {level} digit {digit} coefficient {c}"
                    );
                }
            }
        }
    }
}

#[test]
fn mod_down_divides_by_p_with_rounding() {
    for &(log_n, q_bits, p_bits, alpha) in &SHAPES {
        let ctx = context(log_n, q_bits, p_bits);
        let ext = BasisExtender::new(&ctx, alpha);
        for level in [0, ctx.q().len() - 1] {
            let basis = Basis::new(level + 1, ctx.p().len());
            let x = random_poly(&ctx, basis, true);
            let down = ext.mod_down(&ctx, &x);
            let (mut x_c, mut down_c) = (x.clone(), down.clone());
            arith::ntt_inverse(&ctx, &mut x_c);
            arith::ntt_inverse(&ctx, &mut down_c);
            let ms = moduli(&ctx, basis);
            let q_ms = moduli(&ctx, Basis::level(level));
            let p = product(&moduli(&ctx, Basis::new(0, ctx.p().len()))[..]);
            for c in sample_coefficients(ctx.n()) {
                let v = crt(&x_c, &ms, c);
                // Result = ⌊v/P⌉ = (v − centered(v mod P)) / P.
                let found = rounding_candidates(&BigInt::from(&v % &p), &p)
                    .iter()
                    .any(|r| {
                        limbs_equal(
                            &down_c,
                            c,
                            &q_ms,
                            &((BigInt::from(v.clone()) - r) / BigInt::from(p.clone())),
                        )
                    });
                assert!(
                    found,
                    "ModDown mismatch: log_n {log_n} level {level} coefficient {c}"
                );
            }
        }
    }
}

#[test]
fn rescale_rounds_exactly() {
    for &(log_n, q_bits, p_bits, _) in &SHAPES {
        let ctx = context(log_n, q_bits, p_bits);
        for level in 1..ctx.q().len() {
            let basis = Basis::level(level);
            let x = random_poly(&ctx, basis, true);
            let mut out = rescale(&ctx, &x);
            assert_eq!(out.basis(), Basis::level(level - 1));
            let mut x_c = x.clone();
            arith::ntt_inverse(&ctx, &mut x_c);
            arith::ntt_inverse(&ctx, &mut out);
            let ms = moduli(&ctx, basis);
            let q_last = ctx.q()[level].value();
            for c in sample_coefficients(ctx.n()) {
                let v = crt(&x_c, &ms, c);
                let want = (v + q_last / 2) / q_last;
                for (i, &m) in ms[..level].iter().enumerate() {
                    assert_eq!(
                        out.limb(i)[c],
                        residue(&want, m),
                        "rescale: log_n {log_n} level {level} limb {i} coefficient {c}"
                    );
                }
            }
        }
    }
}

#[test]
fn automorphism_agrees_across_domains_and_with_the_definition() {
    let ctx = context(12, &[50, 40, 40], &[50]);
    let n = ctx.n();
    let basis = ctx.full_basis();
    let x = random_poly(&ctx, basis, false);
    for g in [5u64, 25, 2 * n as u64 - 1, 3, 8191 % (2 * n as u64)] {
        let coeff = automorphism::automorphism_coeff(&ctx, &x, g);
        // Definition: coefficient i of x lands at i·g mod 2N, negated past N.
        for i in [0usize, 1, 2, 17, n - 1] {
            let j = i * g as usize % (2 * n);
            for limb in 0..basis.len() {
                let m = ctx.modulus(basis, limb);
                let want = if j < n {
                    coeff.limb(limb)[j]
                } else {
                    m.neg(coeff.limb(limb)[j - n])
                };
                assert_eq!(want, x.limb(limb)[i]);
            }
        }
        let mut x_ntt = x.clone();
        arith::ntt_forward(&ctx, &mut x_ntt);
        let perm = automorphism::automorphism_ntt_permutation(n, g);
        let mut via_ntt = automorphism::automorphism_ntt(&x_ntt, &perm);
        arith::ntt_inverse(&ctx, &mut via_ntt);
        assert_eq!(
            via_ntt, coeff,
            "NTT-domain automorphism {g} differs from the coefficient one"
        );
    }
}

#[test]
fn signed_coefficients_reduce_like_big_integers() {
    let ctx = context(10, &[50, 40, 36], &[50]);
    let basis = ctx.full_basis();
    let ms = moduli(&ctx, basis);
    let mut rng = sampling::os_rng().unwrap();
    // Small values (the branch-free path), then values beyond the smallest prime (the
    // general path), with both signs.
    for bound in [1u64 << 20, 1u64 << 45, u64::MAX >> 1] {
        let coeffs: Vec<i64> = (0..ctx.n() - 4)
            .map(|_| (rng.next_u64() % bound) as i64 * if rng.next_u32() & 1 == 0 { 1 } else { -1 })
            .chain([i64::MIN + 1, -1, 0, 1])
            .collect();
        let poly = arith::from_signed(&ctx, &coeffs, basis);
        for (i, &m) in ms.iter().enumerate() {
            for (&c, &x) in coeffs.iter().zip(poly.limb(i)) {
                let want = BigInt::from(c).mod_floor(&BigInt::from(m));
                assert_eq!(BigInt::from(x), want, "c = {c}, q = {m}");
            }
        }
    }
}
