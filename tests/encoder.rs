//! CKKS encoder/decoder and exact CRT decoding.
//!
//! Round-trip error bound. For slots z (max |z_j| = A), the encoder computes w = IFFT(z)
//! (w_i = m_i + i·m_(i+N/2)) and rounds Δ·w to integers, an error of at most 1/2 per real
//! coefficient, i.e. |e_i| ≤ √2/(2Δ) per complex w_i. Decoding sums N/2 such terms per slot, so
//! the quantisation error is at most (N/2)·√2/(2Δ) = N/(2√2·Δ). The two FFTs add f64 error of
//! order log2(N)·2^-53·‖z‖₂ ≤ log2(N)·√N·2^-53·A (allowing a constant of 8). Hence
//!
//!     max_j |decode(encode(z))_j − z_j| ≤ N/(2√2·Δ) + 8·log2(N)·√N·2^-53·A.
//!
//! (The measured errors are far smaller: the rounding errors are not aligned, so they grow
//! like √N, not N.)

use helora::ckks::{conjugation_element, rotation_element, Complex, EncodeError, Encoder};
use helora::math::{ntt_primes, Modulus};
use helora::ring::{centered_coefficients_f64, Basis, CrtError, RingContext, RnsPoly};
use num_bigint::{BigInt, BigUint};
use num_traits::{FromPrimitive, One, Signed, ToPrimitive, Zero};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// ---------------------------------------------------------------- helpers

fn ring(n: usize, limbs: usize, bits: u32) -> RingContext {
    RingContext::new(n, &ntt_primes(bits, n, limbs, &[]).unwrap(), &[]).unwrap()
}

fn round_trip_bound(n: usize, scale: f64, max_abs: f64) -> f64 {
    let log_n = n.trailing_zeros() as f64;
    n as f64 / (2.0 * 2f64.sqrt() * scale)
        + 8.0 * log_n * (n as f64).sqrt() * 2f64.powi(-53) * max_abs
}

fn random_complex(rng: &mut ChaCha8Rng, len: usize, amplitude: f64) -> Vec<Complex> {
    (0..len)
        .map(|_| {
            Complex::new(
                rng.random_range(-amplitude..amplitude),
                rng.random_range(-amplitude..amplitude),
            )
        })
        .collect()
}

fn max_abs(v: &[Complex]) -> f64 {
    v.iter().map(|z| z.abs()).fold(0.0, f64::max)
}

fn max_err(got: &[Complex], want: &[Complex]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(a, b)| (*a - *b).abs())
        .fold(0.0, f64::max)
}

fn to_coeff_form(ctx: &RingContext, poly: &RnsPoly) -> RnsPoly {
    let mut out = poly.clone();
    if out.ntt_form {
        let basis = out.basis();
        for (limb, data) in out.limbs_mut().enumerate() {
            ctx.ntt_table(basis, limb).inverse(data);
        }
        out.ntt_form = false;
    }
    out
}

/// m(X) → m(X^g) on a coefficient-form poly: X^i → ±X^(i·g mod N), negated when
/// i·g mod 2N ≥ N since X^N = −1.
fn automorphism(ctx: &RingContext, poly: &RnsPoly, g: u64) -> RnsPoly {
    assert!(!poly.ntt_form);
    let n = poly.n();
    let basis = poly.basis();
    let mut out = RnsPoly::zero(n, basis, false);
    for limb in 0..basis.len() {
        let m = ctx.modulus(basis, limb);
        let src = poly.limb(limb).to_vec();
        let dst = out.limb_mut(limb);
        for (i, &a) in src.iter().enumerate() {
            let t = (i as u64 * g % (2 * n as u64)) as usize;
            if t < n {
                dst[t] = a;
            } else {
                dst[t - n] = m.neg(a);
            }
        }
    }
    out
}

/// ζ^k = exp(iπk/N) for k < 2N.
fn zeta_powers(n: usize) -> Vec<Complex> {
    (0..2 * n)
        .map(|k| {
            let (s, c) = (std::f64::consts::PI * k as f64 / n as f64).sin_cos();
            Complex::new(c, s)
        })
        .collect()
}

