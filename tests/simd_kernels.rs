//! The ring operations (which run vectorised kernels where the CPU has them) against plain
//! scalar re-implementations of the original code, bit for bit: pointwise arithmetic, fast base
//! conversion, ModUp, ModDown, rescale, automorphisms, the key-switch inner product and a whole
//! rotation. Inputs are random with edge values (0, 1, q − 1, values around q/2, and for
//! several-prime conversions values around ±S/2); primes of 30 … 62 bits, N = 2^10 … 2^16.
//!
//! The references use only `Modulus` methods and the scalar NTT, so on a CPU with AVX-512 IFMA
//! these tests compare the vector paths with the scalar code; elsewhere they still pin the
//! portable path to the original behaviour.

use helora::backend::{Backend, CpuBackend};
use helora::ckks::{
    rotation_element, Ciphertext, Encoder, EvaluationKeys, Evaluator, KeyGenerator, ParamSpec,
    Params, Plaintext, SymmetricEncryptor,
};
use helora::math::{ntt_prime_chain, sampling, Modulus};
use helora::ring::{
    arith, automorphism, rescale, BaseConverter, Basis, BasisExtender, RingContext, RnsPoly,
};
use num_bigint::BigUint;
use rand_core::RngCore;
use std::sync::Arc;

/// Ring shapes: (log N, q bits, p bits, alpha). IFMA primes (< 2^50), wider ones (51 … 62 bits)
/// and mixtures; one and several special primes; digits of one to three primes.
const SHAPES: [(u32, &[u32], &[u32], usize); 7] = [
    (13, &[50, 40, 40], &[50], 1),
    (10, &[30, 40, 49, 30], &[50, 30], 2),
    (11, &[51, 60, 62], &[62], 1),
    (12, &[50, 51, 40, 60], &[49, 62], 2),
    (14, &[40, 40, 40], &[50, 50, 50], 3),
    (15, &[62, 30, 45], &[61, 60], 3),
    (16, &[50, 40], &[50], 1),
];

fn context(log_n: u32, q_bits: &[u32], p_bits: &[u32]) -> RingContext {
    let n = 1usize << log_n;
    let (q, p) = ntt_prime_chain(n, q_bits, p_bits).unwrap();
    RingContext::new(n, &q, &p).unwrap()
}

fn rng() -> impl RngCore {
    sampling::seeded_rng([42; 32])
}

/// Random residues, each limb starting with 0, 1, q − 1 and the values around q/2.
fn random_poly(rng: &mut impl RngCore, ctx: &RingContext, basis: Basis, ntt: bool) -> RnsPoly {
    let mut p = RnsPoly::zero(ctx.n(), basis, ntt);
    for (i, limb) in p.limbs_mut().enumerate() {
        let q = ctx.modulus(basis, i).value();
        let edges = [0, 1, q - 1, q / 2, q / 2 + 1, q / 2 - 1];
        for (k, x) in limb.iter_mut().enumerate() {
            *x = edges
                .get(k)
                .copied()
                .unwrap_or_else(|| sampling::uniform_below(rng, q));
        }
    }
    p
}

/// Sets coefficients 8 … 8 + 2·span of the limbs `limbs` (coefficient form) to the residues of
/// S/2 + d for |d| ≤ span, S the product of those limbs' primes: the inputs whose centered
/// representative sits at the edge of a base conversion.
fn put_half_product(p: &mut RnsPoly, moduli: &[Modulus], limbs: &[usize], span: i64) {
    let s: BigUint = limbs
        .iter()
        .map(|&i| BigUint::from(moduli[i].value()))
        .product();
    let half = &s / 2u32;
    for (k, d) in (-span..=span).enumerate() {
        let v = if d < 0 {
            &half - BigUint::from(d.unsigned_abs())
        } else {
            &half + BigUint::from(d as u64)
        };
        for &i in limbs {
            let r = (&v % moduli[i].value()).to_u64_digits();
            p.limb_mut(i)[8 + k] = r.first().copied().unwrap_or(0);
        }
    }
}

fn moduli(ctx: &RingContext, basis: Basis) -> Vec<Modulus> {
    ctx.moduli(basis).copied().collect()
}

fn ntt_scalar(ctx: &RingContext, p: &mut RnsPoly, forward: bool) {
    let basis = p.basis();
    for (i, limb) in p.limbs_mut().enumerate() {
        let t = ctx.ntt_table(basis, i);
        if forward {
            t.forward_scalar(limb)
        } else {
            t.inverse_scalar(limb)
        }
    }
    p.ntt_form = forward;
}

