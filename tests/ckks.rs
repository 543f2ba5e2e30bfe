//! Every CKKS operation against an f64 reference on fresh random inputs.
//!
//! Error bounds (max absolute slot error, inputs uniform in [-1, 1], N = 2^13, Δ = 2^40):
//! - fresh encryption: public-key noise e·u + e0 + e1·s has coefficient std ≈ σ·√(2N/3)
//!   ≈ 240; the embedding multiplies by ≈ √(N/2) and decoding divides by Δ, so slot std
//!   ≈ 1.4e-8 and the max over 4096 slots ≈ 1e-7 → bound [`FRESH`] = 1e-6 (seeded symmetric
//!   encryption has only e: ≈ 1e-9);
//! - add / sub / negate / ×integer / rotate / conjugate: a key switch with centered digits
//!   adds ≈ √N·σ·q_j/(√3·P) per coefficient and digit (q_j ≈ P here), the same order as
//!   fresh noise → bound [`LINEAR`] = 1e-6 (measured ≈ 3e-8);
//! - ×plaintext, ×scalar or ×ciphertext, then rescale: noise·value terms shrink by the
//!   rescale, plus rounding ≈ √N/Δ, and in sums of rotated products the rotations' key
//!   switches → bound [`PRODUCT`] = 1e-6 (measured ≈ 1e-8 for one product, ≈ 4e-8 for the
//!   hoisted linear combinations).
//!
//! Each test prints its measured errors (run with --nocapture).

use helora::ckks::*;
use helora::math::sampling;
use helora::ring::Basis;
use rand_core::RngCore;

const FRESH: f64 = 1e-6;
const LINEAR: f64 = 1e-6;
const PRODUCT: f64 = 1e-6;

struct Setup {
    params: Params,
    keygen: KeyGenerator,
    encoder: Encoder,
    encryptor: SymmetricEncryptor,
    decryptor: Decryptor,
    evaluator: Evaluator,
}

fn setup(spec: ParamSpec, rotations: &[i64]) -> Setup {
    let params = Params::new(spec).unwrap();
    let mut keygen = KeyGenerator::new(&params).unwrap();
    let keys = keygen.evaluation_keys(rotations, true).unwrap();
    let mut evaluator = Evaluator::cpu(&params);
    evaluator.set_keys(&keys).unwrap();
    Setup {
        encoder: Encoder::new(params.n()).unwrap(),
        encryptor: SymmetricEncryptor::new(&params, keygen.secret_key()).unwrap(),
        decryptor: Decryptor::new(&params, keygen.secret_key()).unwrap(),
        params,
        keygen,
        evaluator,
    }
}

fn random_values(count: usize) -> Vec<f64> {
    let mut rng = sampling::os_rng().unwrap();
    (0..count)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

impl Setup {
    fn plaintext(&self, values: &[f64], level: usize, scale: f64) -> Plaintext {
        let poly = self
            .encoder
            .encode(self.params.ring(), values, scale, Basis::level(level))
            .unwrap();
        Plaintext { poly, level, scale }
    }

    fn encrypt(&mut self, values: &[f64]) -> Ciphertext {
        let pt = self.plaintext(values, self.params.max_level(), self.params.default_scale());
        self.encryptor.encrypt(&pt).unwrap()
    }

    fn decrypt(&self, ct: &Ciphertext) -> Vec<f64> {
        let pt = self.decryptor.decrypt(ct).unwrap();
        self.encoder
            .decode(self.params.ring(), &pt.poly, pt.scale)
            .unwrap()
    }
}

fn max_error(got: &[f64], want: &[f64]) -> f64 {
    assert!(got.len() >= want.len());
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs())
        .fold(0.0, f64::max)
}

fn check(what: &str, got: &[f64], want: &[f64], bound: f64) {
    let err = max_error(got, want);
    println!("{what}: max error {err:.3e} (bound {bound:.0e})");
    assert!(err <= bound, "{what}: max error {err:e} exceeds {bound:e}");
}

fn rotated(v: &[f64], step: i64) -> Vec<f64> {
    let n = v.len() as i64;
    (0..n)
        .map(|i| v[(i + step).rem_euclid(n) as usize])
        .collect()
}

