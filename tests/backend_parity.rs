//! Backend parity: every `Backend` primitive, key switching and rotations through
//! `Evaluator<B>`, and a LoRA apply, compared bit for bit with the CPU reference.
//!
//! Each check is one generic body, run with `CudaBackend` against the CPU's references
//! where the crate is built with `cuda` and a GPU is present. Without one, a GPU test
//! prints "skipped: <reason>" to stderr and passes, unless HELORA_REQUIRE_GPU=1 (the GPU
//! machine's run) makes it fail.
//!
//! On the CPU only the checks whose reference is not the CPU backend's own code run: the
//! key-switch inner products against their definition, and the evaluator and LoRA bodies
//! through a wrapper backend that batches the hoisted key switches differently.

mod common;

use helora::backend::{Backend, BackendError, CpuBackend, KeySwitchStep};
use helora::ckks::*;
use helora::linear::{random_lora_factors, LoraPlan};
use helora::ring::{arith, automorphism, rescale, Basis, BasisExtender, RingContext, RnsPoly};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

// ---- whether and where to run the GPU side -----------------------------------------------

#[cfg(feature = "cuda")]
type Gpu = helora::backend::CudaBackend;
#[cfg(not(feature = "cuda"))]
type Gpu = CpuBackend;

/// The CUDA backend for `params`, or None after printing why it is skipped (a failure
/// instead when HELORA_REQUIRE_GPU=1).
fn gpu(params: &Params) -> Option<Gpu> {
    #[cfg(feature = "cuda")]
    let reason = match Gpu::new(params.ring().clone(), params.alpha()) {
        Ok(b) => return Some(b),
        // Only a missing GPU is a skip; any other error is a failure of the backend.
        Err(e @ BackendError::NoDevice(_)) => e.to_string(),
        Err(e) => panic!("the CUDA backend failed to start: {e}"),
    };
    #[cfg(not(feature = "cuda"))]
    let reason = {
        let _ = params;
        "built without the `cuda` feature".to_owned()
    };
    common::skip_gpu(&reason);
    None
}

fn params(spec: ParamSpec) -> Params {
    Params::new(spec).expect("preset parameters")
}

fn cpu(params: &Params) -> CpuBackend {
    CpuBackend::new(params.ring().clone(), params.alpha())
}

// ---- primitives ----------------------------------------------------------------------------

fn random(ctx: &RingContext, basis: Basis, ntt: bool, rng: &mut ChaCha8Rng) -> RnsPoly {
    let mut p = RnsPoly::zero(ctx.n(), basis, ntt);
    for (i, limb) in p.limbs_mut().enumerate() {
        let q = ctx.modulus(basis, i).value();
        limb.iter_mut().for_each(|x| *x = rng.random_range(0..q));
    }
    p
}

fn up<B: Backend>(b: &B, p: &RnsPoly) -> B::Poly {
    b.upload(p).expect("upload")
}

fn down<B: Backend>(b: &B, p: &B::Poly) -> RnsPoly {
    b.download(p).expect("download")
}

/// Σ_j σ_g(digit_j)·key_j per limb in 128 bits, reduced once: the definition.
fn inner_product_reference(
    ctx: &RingContext,
    digits: &[RnsPoly],
    key: &[[RnsPoly; 2]],
    galois: Option<u64>,
) -> [RnsPoly; 2] {
    let basis = digits[0].basis();
    let key_q = key[0][0].basis().q;
    let n = ctx.n();
    let perm = galois.map(|g| automorphism::automorphism_ntt_permutation(n, g));
    let mut out = [RnsPoly::zero(n, basis, true), RnsPoly::zero(n, basis, true)];
    for limb in 0..basis.len() {
        let m = ctx.modulus(basis, limb);
        let key_limb = if basis.is_special(limb) {
            key_q + limb - basis.q
        } else {
            limb
        };
        for h in 0..2 {
            let values: Vec<u64> = (0..n)
                .map(|i| {
                    let src = perm.as_ref().map_or(i, |p| p[i] as usize);
                    let sum: u128 = digits
                        .iter()
                        .zip(key)
                        .map(|(d, k)| d.limb(limb)[src] as u128 * k[h].limb(key_limb)[i] as u128)
                        .sum();
                    m.reduce_u128(sum)
                })
                .collect();
            out[h].limb_mut(limb).copy_from_slice(&values);
        }
    }
    out
}

