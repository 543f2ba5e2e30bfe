//! CUDA graph capture of a LoRA apply (`CudaBackend::capture`, backend/cuda/graph.rs).
//!
//! - Every machine: `LoraPlan::apply` calls the backend from the calling thread only, which
//!   is what capturing it on that thread relies on (checked through a backend that records
//!   the threads that call it).
//! - With the `cuda` feature and a GPU: a captured apply replayed on two inputs gives the
//!   eager apply's ciphertexts bit for bit; the graph's memory stays its own while other
//!   polynomials come and go; what cannot be captured (upload, download, synchronize, a
//!   nested capture, a graph launch, a timing event) fails the capture with an error, as do
//!   a failure and a panic inside it, and the backend stays usable. Without a GPU these
//!   print "skipped: <reason>" to stderr and pass, unless HELORA_REQUIRE_GPU=1 (the GPU
//!   machine's run) makes them fail.

mod common;

use common::skip_gpu;

use helora::backend::{Backend, BackendError, CpuBackend};
use helora::ckks::*;
use helora::linear::{random_lora_factors, LoraPlan};
use helora::ring::{Basis, RingContext, RnsPoly};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};

fn params() -> Params {
    Params::new(ParamSpec::n13_depth2()).expect("preset parameters")
}

/// A server with a small LoRA plan and its keys on `backend`, and two tokens' inputs (one
/// ciphertext each) on the backend.
struct Setup<B: Backend> {
    server: Evaluator<B>,
    plan: LoraPlan<B>,
    inputs: [Vec<Ciphertext<B::Poly>>; 2],
}

fn setup<B: Backend>(params: &Params, backend: B) -> Setup<B> {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut keygen = KeyGenerator::new(params).expect("keygen");
    let encoder = Encoder::new(params.n()).expect("encoder");
    let mut encryptor = SymmetricEncryptor::new(params, keygen.secret_key()).expect("encryptor");
    let (a, b) = random_lora_factors(64, 48, 4, &mut rng).expect("factors");
    let mut server = Evaluator::with_backend(params, backend).expect("evaluator");
    let plan = LoraPlan::new(&server, &encoder, &a, &b, 2).expect("plan");
    let keys = keygen
        .evaluation_keys(&plan.rotation_steps(), false)
        .expect("keys");
    server.set_keys(&keys).expect("keys on the backend");
    let scale = params.default_scale();
    let level = plan.input_level();
    let mut token = || -> Vec<Ciphertext<B::Poly>> {
        let x: Vec<f64> = (0..64).map(|_| rng.random_range(-1.0..1.0)).collect();
        plan.input_layout()
            .pack(&x)
            .expect("pack")
            .iter()
            .map(|slots| {
                let poly = encoder
                    .encode(params.ring(), slots, scale, Basis::level(level))
                    .expect("encode");
                let ct = encryptor
                    .encrypt(&Plaintext { poly, level, scale })
                    .expect("encrypt");
                server.upload(&ct).expect("upload")
            })
            .collect()
    };
    let inputs = [token(), token()];
    Setup {
        server,
        plan,
        inputs,
    }
}

// ---- every machine: the apply calls the backend from the calling thread only ---------------

/// A backend that notes the thread of every call and hands it on.
struct Recording<B> {
    inner: B,
    threads: Mutex<HashSet<ThreadId>>,
}

impl<B> Recording<B> {
    fn note(&self) {
        if let Ok(mut t) = self.threads.lock() {
            t.insert(thread::current().id());
        }
    }
}