#[test]
fn encryption_round_trips_public_and_seeded() {
    let mut s = setup(ParamSpec::n13_depth2(), &[]);
    let v = random_values(s.params.slots());
    let ct = s.encrypt(&v);
    check("seeded symmetric", &s.decrypt(&ct), &v, FRESH);

    let pk = s.keygen.public_key();
    let mut enc = Encryptor::new(&s.params, pk).unwrap();
    let pt = s.plaintext(&v, s.params.max_level(), s.params.default_scale());
    check(
        "public key",
        &s.decrypt(&enc.encrypt(&pt).unwrap()),
        &v,
        FRESH,
    );

    let seeded = s.encryptor.encrypt_seeded(&pt).unwrap();
    let expanded = expand_seeded(&s.params, &seeded).unwrap();
    check("seeded, expanded", &s.decrypt(&expanded), &v, FRESH);
    // Fewer values than slots: the rest decode as zero.
    let short = random_values(100);
    let ct = s.encrypt(&short);
    let mut want = short.clone();
    want.resize(s.params.slots(), 0.0);
    check("short vector", &s.decrypt(&ct), &want, FRESH);
}

#[test]
fn linear_operations_match_f64() {
    let mut s = setup(ParamSpec::n13_depth2(), &[]);
    let (a, b) = (
        random_values(s.params.slots()),
        random_values(s.params.slots()),
    );
    let (ca, cb) = (s.encrypt(&a), s.encrypt(&b));
    let ev = &s.evaluator;
    let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    let neg: Vec<f64> = a.iter().map(|x| -x).collect();
    let times7: Vec<f64> = a.iter().map(|x| -7.0 * x).collect();
    check("add", &s.decrypt(&ev.add(&ca, &cb).unwrap()), &sum, LINEAR);
    check("sub", &s.decrypt(&ev.sub(&ca, &cb).unwrap()), &diff, LINEAR);
    check("negate", &s.decrypt(&ev.negate(&ca).unwrap()), &neg, LINEAR);
    check(
        "× integer",
        &s.decrypt(&ev.mul_integer(&ca, -7).unwrap()),
        &times7,
        LINEAR,
    );
    let pb = s.plaintext(&b, s.params.max_level(), s.params.default_scale());
    check(
        "add plaintext",
        &s.decrypt(&ev.add_plain(&ca, &pb).unwrap()),
        &sum,
        LINEAR,
    );
    // Operands at different levels are aligned to the lower one.
    let low = ev.drop_to_level(&cb, 1).unwrap();
    check(
        "add across levels",
        &s.decrypt(&ev.add(&ca, &low).unwrap()),
        &sum,
        LINEAR,
    );
    check("drop level", &s.decrypt(&low), &b, LINEAR);
}

#[test]
fn products_match_f64() {
    let mut s = setup(ParamSpec::n13_depth2(), &[]);
    let (a, b, c) = (
        random_values(s.params.slots()),
        random_values(s.params.slots()),
        random_values(s.params.slots()),
    );
    let (ca, cb, cc) = (s.encrypt(&a), s.encrypt(&b), s.encrypt(&c));
    let ev = &s.evaluator;
    let ab: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    let abc: Vec<f64> = ab.iter().zip(&c).map(|(x, y)| x * y).collect();

    let prod = ev.rescale(&ev.mul_relin(&ca, &cb).unwrap()).unwrap();
    assert_eq!(prod.level, s.params.max_level() - 1);
    check("ct × ct, rescale", &s.decrypt(&prod), &ab, PRODUCT);
    // Depth 2: the whole chain of the preset.
    let prod2 = ev.rescale(&ev.mul_relin(&prod, &cc).unwrap()).unwrap();
    assert_eq!(prod2.level, 0);
    check(
        "(ct × ct) × ct, rescale twice",
        &s.decrypt(&prod2),
        &abc,
        PRODUCT,
    );

    let pb = s.plaintext(&b, s.params.max_level(), s.params.default_scale());
    let pp = ev.rescale(&ev.mul_plain(&ca, &pb).unwrap()).unwrap();
    check("ct × pt, rescale", &s.decrypt(&pp), &ab, PRODUCT);

    let k = 0.3125_f64 * (1.0 + a[0]);
    let scaled: Vec<f64> = a.iter().map(|x| k * x).collect();
    let cs = ev.rescale(&ev.mul_scalar(&ca, k).unwrap()).unwrap();
    assert!(
        (cs.scale - ca.scale).abs() < 1e-6 * ca.scale,
        "×scalar then rescale keeps the scale"
    );
    check("ct × scalar, rescale", &s.decrypt(&cs), &scaled, PRODUCT);

    assert!(matches!(
        ev.rescale(&prod2),
        Err(CkksError::LevelTooLow { .. })
    ));
    // A product not yet rescaled is at Δ², not Δ. (After the rescale its scale is
    // Δ²/q_2, within the 10⁻⁹ tolerance of Δ for these 50-bit primes.)
    assert!(matches!(
        ev.add(&ca, &ev.mul_plain(&ca, &pb).unwrap()),
        Err(CkksError::ScaleMismatch { .. })
    ));
}