/// The slot exponents 5^j mod 2N, j < N/2.
fn rotation_group(n: usize) -> Vec<usize> {
    let mut g = 1;
    (0..n / 2)
        .map(|_| {
            let r = g;
            g = g * 5 % (2 * n);
            r
        })
        .collect()
}

// ---------------------------------------------------------------- FFT vs naive embedding

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// Encoding against the naive inverse embedding m_i = (2/N)·Re Σ_j z_j·ζ^(−5^j·i).
    /// |z_j| ≤ √2 and Δ = 2^30: both f64 computations are off by ≲ N·2^-50·Δ < 2^-7 at
    /// N = 2^13, so each integer coefficient is within 1/2 + 2^-7 of Δ·m_i (bound: 0.51).
    #[test]
    fn encoding_matches_naive_inverse_embedding(seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for log_n in 10..=13 {
            let n = 1usize << log_n;
            let ctx = ring(n, 2, 50);
            let enc = Encoder::new(n).unwrap();
            let scale = 2f64.powi(30);
            let z = random_complex(&mut rng, n / 2, 1.0);
            let poly = enc.encode_complex(&ctx, &z, scale, Basis::level(1)).unwrap();
            prop_assert!(poly.ntt_form);
            let coeffs = centered_coefficients_f64(&ctx, &poly).unwrap();

            let zeta = zeta_powers(n);
            let group = rotation_group(n);
            let mut worst: f64 = 0.0;
            for (i, &c) in coeffs.iter().enumerate() {
                let mut acc = 0.0;
                for (zj, &g) in z.iter().zip(&group) {
                    // ζ^(−g·i) = conj(ζ^(g·i)).
                    acc += (*zj * zeta[g * i % (2 * n)].conj()).re;
                }
                worst = worst.max((c - acc * 2.0 / n as f64 * scale).abs());
            }
            prop_assert!(worst <= 0.51, "N = {n}: coefficient off by {worst}");
        }
    }

    /// Decoding against naive evaluation of the polynomial at ζ^(5^j): random coefficients
    /// of magnitude ≤ Δ = 2^40 (so m_i ≤ 1); the naive N-term sums are within N·2^-50.
    #[test]
    fn decoding_matches_naive_evaluation(seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for log_n in 10..=13 {
            let n = 1usize << log_n;
            let ctx = ring(n, 2, 50);
            let enc = Encoder::new(n).unwrap();
            let scale = 2f64.powi(40);
            let ints: Vec<i64> = (0..n).map(|_| rng.random_range(-(1i64 << 40)..=(1i64 << 40))).collect();
            let basis = Basis::level(1);
            let mut data = Vec::with_capacity(2 * n);
            for limb in 0..2 {
                let m = ctx.modulus(basis, limb);
                data.extend(ints.iter().map(|&c| m.from_i64(c)));
            }
            let poly = RnsPoly::from_data(n, basis, false, data).unwrap();
            let got = enc.decode_complex(&ctx, &poly, scale).unwrap();

            let zeta = zeta_powers(n);
            let want: Vec<Complex> = rotation_group(n)
                .iter()
                .map(|&g| {
                    let mut acc = Complex::ZERO;
                    for (i, &c) in ints.iter().enumerate() {
                        acc += zeta[g * i % (2 * n)].scale(c as f64 / scale);
                    }
                    acc
                })
                .collect();
            let err = max_err(&got, &want);
            prop_assert!(err <= n as f64 * 2f64.powi(-50), "N = {n}: slot off by {err}");
        }
    }
}

// ---------------------------------------------------------------- round trips