/// Every primitive of `b` against the `ring` reference, on random inputs.
fn check_primitives<B: Backend>(b: &B, alpha: usize, seed: u64) {
    let ctx = b.context().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = ctx.n();
    let (top, p) = (ctx.max_level(), ctx.p().len());
    let galois = [5u64, 2 * n as u64 - 1, 3u64.pow(7) % (2 * n as u64)];
    for basis in [Basis::level(top), Basis::level(0), Basis::new(top + 1, p)] {
        let x = random(&ctx, basis, false, &mut rng);
        let mut want = x.clone();
        arith::ntt_forward(&ctx, &mut want);
        let mut g = up(b, &x);
        b.ntt_forward(&mut g);
        assert_eq!(down(b, &g), want, "ntt_forward over {basis:?}");
        b.ntt_inverse(&mut g);
        assert_eq!(down(b, &g), x, "ntt_inverse over {basis:?}");

        let [a, c, d] = [0; 3].map(|_| random(&ctx, basis, true, &mut rng));
        type Op = fn(&RingContext, &mut RnsPoly, &RnsPoly);
        type DeviceOp<B> = fn(&B, &mut <B as Backend>::Poly, &<B as Backend>::Poly);
        let binary: [(&str, Op, DeviceOp<B>); 3] = [
            ("add", arith::add_assign, |b, x, y| b.add_assign(x, y)),
            ("sub", arith::sub_assign, |b, x, y| b.sub_assign(x, y)),
            ("mul", arith::mul_assign, |b, x, y| b.mul_assign(x, y)),
        ];
        for (name, reference, op) in binary {
            let mut want = a.clone();
            reference(&ctx, &mut want, &c);
            let mut got = up(b, &a);
            op(b, &mut got, &up(b, &c));
            assert_eq!(down(b, &got), want, "{name} over {basis:?}");
        }
        let mut want = a.clone();
        arith::neg_assign(&ctx, &mut want);
        let mut got = up(b, &a);
        b.neg_assign(&mut got);
        assert_eq!(down(b, &got), want, "neg over {basis:?}");

        let mut want = d.clone();
        arith::mul_add_assign(&ctx, &mut want, &a, &c);
        let mut got = up(b, &d);
        b.mul_add_assign(&mut got, &up(b, &a), &up(b, &c));
        assert_eq!(down(b, &got), want, "mul_add over {basis:?}");

        let residues: Vec<u64> = ctx
            .moduli(basis)
            .map(|m| rng.random_range(0..m.value()))
            .collect();
        let mut want = a.clone();
        arith::mul_scalar_assign(&ctx, &mut want, &residues);
        let mut got = up(b, &a);
        b.mul_scalar_assign(&mut got, &residues);
        assert_eq!(down(b, &got), want, "mul_scalar over {basis:?}");

        for g in galois {
            let perm = automorphism::automorphism_ntt_permutation(n, g);
            let want = automorphism::automorphism_ntt(&a, &perm);
            assert_eq!(
                down(b, &b.automorphism(&up(b, &a), g)),
                want,
                "automorphism (NTT) {g} over {basis:?}"
            );
            let want = automorphism::automorphism_coeff(&ctx, &x, g);
            assert_eq!(
                down(b, &b.automorphism(&up(b, &x), g)),
                want,
                "automorphism (coefficients) {g} over {basis:?}"
            );
        }

        let q = basis.q.div_ceil(2);
        let mut want = a.clone();
        want.truncate_q(q);
        let mut got = up(b, &a);
        b.truncate_q(&mut got, q);
        assert_eq!(b.basis(&got), Basis::new(q, 0));
        assert_eq!(down(b, &got), want, "truncate_q({q}) over {basis:?}");
    }

    let ext = BasisExtender::new(&ctx, alpha);
    for level in [top, top / 2, 1, 0] {
        let basis = Basis::level(level);
        let x = random(&ctx, basis, true, &mut rng);
        if level >= 1 {
            let got = b.rescale(&up(b, &x));
            assert_eq!(down(b, &got), rescale(&ctx, &x), "rescale at level {level}");
        }

        let mut coeff = x.clone();
        arith::ntt_inverse(&ctx, &mut coeff);
        let digits = b.decompose(&up(b, &x));
        assert_eq!(
            digits.len(),
            ext.digit_count(level),
            "digits at level {level}"
        );
        let host_digits: Vec<RnsPoly> = digits.iter().map(|d| down(b, d)).collect();
        for (j, got) in host_digits.iter().enumerate() {
            let want = ext.mod_up(&ctx, &coeff, &x, j);
            assert_eq!(*got, want, "decompose digit {j} at level {level}");
        }

        check_inner_products_at(
            b,
            ext.digit_count(top),
            &digits,
            &host_digits,
            level,
            &mut rng,
        );

        let y = random(&ctx, Basis::new(level + 1, p), true, &mut rng);
        assert_eq!(
            down(b, &b.mod_down(&up(b, &y))),
            ext.mod_down(&ctx, &y),
            "mod_down at level {level}"
        );
    }

    // More elements than one batched launch takes (32), in both domains.
    let elements = galois_elements_for_batch(n as u64, 34);
    for ntt in [true, false] {
        let a = random(&ctx, Basis::level(0), ntt, &mut rng);
        let got = b.automorphisms(&up(b, &a), &elements);
        assert_eq!(got.len(), elements.len());
        for (k, (got, &g)) in got.iter().zip(&elements).enumerate() {
            let want = if ntt {
                automorphism::automorphism_ntt(
                    &a,
                    &automorphism::automorphism_ntt_permutation(n, g),
                )
            } else {
                automorphism::automorphism_coeff(&ctx, &a, g)
            };
            assert_eq!(
                down(b, got),
                want,
                "automorphisms element {k} ({g}), NTT {ntt}"
            );
        }
    }
}

