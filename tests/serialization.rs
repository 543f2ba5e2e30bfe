//! The binary format: round trips of every serializable type, measured sizes, and
//! rejection (never a panic) of truncated, corrupted or mismatched input.

use helora::ckks::{
    expand_seeded, Ciphertext, CkksError, Decryptor, Encryptor, EvaluationKeys, KeyGenerator,
    ParamSpec, Params, Plaintext, PublicKey, SeededCiphertext, Serializable, SwitchingKey,
    SymmetricEncryptor, FORMAT_VERSION, MAGIC,
};
use helora::ring::{arith, Basis};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Header: magic 4 + version 2 + kind 1 + parameter id 8.
const HEADER: usize = 15;
/// Polynomial header: log N 1 + q count 2 + p count 2 + NTT flag 1.
const POLY_HEADER: usize = 6;

/// N = 2^11 with one 27-bit ciphertext prime and one 27-bit special prime (54 bits: the
/// 128-bit bound): the smallest secure set, for exhaustive truncation sweeps.
fn tiny() -> Params {
    Params::new(ParamSpec {
        log_n: 11,
        q_bits: vec![27],
        p_bits: vec![27],
        digits: 1,
        log_scale: 20,
    })
    .unwrap()
}

/// N = 2^12, two levels, two digits (105 of 109 bits).
fn small() -> Params {
    Params::new(ParamSpec {
        log_n: 12,
        q_bits: vec![35, 30],
        p_bits: vec![40],
        digits: 2,
        log_scale: 30,
    })
    .unwrap()
}

fn n13() -> Params {
    Params::new(ParamSpec::n13_depth2()).unwrap()
}

/// An NTT-form plaintext at `level` whose coefficients are small signed integers.
fn plaintext(params: &Params, level: usize, seed: u64) -> Plaintext {
    let ctx = params.ring();
    let mut rng = StdRng::seed_from_u64(seed);
    let bound = 1i64 << (params.spec().log_scale.min(30));
    let coeffs: Vec<i64> = (0..params.n())
        .map(|_| rng.random_range(-bound..=bound))
        .collect();
    let mut poly = arith::from_signed(ctx, &coeffs, Basis::level(level));
    arith::ntt_forward(ctx, &mut poly);
    Plaintext {
        poly,
        level,
        scale: params.default_scale(),
    }
}

/// Largest centred coefficient of a − b (limb 0): the decryption noise.
fn noise(params: &Params, a: &Plaintext, b: &Plaintext) -> u64 {
    let ctx = params.ring();
    let mut d = a.poly.clone();
    arith::sub_assign(ctx, &mut d, &b.poly);
    arith::ntt_inverse(ctx, &mut d);
    let q = params.q_primes()[0];
    d.limb(0).iter().map(|&x| x.min(q - x)).max().unwrap()
}

fn message(e: CkksError) -> String {
    e.to_string()
}

/// Sets `width` bits at `bit` (LSB-first) of `bytes` to `value`.
fn set_bits(bytes: &mut [u8], bit: usize, width: u32, value: u64) {
    for k in 0..width as usize {
        let (byte, shift) = ((bit + k) / 8, (bit + k) % 8);
        bytes[byte] = (bytes[byte] & !(1 << shift)) | ((((value >> k) & 1) as u8) << shift);
    }
}

fn bits(p: u64) -> u32 {
    64 - p.leading_zeros()
}

#[test]
fn params_round_trip() {
    for spec in [
        ParamSpec::n13_depth2(),
        ParamSpec::n16_depth24(),
        small().spec().clone(),
        tiny().spec().clone(),
    ] {
        let params = Params::new(spec.clone()).unwrap();
        let bytes = params.to_bytes();
        let primes = params.q_primes().len() + params.p_primes().len();
        assert_eq!(bytes.len(), HEADER + 8 + 9 * primes);
        assert_eq!(&bytes[..4], &MAGIC);
        let back = Params::from_bytes(&bytes).unwrap();
        assert_eq!(back.spec(), &spec);
        assert_eq!(back.q_primes(), params.q_primes());
        assert_eq!(back.p_primes(), params.p_primes());
        assert_eq!(back.id(), params.id());
    }
}