impl<B: Backend> Backend for Recording<B> {
    type Poly = B::Poly;

    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn context(&self) -> &Arc<RingContext> {
        self.inner.context()
    }
    fn upload(&self, p: &RnsPoly) -> Result<B::Poly, BackendError> {
        self.note();
        self.inner.upload(p)
    }
    fn download(&self, p: &B::Poly) -> Result<RnsPoly, BackendError> {
        self.note();
        self.inner.download(p)
    }
    fn basis(&self, p: &B::Poly) -> Basis {
        self.inner.basis(p)
    }
    fn is_ntt(&self, p: &B::Poly) -> bool {
        self.inner.is_ntt(p)
    }
    fn zero(&self, basis: Basis, ntt_form: bool) -> B::Poly {
        self.note();
        self.inner.zero(basis, ntt_form)
    }
    fn ntt_forward(&self, p: &mut B::Poly) {
        self.note();
        self.inner.ntt_forward(p)
    }
    fn ntt_inverse(&self, p: &mut B::Poly) {
        self.note();
        self.inner.ntt_inverse(p)
    }
    fn add_assign(&self, a: &mut B::Poly, b: &B::Poly) {
        self.note();
        self.inner.add_assign(a, b)
    }
    fn sub_assign(&self, a: &mut B::Poly, b: &B::Poly) {
        self.note();
        self.inner.sub_assign(a, b)
    }
    fn neg_assign(&self, a: &mut B::Poly) {
        self.note();
        self.inner.neg_assign(a)
    }
    fn mul_assign(&self, a: &mut B::Poly, b: &B::Poly) {
        self.note();
        self.inner.mul_assign(a, b)
    }
    fn mul_add_assign(&self, acc: &mut B::Poly, a: &B::Poly, b: &B::Poly) {
        self.note();
        self.inner.mul_add_assign(acc, a, b)
    }
    fn mul_scalar_assign(&self, a: &mut B::Poly, residues: &[u64]) {
        self.note();
        self.inner.mul_scalar_assign(a, residues)
    }
    fn automorphism(&self, p: &B::Poly, galois: u64) -> B::Poly {
        self.note();
        self.inner.automorphism(p, galois)
    }
    fn truncate_q(&self, p: &mut B::Poly, q: usize) {
        self.note();
        self.inner.truncate_q(p, q)
    }
    fn rescale(&self, p: &B::Poly) -> B::Poly {
        self.note();
        self.inner.rescale(p)
    }
    fn decompose(&self, c: &B::Poly) -> Vec<B::Poly> {
        self.note();
        self.inner.decompose(c)
    }
    fn key_switch_inner_product(
        &self,
        digits: &[B::Poly],
        key: &[[B::Poly; 2]],
        galois: Option<u64>,
    ) -> [B::Poly; 2] {
        self.note();
        self.inner.key_switch_inner_product(digits, key, galois)
    }
    fn mod_down(&self, x: &B::Poly) -> B::Poly {
        self.note();
        self.inner.mod_down(x)
    }
}

/// A single plan's apply queues its device work from the calling thread only: the group code
/// spreads a group's members over the worker pool, and a single plan is a group of one.
#[test]
fn a_plan_apply_calls_the_backend_from_the_calling_thread_only() {
    let p = params();
    let backend = Recording {
        inner: CpuBackend::new(p.ring().clone(), p.alpha()),
        threads: Mutex::new(HashSet::new()),
    };
    let s = setup(&p, backend);
    // A worker pool of at least two threads, so that a split would show.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("thread pool");
    let (me, calls) = pool.install(|| {
        let me = thread::current().id();
        s.server.backend().threads.lock().expect("lock").clear();
        let out = s.plan.apply(&s.server, &s.inputs[0]).expect("apply");
        assert!(!out.is_empty());
        (me, s.server.backend().threads.lock().expect("lock").clone())
    });
    assert_eq!(
        calls,
        HashSet::from([me]),
        "backend calls from other threads"
    );
    // The same from a thread outside any pool (the bench's and a server's case).
    s.server.backend().threads.lock().expect("lock").clear();
    let out = s.plan.apply(&s.server, &s.inputs[1]).expect("apply");
    assert!(!out.is_empty());
    let calls = s.server.backend().threads.lock().expect("lock").clone();
    assert_eq!(calls, HashSet::from([thread::current().id()]));
}