/// The key-switch inner products (single and batched) against the definition, at several
/// levels, on digits from the backend's own decomposition of random inputs. Unlike the
/// rest of [`check_primitives`], whose references are the functions the CPU backend calls,
/// this check is independent of the CPU backend too.
fn check_inner_products<B: Backend>(b: &B, alpha: usize, seed: u64) {
    let ctx = b.context().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let top = ctx.max_level();
    let key_digits = BasisExtender::new(&ctx, alpha).digit_count(top);
    for level in [top, top / 2, 1, 0] {
        let x = random(&ctx, Basis::level(level), true, &mut rng);
        let digits = b.decompose(&up(b, &x));
        let host_digits: Vec<RnsPoly> = digits.iter().map(|d| down(b, d)).collect();
        check_inner_products_at(b, key_digits, &digits, &host_digits, level, &mut rng);
    }
}

/// `key_switch_inner_product` of `digits` (at `level`) with a random key of `key_digits`
/// digits over Q_L ∪ P for the identity, a rotation and conjugation, then the batched form.
fn check_inner_products_at<B: Backend>(
    b: &B,
    key_digits: usize,
    digits: &[B::Poly],
    host_digits: &[RnsPoly],
    level: usize,
    rng: &mut ChaCha8Rng,
) {
    let ctx = b.context().clone();
    let n = ctx.n() as u64;
    // The key over Q_L ∪ P has a digit more than the input uses below the top level.
    let full = ctx.full_basis();
    let key: Vec<[RnsPoly; 2]> = (0..key_digits)
        .map(|_| [0; 2].map(|_| random(&ctx, full, true, rng)))
        .collect();
    let device_key: Vec<[B::Poly; 2]> = key.iter().map(|k| [up(b, &k[0]), up(b, &k[1])]).collect();
    for g in [None, Some(5), Some(2 * n - 1)] {
        let want = inner_product_reference(&ctx, host_digits, &key, g);
        let [g0, g1] = b.key_switch_inner_product(digits, &device_key, g);
        assert_eq!(
            [down(b, &g0), down(b, &g1)],
            want,
            "key_switch_inner_product at level {level}, galois {g:?}"
        );
    }
    check_batched_inner_products(b, digits, host_digits, level, rng);
}