#[test]
fn every_rotation_step_matches_the_plaintext_rotation() {
    // N = 2^12: 2048 slots, every step 1 … 2047 checked, keys made in batches. 108 of the
    // 109 bits allowed; Δ = 2^30 is 2^10 below the other tests', so the bound grows by 2^10.
    let spec = ParamSpec {
        log_n: 12,
        q_bits: vec![40, 30],
        p_bits: vec![38],
        digits: 2,
        log_scale: 30,
    };
    let bound = LINEAR * 1024.0;
    let mut s = setup(spec, &[]);
    let slots = s.params.slots() as i64;
    let v = random_values(s.params.slots());
    let ct = s.encrypt(&v);
    let mut worst = 0.0f64;
    for batch in (1..slots).collect::<Vec<_>>().chunks(128) {
        let keys = s.keygen.evaluation_keys(batch, false).unwrap();
        s.evaluator.set_keys(&keys).unwrap();
        for (&step, r) in batch
            .iter()
            .zip(s.evaluator.rotate_hoisted(&ct, batch).unwrap())
        {
            let err = max_error(&s.decrypt(&r), &rotated(&v, step));
            assert!(err <= bound, "rotation by {step}: error {err:e}");
            worst = worst.max(err);
        }
    }
    println!("all {} rotation steps: worst error {worst:.3e}", slots - 1);
}

#[test]
fn single_hoisted_and_textbook_rotations_agree() {
    let steps = [1i64, 2, 3, 5, 8, 100, -1, -7, 4095];
    let mut s = setup(ParamSpec::n13_depth2(), &steps);
    let v = random_values(s.params.slots());
    let ct = s.encrypt(&v);
    let ev = &s.evaluator;
    let hoisted = ev.rotate_hoisted(&ct, &steps).unwrap();
    for (&step, h) in steps.iter().zip(&hoisted) {
        let single = ev.rotate(&ct, step).unwrap();
        // Same decomposition, same key: the single rotation is the one-step hoisted batch.
        assert_eq!(
            &single, h,
            "rotate({step}) differs from its hoisted counterpart"
        );
        let textbook = ev
            .apply_galois_unhoisted(&ct, rotation_element(step, s.params.n()))
            .unwrap();
        let want = rotated(&v, step);
        check(
            &format!("hoisted rotation by {step}"),
            &s.decrypt(h),
            &want,
            LINEAR,
        );
        check(
            &format!("textbook rotation by {step}"),
            &s.decrypt(&textbook),
            &want,
            LINEAR,
        );
        assert!(max_error(&s.decrypt(h), &s.decrypt(&textbook)) <= LINEAR);
    }
    // Rotation at a lower level, and of a product.
    let low = ev.rescale(&ev.mul_relin(&ct, &ct).unwrap()).unwrap();
    let sq: Vec<f64> = v.iter().map(|x| x * x).collect();
    check(
        "rotation after rescale",
        &s.decrypt(&ev.rotate(&low, 5).unwrap()),
        &rotated(&sq, 5),
        PRODUCT,
    );
    assert!(matches!(
        ev.rotate(&ct, 6),
        Err(CkksError::MissingGaloisKey { .. })
    ));
    assert!(matches!(
        ev.rotate_hoisted(&ct, &[1, 6]),
        Err(CkksError::MissingGaloisKey { step: Some(6), .. })
    ));
}