// ---------------------------------------------------------------------------------------------
// Scalar references: the original implementations, written with `Modulus` methods only.

/// Fast base conversion (Halevi–Polyakov–Shoup, centered), as `BaseConverter::convert` was.
fn ref_convert(from: &[Modulus], to: &[Modulus], input: &[&[u64]]) -> Vec<Vec<u64>> {
    let n = input[0].len();
    if let [s] = from {
        let half = s.value() / 2;
        return to
            .iter()
            .map(|t| {
                input[0]
                    .iter()
                    .map(|&x| {
                        if x > half {
                            t.neg(t.reduce(s.value() - x))
                        } else {
                            t.reduce(x)
                        }
                    })
                    .collect()
            })
            .collect();
    }
    let hat_mod = |m: &Modulus, skip: Option<usize>| {
        from.iter()
            .enumerate()
            .filter(|&(k, _)| Some(k) != skip)
            .fold(1u64, |acc, (_, s)| m.mul(acc, m.reduce(s.value())))
    };
    let y: Vec<Vec<u64>> = from
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let inv = m.inv(hat_mod(m, Some(i))).unwrap();
            let inv_s = m.shoup(inv);
            input[i]
                .iter()
                .map(|&x| m.mul_shoup(x, inv, inv_s))
                .collect()
        })
        .collect();
    let mut overshoot = vec![0f64; n];
    for (yi, s) in y.iter().zip(from) {
        let inv = 1.0 / s.value() as f64;
        for (acc, &v) in overshoot.iter_mut().zip(yi) {
            *acc += v as f64 * inv;
        }
    }
    let u: Vec<u64> = overshoot.iter().map(|v| v.round() as u64).collect();
    to.iter()
        .map(|t| {
            let sp = hat_mod(t, None);
            let sps = t.shoup(sp);
            let mut out: Vec<u64> = u.iter().map(|&v| t.neg(t.mul_shoup(v, sp, sps))).collect();
            for (i, yi) in y.iter().enumerate() {
                let h = hat_mod(t, Some(i));
                let hs = t.shoup(h);
                for (o, &v) in out.iter_mut().zip(yi) {
                    *o = t.add(*o, t.mul_shoup(v, h, hs));
                }
            }
            out
        })
        .collect()
}

/// ModUp of digit `digit` (limbs `start..end`) of `c` over Q_l, NTT form out.
fn ref_mod_up(
    ctx: &RingContext,
    c_coeff: &RnsPoly,
    c_ntt: &RnsPoly,
    limbs: (usize, usize),
) -> RnsPoly {
    let (start, end) = limbs;
    let level = c_coeff.basis().q - 1;
    let basis = Basis::new(level + 1, ctx.p().len());
    let all = moduli(ctx, basis);
    let targets: Vec<usize> = (0..basis.len())
        .filter(|i| !(start..end).contains(i))
        .collect();
    let to: Vec<Modulus> = targets.iter().map(|&i| all[i]).collect();
    let input: Vec<&[u64]> = (start..end).map(|i| c_coeff.limb(i)).collect();
    let conv = ref_convert(&all[start..end], &to, &input);
    let mut out = RnsPoly::zero(ctx.n(), basis, true);
    for (&t, mut limb) in targets.iter().zip(conv) {
        ctx.ntt_table(basis, t).forward_scalar(&mut limb);
        out.limb_mut(t).copy_from_slice(&limb);
    }
    for i in start..end {
        out.limb_mut(i).copy_from_slice(c_ntt.limb(i));
    }
    out
}

/// ⌊x / P⌉ over Q_l, NTT form in and out.
fn ref_mod_down(ctx: &RingContext, x: &RnsPoly) -> RnsPoly {
    let basis = x.basis();
    let q_count = basis.q;
    let mut p_part: Vec<Vec<u64>> = (q_count..basis.len()).map(|i| x.limb(i).to_vec()).collect();
    for (k, limb) in p_part.iter_mut().enumerate() {
        ctx.ntt_table(basis, q_count + k).inverse_scalar(limb);
    }
    let input: Vec<&[u64]> = p_part.iter().map(Vec::as_slice).collect();
    let conv = ref_convert(ctx.p(), &ctx.q()[..q_count], &input);
    let out_basis = Basis::level(q_count - 1);
    let mut out = x.restricted(out_basis);
    for (i, mut c) in conv.into_iter().enumerate() {
        let m = &ctx.q()[i];
        ctx.ntt_table(out_basis, i).forward_scalar(&mut c);
        let p_mod = ctx
            .p()
            .iter()
            .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.value())));
        let w = m.inv(p_mod).unwrap();
        let ws = m.shoup(w);
        for (o, &c) in out.limb_mut(i).iter_mut().zip(&c) {
            *o = m.mul_shoup(m.sub(*o, c), w, ws);
        }
    }
    out
}