/// `count` Galois elements: conjugation (2N − 1), then powers of 5 (rotations by 1, 2, …).
fn galois_elements_for_batch(n: u64, count: usize) -> Vec<u64> {
    let powers = (1..count).scan(1u64, |g, _| {
        *g = *g * 5 % (2 * n);
        Some(*g)
    });
    std::iter::once(2 * n - 1).chain(powers).collect()
}

/// `key_switch_inner_products` of `digits` against the definition: a few steps with keys of
/// their own (the identity, a rotation, conjugation; keys over Q_L ∪ P and over Q_l ∪ P
/// mixed), and at level 0 more steps than one batched launch takes.
fn check_batched_inner_products<B: Backend>(
    b: &B,
    digits: &[B::Poly],
    host_digits: &[RnsPoly],
    level: usize,
    rng: &mut ChaCha8Rng,
) {
    let ctx = b.context().clone();
    let n = ctx.n() as u64;
    let mut galois: Vec<Option<u64>> = vec![None, Some(5), Some(2 * n - 1), Some(25)];
    if level == 0 {
        galois = galois_elements_for_batch(n, 33)
            .into_iter()
            .map(Some)
            .chain([None])
            .collect();
    }
    let own_basis = Basis::new(level + 1, ctx.p().len());
    let keys: Vec<Vec<[RnsPoly; 2]>> = (0..galois.len())
        .map(|s| {
            let basis = if s % 2 == 1 {
                own_basis
            } else {
                ctx.full_basis()
            };
            (0..host_digits.len())
                .map(|_| [0; 2].map(|_| random(&ctx, basis, true, rng)))
                .collect()
        })
        .collect();
    let device_keys: Vec<Vec<[B::Poly; 2]>> = keys
        .iter()
        .map(|k| k.iter().map(|[kb, ka]| [up(b, kb), up(b, ka)]).collect())
        .collect();
    let steps: Vec<KeySwitchStep<B::Poly>> = device_keys
        .iter()
        .zip(&galois)
        .map(|(k, &g)| (k.as_slice(), g))
        .collect();
    let got = b.key_switch_inner_products(digits, &steps);
    assert_eq!(got.len(), steps.len(), "one output pair per step");
    for (s, ((key, &g), [g0, g1])) in keys.iter().zip(&galois).zip(&got).enumerate() {
        let want = inner_product_reference(&ctx, host_digits, key, g);
        assert_eq!(
            [down(b, g0), down(b, g1)],
            want,
            "key_switch_inner_products step {s} of {} at level {level}, galois {g:?}",
            steps.len()
        );
    }
}

// ---- through the evaluator -----------------------------------------------------------------

const STEPS: [i64; 4] = [1, 2, -1, 7];

struct Client {
    params: Params,
    keygen: KeyGenerator,
    encoder: Encoder,
    encryptor: SymmetricEncryptor,
    rng: ChaCha8Rng,
}

impl Client {
    fn new(params: &Params) -> Self {
        let keygen = KeyGenerator::new(params).expect("keygen");
        Self {
            encoder: Encoder::new(params.n()).expect("encoder"),
            encryptor: SymmetricEncryptor::new(params, keygen.secret_key()).expect("encryptor"),
            params: params.clone(),
            keygen,
            rng: ChaCha8Rng::seed_from_u64(7),
        }
    }

    fn encrypt(&mut self, level: usize) -> Ciphertext {
        let values: Vec<f64> = (0..self.params.slots())
            .map(|_| self.rng.random_range(-1.0..1.0))
            .collect();
        self.encrypt_values(&values, level)
    }