// ---- with a GPU ----------------------------------------------------------------------------

#[test]
fn gpu_graph_of_a_lora_apply_replays_like_the_eager_apply() {
    #[cfg(feature = "cuda")]
    if let Some(b) = gpu::backend(&params()) {
        gpu::replays_like_eager(&params(), b);
    }
    #[cfg(not(feature = "cuda"))]
    skip_gpu("built without the `cuda` feature");
}

#[test]
fn gpu_capture_refuses_what_cannot_be_captured() {
    #[cfg(feature = "cuda")]
    if let Some(b) = gpu::backend(&params()) {
        gpu::refusals_leave_the_backend_usable(b);
    }
    #[cfg(not(feature = "cuda"))]
    skip_gpu("built without the `cuda` feature");
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use helora::backend::{CudaBackend, CudaPoly};
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    pub(super) fn backend(params: &Params) -> Option<CudaBackend> {
        match CudaBackend::new(params.ring().clone(), params.alpha()) {
            Ok(b) => Some(b),
            // Only a missing GPU is a skip; any other error is a failure of the backend.
            Err(e @ helora::backend::BackendError::NoDevice(_)) => {
                skip_gpu(&e.to_string());
                None
            }
            Err(e) => panic!("the CUDA backend failed to start: {e}"),
        }
    }

    fn download(server: &Evaluator<CudaBackend>, cts: &[Ciphertext<CudaPoly>]) -> Vec<Ciphertext> {
        cts.iter()
            .map(|ct| server.download(ct).expect("download"))
            .collect()
    }

    fn refill(b: &CudaBackend, dst: &mut [Ciphertext<CudaPoly>], src: &[Ciphertext<CudaPoly>]) {
        for (d, s) in dst.iter_mut().zip(src) {
            b.copy_into(&mut d.c0, &s.c0).expect("copy c0");
            b.copy_into(&mut d.c1, &s.c1).expect("copy c1");
        }
    }

    pub(super) fn replays_like_eager(params: &Params, backend: CudaBackend) {
        let Setup {
            server,
            plan,
            inputs,
        } = setup(params, backend);
        let want: Vec<Vec<Ciphertext>> = inputs
            .iter()
            .map(|x| download(&server, &plan.apply(&server, x).expect("eager apply")))
            .collect();
        assert_ne!(want[0], want[1], "two different inputs");
        let b = server.backend();
        let mut fixed = inputs[0].clone();
        let (graph, reply) = b.capture(|| plan.apply(&server, &fixed)).expect("capture");
        let reply = reply.expect("the apply during the capture");
        // Eager work after the capture, kept across the replays: none of its buffers may be
        // one the graph uses.
        let kept = plan.apply(&server, &inputs[1]).expect("eager apply");
        let launches = b.launches();
        for round in [1, 0, 1] {
            refill(b, &mut fixed, &inputs[round]);
            graph.launch().expect("replay");
            assert_eq!(
                download(&server, &reply),
                want[round],
                "replay on input {round}"
            );
        }
        assert_eq!(b.launches(), launches, "a replay queued kernels of its own");
        assert_eq!(
            download(&server, &kept),
            want[1],
            "eager reply after replays"
        );

        // Other polynomials dropped, the pool trimmed and churned: the graph still replays
        // right, and the churn's replies are not overwritten by it.
        drop(kept);
        b.trim_pool();
        let churn: Vec<_> = (0..3)
            .map(|_| plan.apply(&server, &inputs[0]).expect("eager apply"))
            .collect();
        refill(b, &mut fixed, &inputs[1]);
        graph.launch().expect("replay");
        assert_eq!(download(&server, &reply), want[1], "replay after churn");
        for c in &churn {
            assert_eq!(download(&server, c), want[0], "eager reply during replays");
        }
        drop(churn);
        // The reply outlives its graph.
        drop(graph);
        b.trim_pool();
        let _ = plan.apply(&server, &inputs[0]).expect("eager apply");
        assert_eq!(
            download(&server, &reply),
            want[1],
            "reply after the graph went"
        );
        b.synchronize().expect("no error left behind");
    }

    fn random(ctx: &RingContext, basis: Basis, rng: &mut ChaCha8Rng) -> RnsPoly {
        let mut p = RnsPoly::zero(ctx.n(), basis, true);
        for (i, limb) in p.limbs_mut().enumerate() {
            let q = ctx.modulus(basis, i).value();
            limb.iter_mut().for_each(|x| *x = rng.random_range(0..q));
        }
        p
    }

    /// The backend works after a failed capture: a round trip and a small graph.
    fn still_usable(b: &CudaBackend, x: &CudaPoly, host: &RnsPoly, what: &str) {
        b.synchronize()
            .unwrap_or_else(|e| panic!("after {what}: {e}"));
        assert_eq!(&b.download(x).expect("download"), host, "after {what}");
        let basis = b.basis(x);
        let (graph, zero) = b
            .capture(|| b.zero(basis, true))
            .unwrap_or_else(|e| panic!("a capture after {what}: {e}"));
        graph.launch().expect("replay");
        assert!(b
            .download(&zero)
            .expect("download")
            .data()
            .iter()
            .all(|&w| w == 0));
    }

    pub(super) fn refusals_leave_the_backend_usable(b: CudaBackend) {
        let ctx = b.context().clone();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let basis = Basis::level(ctx.max_level());
        let host = random(&ctx, basis, &mut rng);
        let x = b.upload(&host).expect("upload");

        // A graph that works: acc += x per replay.
        let mut acc = b.upload(&host).expect("upload");
        let (adder, ()) = b
            .capture(|| b.add_assign(&mut acc, &x))
            .expect("capture of an add");
        adder.launch().expect("replay");
        adder.launch().expect("replay");
        let mut want = host.clone();
        for _ in 0..2 {
            helora::ring::arith::add_assign(&ctx, &mut want, &host);
        }
        assert_eq!(
            b.download(&acc).expect("download"),
            want,
            "two replays of acc += x"
        );

        let timer = b.timer().expect("timer");
        type Attempt<'a> = Box<dyn Fn() -> bool + 'a>;
        let attempts: Vec<(&str, Attempt)> = vec![
            ("upload", Box::new(|| b.upload(&host).is_err())),
            ("download", Box::new(|| b.download(&x).is_err())),
            ("synchronize", Box::new(|| b.synchronize().is_err())),
            ("a nested capture", Box::new(|| b.capture(|| ()).is_err())),
            ("a graph launch", Box::new(|| adder.launch().is_err())),
            ("a timing event", Box::new(|| timer.start().is_err())),
        ];
        for (what, attempt) in attempts {
            let refused = Cell::new(false);
            let r = b.capture(|| refused.set(attempt()));
            assert!(refused.get(), "{what} inside a capture returned no error");
            assert!(r.is_err(), "a capture with {what} inside succeeded");
            still_usable(&b, &x, &host, what);
        }

        // A failure of the captured work fails the capture, not the backend.
        let r = b.capture(|| {
            let mut y = x.clone();
            b.truncate_q(&mut y, 0);
            y
        });
        assert!(r.is_err(), "a capture whose work failed succeeded");
        still_usable(&b, &x, &host, "a failed operation");

        // A panic inside ends the capture on the way out.
        let r = catch_unwind(AssertUnwindSafe(|| {
            b.capture(|| -> () { panic!("inside a capture (expected by the test)") })
        }));
        assert!(r.is_err(), "the panic was not passed on");
        still_usable(&b, &x, &host, "a panic");

        // The first graph still replays.
        adder.launch().expect("replay");
        helora::ring::arith::add_assign(&ctx, &mut want, &host);
        assert_eq!(b.download(&acc).expect("download"), want, "a third replay");
    }
}