/// ⌊x / q_l⌉ over Q_{l−1}, NTT form in and out.
fn ref_rescale(ctx: &RingContext, x: &RnsPoly) -> RnsPoly {
    let basis = x.basis();
    let last = basis.q - 1;
    let q_last = ctx.q()[last];
    let half = q_last.value() / 2;
    let mut r = x.limb(last).to_vec();
    ctx.ntt_table(basis, last).inverse_scalar(&mut r);
    r.iter_mut().for_each(|v| *v = q_last.add(*v, half));
    let out_basis = Basis::level(last - 1);
    let mut out = x.restricted(out_basis);
    for i in 0..last {
        let m = ctx.q()[i];
        let h = m.reduce(half);
        let mut tmp: Vec<u64> = r.iter().map(|&v| m.sub(m.reduce(v), h)).collect();
        ctx.ntt_table(out_basis, i).forward_scalar(&mut tmp);
        let inv = m.inv(m.reduce(q_last.value())).unwrap();
        let inv_s = m.shoup(inv);
        for (o, &t) in out.limb_mut(i).iter_mut().zip(&tmp) {
            *o = m.mul_shoup(m.sub(*o, t), inv, inv_s);
        }
    }
    out
}

/// Σ_j σ(digit_j)·key_j for both halves (σ a permutation of the NTT slots, or none).
fn ref_inner_product(
    ctx: &RingContext,
    digits: &[RnsPoly],
    key: &[[RnsPoly; 2]],
    perm: Option<&[u32]>,
) -> [RnsPoly; 2] {
    let basis = digits[0].basis();
    let key_q = key[0][0].basis().q;
    let mut out = [
        RnsPoly::zero(ctx.n(), basis, true),
        RnsPoly::zero(ctx.n(), basis, true),
    ];
    for limb in 0..basis.len() {
        let m = ctx.modulus(basis, limb);
        let key_limb = if basis.is_special(limb) {
            key_q + limb - basis.q
        } else {
            limb
        };
        for i in 0..ctx.n() {
            let src = perm.map_or(i, |p| p[i] as usize);
            let (mut a0, mut a1) = (0u128, 0u128);
            for (d, k) in digits.iter().zip(key) {
                let x = d.limb(limb)[src] as u128;
                a0 += x * k[0].limb(key_limb)[i] as u128;
                a1 += x * k[1].limb(key_limb)[i] as u128;
            }
            out[0].limb_mut(limb)[i] = m.reduce_u128(a0);
            out[1].limb_mut(limb)[i] = m.reduce_u128(a1);
        }
    }
    out
}