/// Encodes and decodes `z` over `limbs` 50-bit primes; returns (error, bound).
fn round_trip(n: usize, limbs: usize, scale: f64, z: &[Complex]) -> (f64, f64) {
    let ctx = ring(n, limbs, 50);
    let enc = Encoder::new(n).unwrap();
    let basis = Basis::level(limbs - 1);
    let poly = enc.encode_complex(&ctx, z, scale, basis).unwrap();
    let got = enc.decode_complex(&ctx, &poly, scale).unwrap();
    // Zero padding decodes to zeros.
    let mut want = z.to_vec();
    want.resize(n / 2, Complex::ZERO);
    (max_err(&got, &want), round_trip_bound(n, scale, max_abs(z)))
}

/// Every N in 2^12 … 2^16 with 1, 3 and 20 limbs; 1 limb (Q ≈ 2^50) holds Δ ≤ 2^45 with |z| ≤ √2.
#[test]
fn round_trip_grid() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for log_n in 12..=16 {
        let n = 1usize << log_n;
        for (limbs, scale_bits) in [(1, 40), (3, 50), (20, 30)] {
            let scale = 2f64.powi(scale_bits);
            let z = random_complex(&mut rng, n / 2, 1.0);
            let (err, bound) = round_trip(n, limbs, scale, &z);
            eprintln!("N = 2^{log_n}, {limbs} limbs, Δ = 2^{scale_bits}: error {err:.3e}, bound {bound:.3e}");
            assert!(
                err <= bound,
                "N = 2^{log_n}, {limbs} limbs: {err} > {bound}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn round_trip_random(
        log_n in 12u32..=16,
        limbs_idx in 0usize..3,
        scale_bits in 30i32..=50,
        real: bool,
        len_frac in 0.0f64..=1.0,
        seed: u64,
    ) {
        let n = 1usize << log_n;
        let limbs = [1, 3, 20][limbs_idx];
        let scale_bits = if limbs == 1 { scale_bits.min(45) } else { scale_bits };
        let scale = 2f64.powi(scale_bits);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let len = ((n / 2) as f64 * len_frac) as usize;
        let mut z = random_complex(&mut rng, len, 1.0);
        if real {
            let ctx = ring(n, limbs, 50);
            let enc = Encoder::new(n).unwrap();
            let values: Vec<f64> = z.iter().map(|c| c.re).collect();
            let poly = enc.encode(&ctx, &values, scale, Basis::level(limbs - 1)).unwrap();
            let got = enc.decode_complex(&ctx, &poly, scale).unwrap();
            z = values.iter().map(|&v| Complex::from(v)).collect();
            z.resize(n / 2, Complex::ZERO);
            let bound = round_trip_bound(n, scale, max_abs(&z));
            prop_assert!(max_err(&got, &z) <= bound);
            // A real input decodes to (almost) real slots; `decode` returns the real parts.
            let re = enc.decode(&ctx, &poly, scale).unwrap();
            prop_assert!(re.iter().zip(&z).all(|(r, w)| (r - w.re).abs() <= bound));
        } else {
            let (err, bound) = round_trip(n, limbs, scale, &z);
            prop_assert!(err <= bound, "{err} > {bound}");
        }
    }
}

/// Δ = 2^80 and |z| up to 2^10·√2: coefficients reach ~2^85, past i64, and need the exact
/// i128 path when encoding and the multi-limb CRT when decoding (Q ≈ 2^100 or 2^200).
#[test]
fn wide_coefficients_round_trip() {
    let mut rng = ChaCha8Rng::seed_from_u64(80);
    for limbs in [2, 4] {
        let n = 1 << 12;
        let ctx = ring(n, limbs, 50);
        let enc = Encoder::new(n).unwrap();
        let scale = 2f64.powi(80);
        let z = random_complex(&mut rng, n / 2, 1024.0);
        let poly = enc
            .encode_complex(&ctx, &z, scale, Basis::level(limbs - 1))
            .unwrap();
        let biggest = centered_coefficients_f64(&ctx, &poly)
            .unwrap()
            .iter()
            .fold(0.0f64, |a, c| a.max(c.abs()));
        assert!(
            biggest > 2f64.powi(63),
            "coefficients stayed below 2^63: {biggest:e}"
        );
        let got = enc.decode_complex(&ctx, &poly, scale).unwrap();
        let (err, bound) = (max_err(&got, &z), round_trip_bound(n, scale, max_abs(&z)));
        eprintln!("wide, {limbs} limbs: max coefficient {biggest:.3e}, error {err:.3e}, bound {bound:.3e}");
        assert!(err <= bound, "{err} > {bound}");
    }
}

/// Coefficient-form input decodes the same as NTT-form input; the input is left untouched.
#[test]
fn decode_accepts_both_domains() {
    let n = 1 << 12;
    let ctx = ring(n, 3, 50);
    let enc = Encoder::new(n).unwrap();
    let z = random_complex(&mut ChaCha8Rng::seed_from_u64(3), n / 2, 1.0);
    let poly = enc
        .encode_complex(&ctx, &z, 2f64.powi(40), Basis::level(2))
        .unwrap();
    let copy = poly.clone();
    let from_ntt = enc.decode_complex(&ctx, &poly, 2f64.powi(40)).unwrap();
    assert_eq!(poly, copy);
    let from_coeff = enc
        .decode_complex(&ctx, &to_coeff_form(&ctx, &poly), 2f64.powi(40))
        .unwrap();
    assert_eq!(from_ntt, from_coeff);
}

// ---------------------------------------------------------------- slot order

#[test]
fn galois_automorphisms_rotate_and_conjugate_slots() {
    let n = 1 << 12;
    let slots = n / 2;
    let ctx = ring(n, 3, 50);
    let enc = Encoder::new(n).unwrap();
    let scale = 2f64.powi(40);
    let z = random_complex(&mut ChaCha8Rng::seed_from_u64(11), slots, 1.0);
    let poly = to_coeff_form(
        &ctx,
        &enc.encode_complex(&ctx, &z, scale, Basis::level(2))
            .unwrap(),
    );
    let bound = round_trip_bound(n, scale, max_abs(&z));

    for step in [
        1i64,
        2,
        5,
        100,
        slots as i64 - 1,
        slots as i64 + 3,
        -1,
        -7,
        -(slots as i64) - 2,
    ] {
        let g = rotation_element(step, n);
        let got = enc
            .decode_complex(&ctx, &automorphism(&ctx, &poly, g), scale)
            .unwrap();
        let shift = step.rem_euclid(slots as i64) as usize;
        let want: Vec<Complex> = (0..slots).map(|j| z[(j + shift) % slots]).collect();
        let err = max_err(&got, &want);
        assert!(err <= bound, "step {step}: {err} > {bound}");
    }

    let g = conjugation_element(n);
    let got = enc
        .decode_complex(&ctx, &automorphism(&ctx, &poly, g), scale)
        .unwrap();
    let want: Vec<Complex> = z.iter().map(|c| c.conj()).collect();
    assert!(max_err(&got, &want) <= bound);
}

// ---------------------------------------------------------------- CRT against num-bigint

/// CRT-reconstructs and centres with big integers.
fn crt_reference(residues: &[u64], primes: &[u64]) -> BigInt {
    let q: BigUint = primes.iter().map(|&p| BigUint::from(p)).product();
    let mut x = BigUint::zero();
    for (&r, &p) in residues.iter().zip(primes) {
        let q_hat = &q / p;
        let m = Modulus::new(p).unwrap();
        let q_hat_inv = m.inv((&q_hat % p).to_u64().unwrap()).unwrap();
        x += q_hat * m.mul(r, q_hat_inv);
    }
    x %= &q;
    // (Q − 1)/2, Q odd.
    if x > (&q >> 1) {
        BigInt::from(x) - BigInt::from(q)
    } else {
        BigInt::from(x)
    }
}

/// `got` is the nearest f64 of `exact`: bit-equal to num-bigint's (round-to-odd, then nearest)
/// conversion, and independently within half an ulp of it, or ±∞ beyond the f64 range.
fn assert_nearest(exact: &BigInt, got: f64) {
    let reference = exact.to_f64().unwrap();
    assert_eq!(
        got.to_bits(),
        reference.to_bits(),
        "{exact}: got {got:e}, reference {reference:e}"
    );
    if got.is_infinite() {
        assert!(exact.bits() >= 1024);
        assert_eq!(got > 0.0, exact.is_positive());
        return;
    }
    let diff = (exact - BigInt::from_f64(got).unwrap()).abs();
    // 2^(e−1) ≤ |got| < 2^e; values below 2^53 are exact.
    let e = ((got.to_bits() >> 52) & 0x7ff) as i64 - 1022;
    if e <= 53 {
        assert!(diff.is_zero(), "{exact} is not exact: {got}");
    } else {
        assert!(
            diff << 1usize <= BigInt::one() << (e - 53) as usize,
            "{exact}: {got:e} is more than ½ ulp off"
        );
    }
}

/// Residues of a signed integer.
fn residues_of(x: &BigInt, primes: &[u64]) -> Vec<u64> {
    primes.iter().map(|&p| x.mod_floor_u64(p)).collect()
}

trait ModFloor {
    fn mod_floor_u64(&self, p: u64) -> u64;
}

impl ModFloor for BigInt {
    fn mod_floor_u64(&self, p: u64) -> u64 {
        let p = BigInt::from(p);
        (((self % &p) + &p) % &p).to_u64().unwrap()
    }
}

/// A poly over `q_primes` (then `p_primes`) whose coefficients are: random residues, values
/// next to ±(Q−1)/2 and small values, checked coefficient by coefficient.
fn check_crt(q_primes: &[u64], p_primes: &[u64], seed: u64) {
    let n = 1024;
    let ctx = RingContext::new(n, q_primes, p_primes).unwrap();
    let basis = Basis::new(q_primes.len(), p_primes.len());
    let primes: Vec<u64> = q_primes.iter().chain(p_primes).copied().collect();
    let q: BigInt = primes.iter().map(|&p| BigInt::from(p)).product();
    let half = (&q - 1) >> 1usize;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let mut columns: Vec<Vec<u64>> = Vec::with_capacity(n);
    for i in 0..n {
        let t = BigInt::from(rng.random_range(0..1000u64));
        let column = match i % 8 {
            0 => residues_of(&(&half - &t), &primes),
            1 => residues_of(&(-&half + &t), &primes),
            2 => residues_of(&t, &primes),
            3 => residues_of(&-&t, &primes),
            _ => primes.iter().map(|&p| rng.random_range(0..p)).collect(),
        };
        columns.push(column);
    }
    let mut data = vec![0u64; n * primes.len()];
    for (i, column) in columns.iter().enumerate() {
        for (limb, &r) in column.iter().enumerate() {
            data[limb * n + i] = r;
        }
    }
    let poly = RnsPoly::from_data(n, basis, false, data).unwrap();
    let got = centered_coefficients_f64(&ctx, &poly).unwrap();
    for (column, &g) in columns.iter().zip(&got) {
        assert_nearest(&crt_reference(column, &primes), g);
    }

    // The same poly in NTT form gives the same values.
    let mut ntt = poly.clone();
    for (limb, d) in ntt.limbs_mut().enumerate() {
        ctx.ntt_table(basis, limb).forward(d);
    }
    ntt.ntt_form = true;
    assert_eq!(centered_coefficients_f64(&ctx, &ntt).unwrap(), got);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    #[test]
    fn crt_matches_bigint(seed: u64) {
        for (limbs, bits) in [(1, 62), (1, 30), (2, 62), (2, 50), (5, 62), (5, 40), (30, 30), (30, 62)] {
            let primes = ntt_primes(bits, 1024, limbs, &[]).unwrap();
            check_crt(&primes, &[], seed);
        }
        // Special primes count too.
        let q = ntt_primes(50, 1024, 3, &[]).unwrap();
        let p = ntt_primes(61, 1024, 2, &[]).unwrap();
        check_crt(&q, &p, seed);
    }
}

#[test]
fn crt_rejects_foreign_polys() {
    let ctx = ring(1024, 2, 50);
    let too_many = RnsPoly::zero(1024, Basis::new(3, 0), false);
    assert_eq!(
        centered_coefficients_f64(&ctx, &too_many),
        Err(CrtError::BasisNotInContext(Basis::new(3, 0)))
    );
    let wrong_n = RnsPoly::zero(2048, Basis::new(1, 0), false);
    assert_eq!(
        centered_coefficients_f64(&ctx, &wrong_n),
        Err(CrtError::DegreeMismatch {
            poly: 2048,
            ring: 1024
        })
    );
}

// ---------------------------------------------------------------- bad inputs

#[test]
fn bad_inputs_are_errors() {
    let n = 1 << 10;
    let ctx = ring(n, 2, 50);
    let enc = Encoder::new(n).unwrap();
    let basis = Basis::level(1);
    let scale = 2f64.powi(30);

    let with_nan = [1.0, f64::NAN, 2.0];
    assert_eq!(
        enc.encode(&ctx, &with_nan, scale, basis).unwrap_err(),
        EncodeError::NonFiniteValue { index: 1 }
    );
    let with_inf = [Complex::new(0.0, f64::INFINITY)];
    assert_eq!(
        enc.encode_complex(&ctx, &with_inf, scale, basis)
            .unwrap_err(),
        EncodeError::NonFiniteValue { index: 0 }
    );
    let too_many = vec![0.5; n / 2 + 1];
    assert_eq!(
        enc.encode(&ctx, &too_many, scale, basis).unwrap_err(),
        EncodeError::TooManyValues {
            given: n / 2 + 1,
            slots: n / 2
        }
    );
    for bad in [0.0, -1.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(matches!(
            enc.encode(&ctx, &[1.0], bad, basis),
            Err(EncodeError::InvalidScale(_))
        ));
    }

    // Coefficients too large for the i128 path, or ∞ after scaling.
    assert_eq!(
        enc.encode(&ctx, &[1e6], 2f64.powi(126), basis).unwrap_err(),
        EncodeError::Overflow
    );
    assert_eq!(
        enc.encode(&ctx, &[1e300], 1e300, basis).unwrap_err(),
        EncodeError::Overflow
    );
    // Coefficients that fit i128 but wrap modulo Q ≈ 2^100.
    assert!(matches!(
        enc.encode(&ctx, &[1.0; 4], 2f64.powi(110), basis),
        Err(EncodeError::ExceedsModulus {
            modulus_bits: 100,
            ..
        })
    ));

    // Mismatched rings, bases and polys.
    assert_eq!(
        Encoder::new(2 * n)
            .unwrap()
            .encode(&ctx, &[1.0], scale, basis)
            .unwrap_err(),
        EncodeError::RingMismatch {
            encoder: 2 * n,
            ring: n
        }
    );
    assert_eq!(
        enc.encode(&ctx, &[1.0], scale, Basis::new(3, 0))
            .unwrap_err(),
        EncodeError::BasisNotInContext(Basis::new(3, 0))
    );
    let poly = enc.encode(&ctx, &[1.0], scale, basis).unwrap();
    for bad in [0.0, -2.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            enc.decode(&ctx, &poly, bad),
            Err(EncodeError::InvalidScale(_))
        ));
    }
    let foreign = RnsPoly::zero(n, Basis::new(3, 0), true);
    assert!(matches!(
        enc.decode(&ctx, &foreign, scale),
        Err(EncodeError::Crt(CrtError::BasisNotInContext(_)))
    ));
    let wrong_n = RnsPoly::zero(2 * n, basis, true);
    assert_eq!(
        enc.decode(&ctx, &wrong_n, scale).unwrap_err(),
        EncodeError::PolyDegree {
            poly: 2 * n,
            encoder: n
        }
    );

    // An empty input encodes the zero polynomial.
    let zero = enc.encode(&ctx, &[], scale, basis).unwrap();
    assert!(zero.data().iter().all(|&x| x == 0));
}