    fn encrypt_values(&mut self, values: &[f64], level: usize) -> Ciphertext {
        let scale = self.params.default_scale();
        let poly = self
            .encoder
            .encode(self.params.ring(), values, scale, Basis::level(level))
            .expect("encode");
        self.encryptor
            .encrypt(&Plaintext { poly, level, scale })
            .expect("encrypt")
    }
}

fn evaluator<B: Backend>(params: &Params, backend: B, keys: &EvaluationKeys) -> Evaluator<B> {
    let mut e = Evaluator::with_backend(params, backend).expect("evaluator");
    e.set_keys(keys).expect("keys");
    e
}

/// Relinearisation, rescale, rotations (one by one and hoisted) and conjugation on `b`
/// against the CPU evaluator with the same keys and inputs.
fn check_evaluator<B: Backend>(params: &Params, b: B) {
    let mut client = Client::new(params);
    let keys = client
        .keygen
        .evaluation_keys(&STEPS, true)
        .expect("evaluation keys");
    let reference = evaluator(params, cpu(params), &keys);
    let device = evaluator(params, b, &keys);
    let top = params.max_level();
    let (x, y) = (client.encrypt(top), client.encrypt(top));
    let (dx, dy) = (
        device.upload(&x).expect("upload"),
        device.upload(&y).expect("upload"),
    );
    let down = |ct: &Ciphertext<B::Poly>| device.download(ct).expect("download");

    let want = reference
        .rescale(&reference.mul_relin(&x, &y).unwrap())
        .unwrap();
    let got = device
        .rescale(&device.mul_relin(&dx, &dy).unwrap())
        .unwrap();
    assert_eq!(down(&got), want, "mul_relin + rescale");
    for step in STEPS {
        let want = reference.rotate(&x, step).unwrap();
        assert_eq!(
            down(&device.rotate(&dx, step).unwrap()),
            want,
            "rotate {step}"
        );
    }
    let want = reference.conjugate(&x).unwrap();
    assert_eq!(down(&device.conjugate(&dx).unwrap()), want, "conjugate");
    let want = reference.rotate_hoisted(&x, &STEPS).unwrap();
    let got = device.rotate_hoisted(&dx, &STEPS).unwrap();
    let got: Vec<Ciphertext> = got.iter().map(down).collect();
    assert_eq!(got, want, "rotate_hoisted");
    let want = reference.add_rotations_hoisted(&x, &STEPS).unwrap();
    let got = device.add_rotations_hoisted(&dx, &STEPS).unwrap();
    assert_eq!(down(&got), want, "add_rotations_hoisted");
}

/// A LoRA plan (random factors from a fixed seed) applied on `b` and on the CPU.
fn check_lora<B: Backend>(params: &Params, b: B) {
    let mut client = Client::new(params);
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (a, bm) = random_lora_factors(64, 48, 4, &mut rng).expect("factors");
    let keyless = Evaluator::cpu(params);
    let plan = LoraPlan::new(&keyless, &client.encoder, &a, &bm, 2).expect("plan");
    let keys = client
        .keygen
        .evaluation_keys(&plan.rotation_steps(), false)
        .expect("keys");
    let reference = evaluator(params, cpu(params), &keys);
    let device = evaluator(params, b, &keys);
    let device_plan = LoraPlan::new(&device, &client.encoder, &a, &bm, 2).expect("plan");
    let x: Vec<f64> = (0..64).map(|_| rng.random_range(-1.0..1.0)).collect();
    let inputs: Vec<Ciphertext> = plan
        .input_layout()
        .pack(&x)
        .expect("pack")
        .iter()
        .map(|slots| client.encrypt_values(slots, plan.input_level()))
        .collect();
    let want = plan.apply(&reference, &inputs).expect("CPU apply");
    let device_inputs: Vec<_> = inputs
        .iter()
        .map(|ct| device.upload(ct).expect("upload"))
        .collect();
    let got = device_plan
        .apply(&device, &device_inputs)
        .expect("device apply");
    let got: Vec<Ciphertext> = got
        .iter()
        .map(|ct| device.download(ct).expect("download"))
        .collect();
    assert_eq!(got, want, "LoRA apply");
}