fn ref_permute(p: &RnsPoly, perm: &[u32]) -> RnsPoly {
    let mut out = p.clone();
    for (dst, src) in out.limbs_mut().zip(p.limbs()) {
        for (d, &k) in dst.iter_mut().zip(perm) {
            *d = src[k as usize];
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pointwise_arithmetic_is_bit_exact() {
    let mut rng = rng();
    for &(log_n, q_bits, p_bits, _) in &SHAPES {
        let ctx = context(log_n, q_bits, p_bits);
        let basis = ctx.full_basis();
        let ms = moduli(&ctx, basis);
        let a = random_poly(&mut rng, &ctx, basis, true);
        let b = random_poly(&mut rng, &ctx, basis, true);
        let mut b_rev = b.clone();
        b_rev.limbs_mut().for_each(|l| l.reverse());
        let c = random_poly(&mut rng, &ctx, basis, true);
        let residues: Vec<u64> = ms
            .iter()
            .map(|m| sampling::uniform_below(&mut rng, m.value()))
            .collect();
        let at = |p: &RnsPoly, i: usize, k: usize| p.limb(i)[k];
        for name in ["add", "sub", "neg", "mul", "mul_add", "mul_scalar"] {
            let mut got = a.clone();
            match name {
                "add" => arith::add_assign(&ctx, &mut got, &b_rev),
                "sub" => arith::sub_assign(&ctx, &mut got, &b_rev),
                "neg" => arith::neg_assign(&ctx, &mut got),
                "mul" => arith::mul_assign(&ctx, &mut got, &b_rev),
                "mul_add" => arith::mul_add_assign(&ctx, &mut got, &b, &c),
                _ => arith::mul_scalar_assign(&ctx, &mut got, &residues),
            }
            let mut want = a.clone();
            for (i, l) in want.limbs_mut().enumerate() {
                let m = &ms[i];
                for (k, x) in l.iter_mut().enumerate() {
                    *x = match name {
                        "add" => m.add(*x, at(&b_rev, i, k)),
                        "sub" => m.sub(*x, at(&b_rev, i, k)),
                        "neg" => m.neg(*x),
                        "mul" => m.mul(*x, at(&b_rev, i, k)),
                        "mul_add" => m.mul_add(at(&b, i, k), at(&c, i, k), *x),
                        _ => m.mul_shoup(*x, residues[i], m.shoup(residues[i])),
                    };
                }
            }
            assert!(
                got == want,
                "{name}: log N {log_n} q {q_bits:?} p {p_bits:?}"
            );
        }
    }
}

#[test]
fn base_conversion_is_bit_exact() {
    let mut rng = rng();
    for &(log_n, q_bits, p_bits, alpha) in &SHAPES {
        let ctx = context(log_n, q_bits, p_bits);
        let basis = ctx.full_basis();
        let ms = moduli(&ctx, basis);
        let mut x = random_poly(&mut rng, &ctx, basis, false);
        // Digits of Q (alpha primes) → the rest, and P → Q.
        let q_count = basis.q;
        let mut groups: Vec<Vec<usize>> = (0..q_count)
            .step_by(alpha)
            .map(|s| (s..(s + alpha).min(q_count)).collect())
            .collect();
        groups.push((q_count..basis.len()).collect());
        for limbs in &groups {
            put_half_product(&mut x, &ms, limbs, 3);
            let from: Vec<Modulus> = limbs.iter().map(|&i| ms[i]).collect();
            let to: Vec<Modulus> = (0..basis.len())
                .filter(|i| !limbs.contains(i))
                .map(|i| ms[i])
                .collect();
            let input: Vec<&[u64]> = limbs.iter().map(|&i| x.limb(i)).collect();
            let want = ref_convert(&from, &to, &input);
            let mut got = vec![vec![0u64; ctx.n()]; to.len()];
            let mut outs: Vec<&mut [u64]> = got.iter_mut().map(Vec::as_mut_slice).collect();
            BaseConverter::new(&from, &to).convert(&input, &mut outs);
            assert!(got == want, "log N {log_n} from limbs {limbs:?}");
        }
    }
}

#[test]
fn mod_up_mod_down_and_rescale_are_bit_exact() {
    let mut rng = rng();
    for &(log_n, q_bits, p_bits, alpha) in &SHAPES {
        let ctx = context(log_n, q_bits, p_bits);
        let ext = BasisExtender::new(&ctx, alpha);
        let q_ms = moduli(&ctx, Basis::level(ctx.max_level()));
        for level in 0..ctx.q().len() {
            let mut c_coeff = random_poly(&mut rng, &ctx, Basis::level(level), false);
            for start in (0..=level).step_by(alpha) {
                let limbs: Vec<usize> = (start..(start + alpha).min(level + 1)).collect();
                put_half_product(&mut c_coeff, &q_ms, &limbs, 3);
            }
            let mut c_ntt = c_coeff.clone();
            ntt_scalar(&ctx, &mut c_ntt, true);
            for digit in 0..ext.digit_count(level) {
                let limbs = (digit * alpha, ((digit + 1) * alpha).min(level + 1));
                assert!(
                    ext.mod_up(&ctx, &c_coeff, &c_ntt, digit)
                        == ref_mod_up(&ctx, &c_coeff, &c_ntt, limbs),
                    "ModUp: log N {log_n} level {level} digit {digit}"
                );
            }
            // ModDown of an input whose P part sits around ±P/2 in places.
            let ext_basis = Basis::new(level + 1, ctx.p().len());
            let mut x = random_poly(&mut rng, &ctx, ext_basis, false);
            let p_limbs: Vec<usize> = (level + 1..ext_basis.len()).collect();
            put_half_product(&mut x, &moduli(&ctx, ext_basis), &p_limbs, 3);
            ntt_scalar(&ctx, &mut x, true);
            assert!(
                ext.mod_down(&ctx, &x) == ref_mod_down(&ctx, &x),
                "ModDown: log N {log_n} level {level}"
            );
            if level >= 1 {
                assert!(
                    rescale(&ctx, &c_ntt) == ref_rescale(&ctx, &c_ntt),
                    "rescale: log N {log_n} level {level}"
                );
            }
        }
    }
}

#[test]
fn inner_product_and_automorphism_are_bit_exact() {
    let mut rng = rng();
    for &(log_n, q_bits, p_bits, alpha) in &SHAPES {
        let ctx = Arc::new(context(log_n, q_bits, p_bits));
        let backend = CpuBackend::new(ctx.clone(), alpha);
        let full = ctx.full_basis();
        let key_digits = full.q.div_ceil(alpha);
        let key: Vec<[RnsPoly; 2]> = (0..key_digits)
            .map(|_| {
                [
                    random_poly(&mut rng, &ctx, full, true),
                    random_poly(&mut rng, &ctx, full, true),
                ]
            })
            .collect();
        for level in [0, ctx.max_level()] {
            let basis = Basis::new(level + 1, ctx.p().len());
            let digits: Vec<RnsPoly> = (0..(level + 1).div_ceil(alpha))
                .map(|_| random_poly(&mut rng, &ctx, basis, true))
                .collect();
            for galois in [None, Some(5), Some(2 * ctx.n() as u64 - 1)] {
                let perm = galois.map(|g| automorphism::automorphism_ntt_permutation(ctx.n(), g));
                let got = backend.key_switch_inner_product(&digits, &key, galois);
                let want = ref_inner_product(&ctx, &digits, &key, perm.as_deref());
                assert!(got == want, "log N {log_n} level {level} galois {galois:?}");
                if let (Some(g), Some(perm)) = (galois, &perm) {
                    assert!(backend.automorphism(&digits[0], g) == ref_permute(&digits[0], perm));
                }
            }
        }
    }
}

/// A whole rotation (decomposition, inner product with the automorphism folded in, two
/// ModDowns, automorphism of c0) on the N = 2^13 preset against the reference chain.
#[test]
fn rotation_is_bit_exact() {
    let params = Params::new(ParamSpec::n13_depth2()).unwrap();
    let ctx = params.ring().clone();
    let mut keygen = KeyGenerator::new(&params).unwrap();
    let encoder = Encoder::new(params.n()).unwrap();
    let mut encryptor = SymmetricEncryptor::new(&params, keygen.secret_key()).unwrap();
    let level = params.max_level();
    let values: Vec<f64> = (0..params.slots()).map(|i| (i as f64).sin()).collect();
    let scale = params.default_scale();
    let poly = encoder
        .encode(&ctx, &values, scale, Basis::level(level))
        .unwrap();
    let ct: Ciphertext = encryptor
        .encrypt(&Plaintext { poly, level, scale })
        .unwrap();
    let step = 3;
    let g = rotation_element(step, params.n());
    let key = keygen.galois_key(g).unwrap();
    let mut evaluator = Evaluator::cpu(&params);
    let mut keys = EvaluationKeys {
        params_id: params.id(),
        ..Default::default()
    };
    keys.galois.insert(g, key.clone());
    evaluator.set_keys(&keys).unwrap();
    let got = evaluator.rotate(&ct, step).unwrap();

    // Reference: decompose c1 digit by digit (one prime each), inner product with σ_g, ModDown.
    let alpha = params.alpha();
    let mut c1_coeff = ct.c1.clone();
    ntt_scalar(&ctx, &mut c1_coeff, false);
    let digits: Vec<RnsPoly> = (0..=level)
        .step_by(alpha)
        .map(|s| ref_mod_up(&ctx, &c1_coeff, &ct.c1, (s, (s + alpha).min(level + 1))))
        .collect();
    let perm = automorphism::automorphism_ntt_permutation(params.n(), g);
    let [x0, x1] = ref_inner_product(&ctx, &digits, &key.digits, Some(&perm));
    let mut c0 = ref_mod_down(&ctx, &x0);
    let c1 = ref_mod_down(&ctx, &x1);
    let rotated_c0 = ref_permute(&ct.c0, &perm);
    for (i, (o, r)) in c0.limbs_mut().zip(rotated_c0.limbs()).enumerate() {
        let m = ctx.q()[i];
        o.iter_mut().zip(r).for_each(|(o, &r)| *o = m.add(*o, r));
    }
    assert!(
        got.c0 == c0 && got.c1 == c1,
        "rotation differs from the reference"
    );
}
