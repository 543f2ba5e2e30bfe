//! Criterion benches of the CKKS operations on the CPU backend, at the top level of the
//! two presets: N = 2^13 (`n13_depth2`) and N = 2^16 (`n16_depth24`).
//!
//! Keys are generated once per group, and only when one of its benches is selected
//! (`cargo bench --bench ckks -- n13` skips the slow N = 2^16 key generation). The
//! N = 2^16 group uses flat sampling with 10 samples so that it finishes in about a minute
//! on two cores.

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use helora::backend::Backend;
use helora::ckks::{
    rotation_element, Ciphertext, Encoder, EvaluationKeys, Evaluator, KeyGenerator, ParamSpec,
    Params, Plaintext, SecretKey, SymmetricEncryptor,
};
use helora::math::sampling;
use helora::ring::Basis;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

const HOISTED_STEPS: [i64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Keys, an evaluator and operands at the top level.
struct Fixture {
    params: Params,
    secret: SecretKey,
    evaluator: Evaluator,
    pt: Plaintext,
    ct_a: Ciphertext,
    ct_b: Ciphertext,
}

/// Random real values in [-1, 1) in every slot, encoded at `level` with the default scale.
fn random_plaintext(encoder: &Encoder, params: &Params, level: usize) -> Plaintext {
    let mut rng = sampling::os_rng().expect("OS randomness");
    let values: Vec<f64> = (0..params.slots())
        .map(|_| {
            2.0 * sampling::uniform_below(&mut rng, 1 << 53) as f64 / (1u64 << 53) as f64 - 1.0
        })
        .collect();
    let scale = params.default_scale();
    let poly = encoder
        .encode(params.ring(), &values, scale, Basis::level(level))
        .expect("encoding");
    Plaintext { poly, level, scale }
}

fn fixture(spec: ParamSpec) -> Fixture {
    let params = Params::new(spec).expect("preset parameters are valid");
    let n = params.n();
    let mut keygen = KeyGenerator::new(&params).expect("key generation");
    let mut galois = BTreeMap::new();
    for step in HOISTED_STEPS {
        let g = rotation_element(step, n);
        galois.insert(g, keygen.galois_key(g).expect("rotation key"));
    }
    let keys = EvaluationKeys {
        params_id: params.id(),
        a_seed: keygen.key_seed(),
        relin: Some(keygen.relinearization_key()),
        galois,
    };
    let mut evaluator = Evaluator::cpu(&params);
    evaluator
        .set_keys(&keys)
        .expect("keys match the parameters");
    let secret = keygen.secret_key().clone();
    let top = params.max_level();
    let mut enc = SymmetricEncryptor::new(&params, &secret).expect("encryptor");
    let encoder = Encoder::new(params.n()).expect("encoder");
    let pt = random_plaintext(&encoder, &params, top);
    let ct_a = enc.encrypt(&pt).expect("encryption");
    let ct_b = enc
        .encrypt(&random_plaintext(&encoder, &params, top))
        .expect("encryption");
    Fixture {
        params,
        secret,
        evaluator,
        pt,
        ct_a,
        ct_b,
    }
}

fn bench_preset(c: &mut Criterion, name: &str, spec: fn() -> ParamSpec, slow: bool) {
    let cell = OnceCell::new();
    let f = || cell.get_or_init(|| fixture(spec()));
    let mut group = c.benchmark_group(name);
    if slow {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
    } else {
        group
            .sample_size(30)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
    }
    group.bench_function("encrypt", |b| {
        let f = f();
        let mut enc = SymmetricEncryptor::new(&f.params, &f.secret).expect("encryptor");
        b.iter(|| enc.encrypt_seeded(black_box(&f.pt)).expect("encryption"))
    });
    group.bench_function("ct_pt_mul", |b| {
        let f = f();
        b.iter(|| {
            f.evaluator
                .mul_plain(black_box(&f.ct_a), &f.pt)
                .expect("mul_plain")
        })
    });
    group.bench_function("ct_ct_mul_relin", |b| {
        let f = f();
        b.iter(|| {
            f.evaluator
                .mul_relin(black_box(&f.ct_a), &f.ct_b)
                .expect("mul_relin")
        })
    });
    group.bench_function("rescale", |b| {
        let f = f();
        b.iter(|| f.evaluator.rescale(black_box(&f.ct_a)).expect("rescale"))
    });
    group.bench_function("rotate", |b| {
        let f = f();
        b.iter(|| f.evaluator.rotate(black_box(&f.ct_a), 1).expect("rotate"))
    });
    group.bench_function("hoisted_rotate_8", |b| {
        let f = f();
        b.iter(|| {
            f.evaluator
                .rotate_hoisted(black_box(&f.ct_a), &HOISTED_STEPS)
                .expect("rotate_hoisted")
        })
    });
    group.finish();
}

/// The parts of a rotation at N = 2^13, through the CPU backend: the decomposition (shared
/// by a hoisted batch), and what each further step costs (one inner product, two ModDowns,
/// c0's automorphism). One NTT of one limb gives the unit they are counted in.
fn bench_key_switch_parts(c: &mut Criterion) {
    let cell = OnceCell::new();
    let f = || cell.get_or_init(|| fixture(ParamSpec::n13_depth2()));
    let g = rotation_element(1, f().params.n());
    let key_cell = OnceCell::new();
    let key = || {
        key_cell.get_or_init(|| {
            let f = f();
            let mut keygen = KeyGenerator::new(&f.params).expect("key generation");
            keygen
                .galois_key(g)
                .expect("rotation key")
                .digits
                .into_iter()
                .map(|[b, a]| {
                    let backend = f.evaluator.backend();
                    [
                        backend.upload_owned(b).expect("key fits"),
                        backend.upload_owned(a).expect("key fits"),
                    ]
                })
                .collect::<Vec<_>>()
        })
    };
    let mut group = c.benchmark_group("ckks/n13/key_switch");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("ntt_one_limb", |b| {
        let f = f();
        let mut limb = f.ct_a.c0.limb(0).to_vec();
        let table = f.params.ring().ntt_table(f.ct_a.c0.basis(), 0);
        b.iter(|| table.forward(black_box(&mut limb)))
    });
    group.bench_function("decompose", |b| {
        let f = f();
        b.iter(|| f.evaluator.backend().decompose(black_box(&f.ct_a.c1)))
    });
    group.bench_function("inner_product", |b| {
        let f = f();
        let digits = f.evaluator.backend().decompose(&f.ct_a.c1);
        let key = key();
        b.iter(|| {
            f.evaluator
                .backend()
                .key_switch_inner_product(black_box(&digits), key, Some(g))
        })
    });
    group.bench_function("mod_down", |b| {
        let f = f();
        let digits = f.evaluator.backend().decompose(&f.ct_a.c1);
        b.iter(|| f.evaluator.backend().mod_down(black_box(&digits[0])))
    });
    group.bench_function("automorphism", |b| {
        let f = f();
        b.iter(|| f.evaluator.backend().automorphism(black_box(&f.ct_a.c0), g))
    });
    group.finish();
}

fn ckks(c: &mut Criterion) {
    bench_preset(c, "ckks/n13", ParamSpec::n13_depth2, false);
    bench_key_switch_parts(c);
    bench_preset(c, "ckks/n16", ParamSpec::n16_depth24, true);
}

criterion_group!(benches, ckks);
criterion_main!(benches);