// ---- batched hoisting on the CPU ---------------------------------------------------------------

/// The CPU backend asking for hoisted batches of `batch` steps (as a device backend does),
/// and recording the largest batch it was given and how many steps it switched in all, so
/// the evaluator's batched path runs here against the one-step CPU evaluator.
struct Batching {
    cpu: CpuBackend,
    batch: usize,
    largest: Arc<AtomicUsize>,
    switched: Arc<AtomicUsize>,
}

impl Backend for Batching {
    type Poly = RnsPoly;

    fn name(&self) -> &'static str {
        "cpu-batching"
    }
    fn context(&self) -> &Arc<RingContext> {
        self.cpu.context()
    }
    fn upload(&self, p: &RnsPoly) -> Result<RnsPoly, BackendError> {
        self.cpu.upload(p)
    }
    fn download(&self, p: &RnsPoly) -> Result<RnsPoly, BackendError> {
        self.cpu.download(p)
    }
    fn basis(&self, p: &RnsPoly) -> Basis {
        self.cpu.basis(p)
    }
    fn is_ntt(&self, p: &RnsPoly) -> bool {
        self.cpu.is_ntt(p)
    }
    fn zero(&self, basis: Basis, ntt_form: bool) -> RnsPoly {
        self.cpu.zero(basis, ntt_form)
    }
    fn ntt_forward(&self, p: &mut RnsPoly) {
        self.cpu.ntt_forward(p)
    }
    fn ntt_inverse(&self, p: &mut RnsPoly) {
        self.cpu.ntt_inverse(p)
    }
    fn add_assign(&self, a: &mut RnsPoly, b: &RnsPoly) {
        self.cpu.add_assign(a, b)
    }
    fn sub_assign(&self, a: &mut RnsPoly, b: &RnsPoly) {
        self.cpu.sub_assign(a, b)
    }
    fn neg_assign(&self, a: &mut RnsPoly) {
        self.cpu.neg_assign(a)
    }
    fn mul_assign(&self, a: &mut RnsPoly, b: &RnsPoly) {
        self.cpu.mul_assign(a, b)
    }
    fn mul_add_assign(&self, acc: &mut RnsPoly, a: &RnsPoly, b: &RnsPoly) {
        self.cpu.mul_add_assign(acc, a, b)
    }
    fn mul_scalar_assign(&self, a: &mut RnsPoly, residues: &[u64]) {
        self.cpu.mul_scalar_assign(a, residues)
    }
    fn automorphism(&self, p: &RnsPoly, galois: u64) -> RnsPoly {
        self.cpu.automorphism(p, galois)
    }
    fn truncate_q(&self, p: &mut RnsPoly, q: usize) {
        self.cpu.truncate_q(p, q)
    }
    fn rescale(&self, p: &RnsPoly) -> RnsPoly {
        self.cpu.rescale(p)
    }
    fn decompose(&self, c: &RnsPoly) -> Vec<RnsPoly> {
        self.cpu.decompose(c)
    }
    fn key_switch_inner_product(
        &self,
        digits: &[RnsPoly],
        key: &[[RnsPoly; 2]],
        galois: Option<u64>,
    ) -> [RnsPoly; 2] {
        self.cpu.key_switch_inner_product(digits, key, galois)
    }
    fn mod_down(&self, x: &RnsPoly) -> RnsPoly {
        self.cpu.mod_down(x)
    }
    fn key_switch_inner_products(
        &self,
        digits: &[RnsPoly],
        steps: &[KeySwitchStep<'_, RnsPoly>],
    ) -> Vec<[RnsPoly; 2]> {
        self.largest.fetch_max(steps.len(), Ordering::Relaxed);
        self.switched.fetch_add(steps.len(), Ordering::Relaxed);
        self.cpu.key_switch_inner_products(digits, steps)
    }
    fn automorphisms(&self, p: &RnsPoly, galois: &[u64]) -> Vec<RnsPoly> {
        self.largest.fetch_max(galois.len(), Ordering::Relaxed);
        self.cpu.automorphisms(p, galois)
    }
    fn key_switch_batch(&self, _basis: Basis) -> usize {
        self.batch
    }
}