#[test]
fn hoisted_sum_of_rotations_matches_its_terms() {
    let steps = [8i64, 16, 24, 32, 40, 48, 56, -3];
    let mut s = setup(ParamSpec::n13_depth2(), &steps);
    let v = random_values(s.params.slots());
    let ct = s.encrypt(&v);
    let ev = &s.evaluator;
    // One ModDown for all eight steps, at the top level and after a rescale.
    let low = ev.rescale(&ev.mul_relin(&ct, &ct).unwrap()).unwrap();
    let sq: Vec<f64> = v.iter().map(|x| x * x).collect();
    for (what, x, values, bound) in [
        ("top level", &ct, &v, LINEAR),
        ("rescaled", &low, &sq, PRODUCT),
    ] {
        let mut want = values.clone();
        for &step in &steps {
            want.iter_mut()
                .zip(rotated(values, step))
                .for_each(|(w, r)| *w += r);
        }
        let sum = ev.add_rotations_hoisted(x, &steps).unwrap();
        assert_eq!((sum.level, sum.scale), (x.level, x.scale));
        // Nine terms: the bound of one rotation times the number of rotated terms.
        check(
            &format!("sum of 8 rotations, {what}"),
            &s.decrypt(&sum),
            &want,
            bound * steps.len() as f64,
        );
    }
    // One step: the same ModDown of the same inner product as a rotation, added after.
    let single = ev.add_rotations_hoisted(&ct, &[-3]).unwrap();
    assert_eq!(single, ev.add(&ct, &ev.rotate(&ct, -3).unwrap()).unwrap());
    assert_eq!(ev.add_rotations_hoisted(&ct, &[]).unwrap(), ct);
    for bad in [&[8i64, 8][..], &[8, 0], &[8, s.params.slots() as i64 + 8]] {
        assert!(
            matches!(
                ev.add_rotations_hoisted(&ct, bad),
                Err(CkksError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        ev.add_rotations_hoisted(&ct, &[8, 6]),
        Err(CkksError::MissingGaloisKey { step: Some(6), .. })
    ));
}

#[test]
fn conjugation_conjugates_complex_slots() {
    let mut s = setup(ParamSpec::n13_depth2(), &[]);
    let re = random_values(s.params.slots());
    let im = random_values(s.params.slots());
    let z: Vec<Complex> = re
        .iter()
        .zip(&im)
        .map(|(&r, &i)| Complex::new(r, i))
        .collect();
    let level = s.params.max_level();
    let poly = s
        .encoder
        .encode_complex(
            s.params.ring(),
            &z,
            s.params.default_scale(),
            Basis::level(level),
        )
        .unwrap();
    let ct = s
        .encryptor
        .encrypt(&Plaintext {
            poly,
            level,
            scale: s.params.default_scale(),
        })
        .unwrap();
    let conj = s.evaluator.conjugate(&ct).unwrap();
    let pt = s.decryptor.decrypt(&conj).unwrap();
    let got = s
        .encoder
        .decode_complex(s.params.ring(), &pt.poly, pt.scale)
        .unwrap();
    let err = got
        .iter()
        .zip(&z)
        .map(|(g, w)| (g.re - w.re).abs().max((g.im + w.im).abs()))
        .fold(0.0, f64::max);
    println!("conjugate: max error {err:.3e}");
    assert!(err <= LINEAR);
}

#[test]
fn insecure_and_invalid_parameter_sets_are_rejected() {
    // 2^13 allows 218 bits of Q·P.
    let too_big = ParamSpec {
        log_n: 13,
        q_bits: vec![60, 60, 60],
        p_bits: vec![60],
        digits: 3,
        log_scale: 40,
    };
    match Params::new(too_big) {
        Err(e @ CkksError::Insecure { .. }) => assert!(e.to_string().contains("218"), "{e}"),
        other => panic!("expected Insecure, got {other:?}"),
    }
    let at_limit = ParamSpec {
        log_n: 13,
        q_bits: vec![59, 50, 50],
        p_bits: vec![59],
        digits: 3,
        log_scale: 40,
    };
    assert_eq!(at_limit.total_modulus_bits(), 218);
    assert!(Params::new(at_limit).is_ok());
    let over_limit = ParamSpec {
        log_n: 13,
        q_bits: vec![60, 50, 50],
        p_bits: vec![59],
        digits: 3,
        log_scale: 40,
    };
    assert!(matches!(
        Params::new(over_limit),
        Err(CkksError::Insecure { .. })
    ));
    for spec in [ParamSpec::n13_depth2(), ParamSpec::n16_depth24()] {
        let bits = spec.total_modulus_bits();
        assert!(bits <= max_modulus_bits_128(spec.log_n).unwrap());
    }
    let invalid = [
        ParamSpec {
            log_n: 9,
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            log_n: 17,
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            p_bits: vec![],
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            q_bits: vec![],
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            digits: 0,
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            digits: 4,
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            q_bits: vec![63, 40],
            ..ParamSpec::n13_depth2()
        },
        ParamSpec {
            log_scale: 0,
            ..ParamSpec::n13_depth2()
        },
    ];
    for spec in invalid {
        assert!(Params::new(spec.clone()).is_err(), "accepted {spec:?}");
    }
    // Secure (1,116 bits at N = 2^16) but 16 or 17 digits of 62-bit primes overflow the
    // key switch's 128-bit accumulator (at most 7 fit).
    for digits in [8, 16, 17] {
        let spec = ParamSpec {
            log_n: 16,
            q_bits: vec![62; 17],
            p_bits: vec![62],
            digits,
            log_scale: 40,
        };
        match Params::new(spec) {
            Err(e) => assert!(e.to_string().contains("accumulator"), "{digits}: {e}"),
            Ok(_) => panic!("{digits} digits of 62-bit primes accepted"),
        }
    }
}

#[test]
fn objects_of_other_parameter_sets_are_refused() {
    let s = setup(ParamSpec::n13_depth2(), &[]);
    let other = Params::new(ParamSpec {
        q_bits: vec![50, 40],
        digits: 2,
        ..ParamSpec::n13_depth2()
    })
    .unwrap();
    assert_ne!(other.id(), s.params.id());
    assert!(matches!(
        Decryptor::new(&other, s.keygen.secret_key()),
        Err(CkksError::ParamsMismatch { .. })
    ));
    let mut ev = Evaluator::cpu(&other);
    let mut kg = KeyGenerator::new(&s.params).unwrap();
    assert!(matches!(
        ev.set_keys(&kg.evaluation_keys(&[1], false).unwrap()),
        Err(CkksError::ParamsMismatch { .. })
    ));
    // A key under an even (invalid) Galois element is refused, not used.
    let mut keys = kg.evaluation_keys(&[1], false).unwrap();
    let key = keys.galois.values().next().unwrap().clone();
    keys.galois.insert(6, key);
    let mut ev = Evaluator::cpu(&s.params);
    assert!(matches!(
        ev.set_keys(&keys),
        Err(CkksError::InvalidGaloisElement(6))
    ));
}

#[test]
fn double_hoisted_linear_combination_matches_f64() {
    let steps = [0i64, 1, 2, 3, 5, 8, -4];
    let mut s = setup(ParamSpec::n13_depth2(), &steps);
    let slots = s.params.slots();
    let v = random_values(slots);
    let ct = s.encrypt(&v);
    let level = ct.level;
    let ext_basis = Basis::new(level + 1, s.params.p_primes().len());
    let diagonals: Vec<Vec<f64>> = steps.iter().map(|_| random_values(slots)).collect();
    let plaintexts: Vec<ExtendedPlaintext> = diagonals
        .iter()
        .map(|d| {
            let poly = s
                .encoder
                .encode(s.params.ring(), d, s.params.default_scale(), ext_basis)
                .unwrap();
            s.evaluator
                .extended_plaintext(&poly, s.params.default_scale())
                .unwrap()
        })
        .collect();
    let terms: Vec<(i64, &ExtendedPlaintext)> = steps.iter().copied().zip(&plaintexts).collect();
    let out = s.evaluator.linear_combination_hoisted(&ct, &terms).unwrap();
    let out = s.evaluator.rescale(&out).unwrap();
    let mut want = vec![0.0; slots];
    for (&step, d) in steps.iter().zip(&diagonals) {
        for (i, w) in want.iter_mut().enumerate() {
            *w += d[i] * v[(i as i64 + step).rem_euclid(slots as i64) as usize];
        }
    }
    check(
        "Σ diag ⊙ rot, double hoisted",
        &s.decrypt(&out),
        &want,
        PRODUCT,
    );
    // The same sum from single rotations agrees.
    let mut reference: Option<Ciphertext> = None;
    for (&step, d) in steps.iter().zip(&diagonals) {
        let pt = s.plaintext(d, level, s.params.default_scale());
        let term = s
            .evaluator
            .mul_plain(&s.evaluator.rotate(&ct, step).unwrap(), &pt)
            .unwrap();
        reference = Some(match reference {
            None => term,
            Some(acc) => s.evaluator.add(&acc, &term).unwrap(),
        });
    }
    let reference = s.evaluator.rescale(&reference.unwrap()).unwrap();
    check(
        "Σ diag ⊙ rot, single rotations",
        &s.decrypt(&reference),
        &want,
        PRODUCT,
    );
    assert!(matches!(
        s.evaluator
            .linear_combination_hoisted(&ct, &[(6, &plaintexts[0])]),
        Err(CkksError::MissingGaloisKey { step: Some(6), .. })
    ));
}