#[test]
fn params_rejects_bad_input() {
    let params = small();
    let bytes = params.to_bytes();
    for len in 0..bytes.len() {
        assert!(
            Params::from_bytes(&bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(message(Params::from_bytes(&long).unwrap_err()).contains("trailing"));

    // Body offsets: log N 15, log scale 16, digits 17, q count 19, p count 21, sizes 23…
    let primes_at = HEADER + 8 + 3;
    let mut bad = bytes.clone();
    bad[primes_at] ^= 2; // a stored prime that the spec does not derive
    assert!(message(Params::from_bytes(&bad).unwrap_err()).contains("stored prime 0"));
    let mut bad = bytes.clone();
    bad[7] ^= 1; // parameter id
    assert!(matches!(
        Params::from_bytes(&bad),
        Err(CkksError::ParamsMismatch { .. })
    ));
    let mut bad = bytes.clone();
    bad[19..21].copy_from_slice(&u16::MAX.to_le_bytes()); // absurd prime count
    assert!(message(Params::from_bytes(&bad).unwrap_err()).contains("truncated"));

    // A hand-built insecure spec (N = 2^12 with 180 bits) is rejected on load.
    let mut insecure = Vec::new();
    insecure.extend_from_slice(&MAGIC);
    insecure.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    insecure.push(1);
    insecure.extend_from_slice(&0u64.to_le_bytes());
    insecure.extend_from_slice(&[12, 40]);
    for v in [1u16, 2, 1] {
        insecure.extend_from_slice(&v.to_le_bytes());
    }
    insecure.extend_from_slice(&[60, 60, 60]);
    insecure.extend_from_slice(&[0u8; 24]);
    assert!(matches!(
        Params::from_bytes(&insecure),
        Err(CkksError::Insecure { .. })
    ));
}

#[test]
fn ciphertexts_round_trip_and_decrypt() {
    let params = n13();
    let mut kg = KeyGenerator::new(&params).unwrap();
    let pk = kg.public_key();
    let dec = Decryptor::new(&params, kg.secret_key()).unwrap();
    let mut enc = Encryptor::new(&params, pk).unwrap();
    let mut sym = SymmetricEncryptor::new(&params, kg.secret_key()).unwrap();

    for level in [params.max_level(), 0] {
        let pt = plaintext(&params, level, level as u64);
        let pt_back = Plaintext::from_bytes(&params, &pt.to_bytes(&params).unwrap()).unwrap();
        assert_eq!(pt_back, pt);

        let ct = enc.encrypt(&pt).unwrap();
        let ct_back = Ciphertext::from_bytes(&params, &ct.to_bytes(&params).unwrap()).unwrap();
        assert_eq!(ct_back, ct);
        let m = dec.decrypt(&ct_back).unwrap();
        assert_eq!(m, dec.decrypt(&ct).unwrap());
        assert!(noise(&params, &m, &pt) < 1 << 20);

        let seeded = sym.encrypt_seeded(&pt).unwrap();
        let seeded_back =
            SeededCiphertext::from_bytes(&params, &seeded.to_bytes(&params).unwrap()).unwrap();
        assert_eq!(seeded_back, seeded);
        let expanded = expand_seeded(&params, &seeded_back).unwrap();
        assert_eq!(expanded, expand_seeded(&params, &seeded).unwrap());
        let m = dec.decrypt(&expanded).unwrap();
        assert!(noise(&params, &m, &pt) < 1 << 20);
        // The expanded ciphertext survives a round trip as well.
        let full_back =
            Ciphertext::from_bytes(&params, &expanded.to_bytes(&params).unwrap()).unwrap();
        assert_eq!(dec.decrypt(&full_back).unwrap(), m);
    }
}

#[test]
fn keys_round_trip() {
    let params = small();
    let mut kg = KeyGenerator::new(&params).unwrap();
    let pk = kg.public_key();
    assert_eq!(
        PublicKey::from_bytes(&params, &pk.to_bytes(&params).unwrap()).unwrap(),
        pk
    );
    let gk = kg.galois_key(5).unwrap();
    assert_eq!(
        SwitchingKey::from_bytes(&params, &gk.to_bytes(&params).unwrap()).unwrap(),
        gk
    );
    let relin = kg.relinearization_key();
    assert_eq!(
        SwitchingKey::from_bytes(&params, &relin.to_bytes(&params).unwrap()).unwrap(),
        relin
    );

    let keys = kg.evaluation_keys(&[1, 2, -1, 7], true).unwrap();
    assert_eq!(keys.galois.len(), 5);
    assert_eq!(
        EvaluationKeys::from_bytes(&params, &keys.to_bytes(&params).unwrap()).unwrap(),
        keys
    );
    let bare = EvaluationKeys {
        params_id: params.id(),
        ..Default::default()
    };
    let bare_bytes = bare.to_bytes(&params).unwrap();
    assert_eq!(bare_bytes.len(), HEADER + 16 + 1 + 4);
    assert_eq!(
        EvaluationKeys::from_bytes(&params, &bare_bytes).unwrap(),
        bare
    );

    // A key whose a is not its seed's expansion does not encode (it would decode as
    // another key).
    let mut forged = keys.clone();
    forged.galois.values_mut().next().unwrap().digits[0][1] = relin.digits[0][1].clone();
    assert!(forged.to_bytes(&params).is_err());
    let mut forged_pk = pk.clone();
    forged_pk.a_seed = helora::ckks::KeySeed([1; 16]);
    assert!(forged_pk.to_bytes(&params).is_err());

    // Decoded keys drive the evaluator like the originals.
    let mut ev = helora::ckks::Evaluator::cpu(&params);
    ev.set_keys(&EvaluationKeys::from_bytes(&params, &keys.to_bytes(&params).unwrap()).unwrap())
        .unwrap();
    assert_eq!(ev.galois_elements().count(), 5);
}

#[test]
fn sizes_at_n13() {
    let params = n13();
    let n = params.n();
    let mut kg = KeyGenerator::new(&params).unwrap();
    let mut sym = SymmetricEncryptor::new(&params, kg.secret_key()).unwrap();
    let pt = plaintext(&params, params.max_level(), 1);
    let seeded = sym.encrypt_seeded(&pt).unwrap();
    let full = expand_seeded(&params, &seeded).unwrap();
    let gk = kg.galois_key(5).unwrap();
    let rotations: Vec<i64> = (1..=8).collect();
    let keys = kg.evaluation_keys(&rotations, false).unwrap();
    let keys_no_relin = EvaluationKeys {
        relin: None,
        ..keys.clone()
    };
    let pk = kg.public_key();

    // 60 + 50 + 50 bits per coefficient over Q_L; + 58 for the special prime.
    let q_poly = POLY_HEADER + n * 160 / 8;
    let full_poly = POLY_HEADER + n * 218 / 8;
    let key = 2 + 3 * 2 * full_poly;
    // In a key set only the b halves travel; every a comes from the 16-byte seed.
    let seeded_key = 2 + 3 * full_poly;
    let sizes = [
        (
            "seeded ciphertext",
            seeded.to_bytes(&params).unwrap().len(),
            HEADER + 10 + 32 + q_poly,
        ),
        (
            "full ciphertext",
            full.to_bytes(&params).unwrap().len(),
            HEADER + 10 + 2 * q_poly,
        ),
        (
            "plaintext",
            pt.to_bytes(&params).unwrap().len(),
            HEADER + 10 + q_poly,
        ),
        (
            "public key",
            pk.to_bytes(&params).unwrap().len(),
            HEADER + 16 + q_poly,
        ),
        (
            "Galois key",
            gk.to_bytes(&params).unwrap().len(),
            HEADER + key,
        ),
        (
            "eval keys: relin + 8 rotations",
            keys.to_bytes(&params).unwrap().len(),
            HEADER + 16 + 1 + seeded_key + 4 + 8 * (8 + seeded_key),
        ),
        (
            "eval keys: 8 rotations",
            keys_no_relin.to_bytes(&params).unwrap().len(),
            HEADER + 16 + 1 + 4 + 8 * (8 + seeded_key),
        ),
        ("parameter set", params.to_bytes().len(), HEADER + 8 + 4 * 9),
    ];
    for (what, measured, expected) in sizes {
        println!("N = 2^13 {what}: {measured} bytes");
        assert_eq!(measured, expected, "{what}");
    }
    assert_eq!(sizes[0].1, 163_903);
}

#[test]
fn every_truncation_fails() {
    let params = tiny();
    let mut kg = KeyGenerator::new(&params).unwrap();
    let mut sym = SymmetricEncryptor::new(&params, kg.secret_key()).unwrap();
    let pt = plaintext(&params, 0, 3);
    let seeded = sym.encrypt_seeded(&pt).unwrap();
    let full = expand_seeded(&params, &seeded).unwrap();
    let pk = kg.public_key();
    let gk = kg.galois_key(5).unwrap();

    fn sweep<T: Serializable>(params: &Params, x: &T) {
        let bytes = x.to_bytes(params).unwrap();
        assert!(T::from_bytes(params, &bytes).is_ok());
        for len in 0..bytes.len() {
            assert!(
                T::from_bytes(params, &bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }
    sweep(&params, &pt);
    sweep(&params, &seeded);
    sweep(&params, &full);
    sweep(&params, &pk);
    sweep(&params, &gk);

    // The error says what is missing.
    let bytes = seeded.to_bytes(&params).unwrap();
    let e = message(SeededCiphertext::from_bytes(&params, &bytes[..1200]).unwrap_err());
    assert!(
        e.contains("truncated: expected 6912 bytes of limb 0 of c0, found 1137"),
        "{e}"
    );
}

#[test]
fn random_truncations_of_big_objects_fail() {
    let params = small();
    let mut kg = KeyGenerator::new(&params).unwrap();
    let keys = kg.evaluation_keys(&[1, 2, 3], false).unwrap();
    let bytes = keys.to_bytes(&params).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let cuts = (0..300).chain((0..100).map(|_| rng.random_range(0..bytes.len())));
    for len in cuts.chain([bytes.len() - 1]) {
        assert!(
            EvaluationKeys::from_bytes(&params, &bytes[..len]).is_err(),
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn header_and_basis_fields_are_checked() {
    let params = small();
    let mut sym =
        SymmetricEncryptor::new(&params, KeyGenerator::new(&params).unwrap().secret_key()).unwrap();
    let seeded = sym.encrypt_seeded(&plaintext(&params, 1, 4)).unwrap();
    let bytes = seeded.to_bytes(&params).unwrap();
    // Header, level, then the polynomial header after the scale and the seed.
    let poly_at = HEADER + 10 + 32;
    for at in (0..HEADER + 2).chain(poly_at..poly_at + POLY_HEADER) {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[at] ^= 1 << bit;
            assert!(
                SeededCiphertext::from_bytes(&params, &bad).is_err(),
                "byte {at} bit {bit}"
            );
        }
    }

    let with = |at: usize, patch: &[u8]| {
        let mut bad = bytes.clone();
        bad[at..at + patch.len()].copy_from_slice(patch);
        message(SeededCiphertext::from_bytes(&params, &bad).unwrap_err())
    };
    assert!(with(0, b"HLRB").contains("magic"));
    // Version 1 expanded the seed with ChaCha20: refused, not misread.
    assert!(with(4, &1u16.to_le_bytes()).contains("unsupported format version 1"));
    // Version 2 keys carried `a` halves of the client's choosing.
    assert!(with(4, &2u16.to_le_bytes()).contains("unsupported format version 2"));
    assert!(with(4, &4u16.to_le_bytes()).contains("unsupported format version 4"));
    assert!(with(6, &[3]).contains("found a ciphertext (kind 3)"));
    assert!(with(6, &[99]).contains("unknown kind 99"));
    assert!(with(HEADER, &9u16.to_le_bytes()).contains("level 9 exceeds"));
    assert!(with(HEADER + 2, &f64::NAN.to_bits().to_le_bytes()).contains("scale"));
    assert!(with(HEADER + 2, &(-1f64).to_bits().to_le_bytes()).contains("scale"));
    assert!(with(HEADER + 2, &0f64.to_bits().to_le_bytes()).contains("scale"));
    assert!(with(HEADER + 2, &f64::INFINITY.to_bits().to_le_bytes()).contains("scale"));
    assert!(with(poly_at, &[13]).contains("ring degree 2^13"));
    assert!(with(poly_at + 1, &u16::MAX.to_le_bytes()).contains("basis of 65535"));
    assert!(with(poly_at + 3, &1u16.to_le_bytes()).contains("basis"));
    assert!(with(poly_at + 5, &[0]).contains("coefficient form"));
    assert!(with(poly_at + 5, &[7]).contains("NTT flag 7"));

    // Another kind's bytes, and another parameter set.
    let pt = plaintext(&params, 1, 5);
    assert!(SeededCiphertext::from_bytes(&params, &pt.to_bytes(&params).unwrap()).is_err());
    assert!(matches!(
        SeededCiphertext::from_bytes(&n13(), &bytes),
        Err(CkksError::ParamsMismatch { .. })
    ));
    assert!(matches!(
        Plaintext::from_bytes(&tiny(), &pt.to_bytes(&params).unwrap()),
        Err(CkksError::ParamsMismatch { .. })
    ));

    let mut long = bytes.clone();
    long.extend_from_slice(b"garbage");
    assert!(
        message(SeededCiphertext::from_bytes(&params, &long).unwrap_err())
            .contains("7 trailing bytes")
    );
}

#[test]
fn unreduced_coefficients_are_rejected() {
    let params = small();
    let pt = plaintext(&params, 1, 6);
    let bytes = pt.to_bytes(&params).unwrap();
    let (q0, q1) = (params.q_primes()[0], params.q_primes()[1]);
    let limb1_at = HEADER + 10 + POLY_HEADER + params.n() * bits(q0) as usize / 8;
    for (j, value) in [
        (77usize, q1),
        (0, q1),
        (params.n() - 1, (1 << bits(q1)) - 1),
    ] {
        let mut bad = bytes.clone();
        set_bits(&mut bad[limb1_at..], j * bits(q1) as usize, bits(q1), value);
        let e = message(Plaintext::from_bytes(&params, &bad).unwrap_err());
        assert!(
            e.contains(&format!("coefficient {j} of limb 1 is not below its prime")),
            "{e}"
        );
        // q - 1 is fine.
        set_bits(
            &mut bad[limb1_at..],
            j * bits(q1) as usize,
            bits(q1),
            q1 - 1,
        );
        assert!(Plaintext::from_bytes(&params, &bad).is_ok());
    }

    // The encoder refuses what the decoder would refuse.
    let mut unreduced = pt.clone();
    unreduced.poly.limb_mut(0)[3] = q0;
    assert!(message(unreduced.to_bytes(&params).unwrap_err()).contains("coefficient 3 of limb 0"));
    let wrong_level = Plaintext {
        level: 0,
        ..pt.clone()
    };
    assert!(wrong_level.to_bytes(&params).is_err());
    let too_high = Plaintext {
        level: 5,
        ..pt.clone()
    };
    assert!(message(too_high.to_bytes(&params).unwrap_err()).contains("level 5 exceeds"));
    let too_high = Ciphertext {
        c0: pt.poly.clone(),
        c1: pt.poly.clone(),
        level: 7,
        scale: 1.0,
    };
    assert!(too_high.to_bytes(&params).is_err());
    let too_high = SeededCiphertext {
        c0: pt.poly.clone(),
        seed: [0; 32],
        level: 7,
        scale: 1.0,
    };
    assert!(too_high.to_bytes(&params).is_err());
    let mut coeff_form = pt.clone();
    coeff_form.poly.ntt_form = false;
    assert!(coeff_form.to_bytes(&params).is_err());
    let nan_scale = Plaintext {
        scale: f64::NAN,
        ..pt
    };
    assert!(nan_scale.to_bytes(&params).is_err());
    let stranger = PublicKey {
        params_id: 1,
        ..KeyGenerator::new(&params).unwrap().public_key()
    };
    assert!(matches!(
        stranger.to_bytes(&params),
        Err(CkksError::ParamsMismatch { .. })
    ));
}

#[test]
fn huge_declared_lengths_are_rejected() {
    let params = small();
    let mut kg = KeyGenerator::new(&params).unwrap();
    let keys = kg.evaluation_keys(&[1], false).unwrap();
    let bytes = keys.to_bytes(&params).unwrap();
    // A lone switching key holds both halves of every digit; a key set's, b only.
    let full_len = SwitchingKey::to_bytes(keys.relin.as_ref().unwrap(), &params)
        .unwrap()
        .len()
        - HEADER;
    let key_len = 2 + (full_len - 2) / 2;
    // Header, key seed, relinearisation flag.
    let start = HEADER + 16 + 1;
    let count_at = start + key_len;

    let mut bad = bytes.clone();
    bad[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = message(EvaluationKeys::from_bytes(&params, &bad).unwrap_err());
    assert!(e.contains("4294967295 Galois keys"), "{e}");

    let mut bad = bytes.clone();
    bad[start..start + 2].copy_from_slice(&u16::MAX.to_le_bytes());
    let e = message(EvaluationKeys::from_bytes(&params, &bad).unwrap_err());
    assert!(e.contains("65535 digits, expected 2"), "{e}");

    let mut bad = bytes.clone();
    bad[start - 1] = 2; // relinearisation flag
    assert!(message(EvaluationKeys::from_bytes(&params, &bad).unwrap_err()).contains("flag 2"));

    // Galois elements must be valid and strictly increasing.
    let g_at = count_at + 4;
    let mut bad = bytes.clone();
    bad[g_at..g_at + 8].copy_from_slice(&4u64.to_le_bytes());
    assert!(
        message(EvaluationKeys::from_bytes(&params, &bad).unwrap_err())
            .contains("not a Galois element")
    );
    let two = EvaluationKeys {
        relin: None,
        ..kg.evaluation_keys(&[1, 2], false).unwrap()
    };
    let mut bad = two.to_bytes(&params).unwrap();
    let entry = 8 + key_len;
    let (first, second) = (HEADER + 16 + 1 + 4, HEADER + 16 + 1 + 4 + entry);
    let g0: [u8; 8] = bad[first..first + 8].try_into().unwrap();
    bad[second..second + 8].copy_from_slice(&g0);
    assert!(
        message(EvaluationKeys::from_bytes(&params, &bad).unwrap_err())
            .contains("out of order or repeated")
    );
}

/// A small seeded ciphertext and evaluation key set with their encodings, shared by the
/// random flips.
struct Fixture {
    params: Params,
    seeded: SeededCiphertext,
    seeded_bytes: Vec<u8>,
    keys: EvaluationKeys,
    key_bytes: Vec<u8>,
}

fn flip_fixture() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let params = tiny();
        let mut kg = KeyGenerator::new(&params).unwrap();
        let mut sym = SymmetricEncryptor::new(&params, kg.secret_key()).unwrap();
        let seeded = sym.encrypt_seeded(&plaintext(&params, 0, 8)).unwrap();
        let keys = kg.evaluation_keys(&[1], true).unwrap();
        let seeded_bytes = seeded.to_bytes(&params).unwrap();
        let key_bytes = keys.to_bytes(&params).unwrap();
        Fixture {
            params,
            seeded,
            seeded_bytes,
            keys,
            key_bytes,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A flipped byte never panics; the fixed fields always fail; a flip that still
    /// decodes gives a different object (one encoding per object).
    #[test]
    fn random_byte_flips(at in any::<prop::sample::Index>(), mask in 1u8..=255, keys in any::<bool>()) {
        let Fixture { params, seeded, seeded_bytes, keys: eval_keys, key_bytes } = flip_fixture();
        let mut bad = if keys { key_bytes.clone() } else { seeded_bytes.clone() };
        let at = at.index(bad.len());
        bad[at] ^= mask;
        if keys {
            if let Ok(k) = EvaluationKeys::from_bytes(params, &bad) {
                prop_assert_ne!(&k, eval_keys);
            }
            prop_assert!(at >= HEADER || EvaluationKeys::from_bytes(params, &bad).is_err());
        } else {
            let fixed = at < HEADER + 2 || (HEADER + 42..HEADER + 42 + POLY_HEADER).contains(&at);
            if let Ok(ct) = SeededCiphertext::from_bytes(params, &bad) {
                prop_assert!(!fixed, "flip at {} accepted", at);
                prop_assert_ne!(&ct, seeded);
            }
        }
    }

    #[test]
    fn random_params_flips(at in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let params = tiny();
        let mut bad = params.to_bytes();
        let at = at.index(bad.len());
        bad[at] ^= mask;
        // Every field is either checked or feeds the fingerprint.
        prop_assert!(Params::from_bytes(&bad).is_err());
    }
}

#[test]
fn random_bytes_never_panic() {
    let params = tiny();
    let mut rng = StdRng::seed_from_u64(9);
    let valid_header = flip_fixture().seeded_bytes[..HEADER].to_vec();
    for i in 0..2000u32 {
        let len = rng.random_range(0..200);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if i.is_multiple_of(2) && len >= HEADER {
            bytes[..HEADER].copy_from_slice(&valid_header);
        }
        assert!(SeededCiphertext::from_bytes(&params, &bytes).is_err());
        assert!(Ciphertext::from_bytes(&params, &bytes).is_err());
        assert!(EvaluationKeys::from_bytes(&params, &bytes).is_err());
        assert!(Params::from_bytes(&bytes).is_err());
    }
}