/// Runs `check` (a generic body) on a [`Batching`] CPU backend of 3 steps per batch and
/// checks that the evaluator used full batches and no larger ones.
fn with_batches_of_3(check: impl FnOnce(&Params, Batching)) {
    let p = params(ParamSpec::n13_depth2());
    let largest = Arc::new(AtomicUsize::new(0));
    let backend = Batching {
        cpu: cpu(&p),
        batch: 3,
        largest: largest.clone(),
        switched: Arc::default(),
    };
    check(&p, backend);
    assert_eq!(
        largest.load(Ordering::Relaxed),
        3,
        "the hoisted paths batch up to key_switch_batch() steps"
    );
}

// ---- the tests -----------------------------------------------------------------------------

#[test]
fn cpu_inner_products_match_the_definition() {
    let p = params(ParamSpec::n13_depth2());
    check_inner_products(&cpu(&p), p.alpha(), 1);
}

#[test]
fn cpu_evaluator_with_batched_hoisting() {
    with_batches_of_3(check_evaluator);
}

#[test]
fn cpu_lora_with_batched_hoisting() {
    with_batches_of_3(check_lora);
}

#[test]
fn repeated_hoisted_steps_are_switched_once() {
    let p = params(ParamSpec::n13_depth2());
    let switched = Arc::new(AtomicUsize::new(0));
    let backend = Batching {
        cpu: cpu(&p),
        batch: 3,
        largest: Arc::default(),
        switched: switched.clone(),
    };
    let mut client = Client::new(&p);
    let keys = client.keygen.evaluation_keys(&STEPS, false).expect("keys");
    let reference = evaluator(&p, cpu(&p), &keys);
    let device = evaluator(&p, backend, &keys);
    let x = client.encrypt_values(&[0.5, -0.25, 0.125], p.max_level());
    // 7 and 7 + slots rotate alike; 0 and `slots` are the identity.
    let slots = p.slots() as i64;
    let steps = [1, 7, 1, 0, 7 + slots, -1, slots, 1];
    let got = device.rotate_hoisted(&x, &steps).expect("hoisted");
    assert_eq!(got.len(), steps.len());
    for (&step, ct) in steps.iter().zip(&got) {
        let want = reference.rotate(&x, step).expect("rotate");
        assert_eq!(ct, &want, "hoisted step {step} differs from its rotation");
    }
    assert_eq!(
        switched.load(Ordering::Relaxed),
        3,
        "one key switch per distinct rotation (1, 7, -1)"
    );
}

#[test]
fn gpu_primitives_n13() {
    let p = params(ParamSpec::n13_depth2());
    if let Some(b) = gpu(&p) {
        check_primitives(&b, p.alpha(), 2);
    }
}

#[test]
fn gpu_primitives_n16() {
    let p = params(ParamSpec::n16_depth24());
    if let Some(b) = gpu(&p) {
        check_primitives(&b, p.alpha(), 3);
    }
}

#[test]
fn gpu_evaluator_n13() {
    let p = params(ParamSpec::n13_depth2());
    if let Some(b) = gpu(&p) {
        check_evaluator(&p, b);
    }
}

#[test]
fn gpu_evaluator_n16() {
    let p = params(ParamSpec::n16_depth24());
    if let Some(b) = gpu(&p) {
        check_evaluator(&p, b);
    }
}

#[test]
fn gpu_lora_n13() {
    let p = params(ParamSpec::n13_depth2());
    if let Some(b) = gpu(&p) {
        check_lora(&p, b);
    }
}
