//! The secure server's HE work on CUDA beside other work on a second stream of the same
//! context: the construction of engine/src/secure/gpu.rs (there the other stream is candle's)
//! with the `cuda` feature alone. A PLL server whose evaluators are siblings of one backend
//! on a stream of their own applies a batch on two worker threads (each call binds the
//! context on its thread), while another thread keeps a second backend busy on the "model"
//! stream; with PLL off the replies equal the CPU server's bit for bit, and the model
//! stream's work equals the CPU's.
//!
//! Without a GPU (or the stand-in driver) the test prints "skipped: <reason>" and passes,
//! unless HELORA_REQUIRE_GPU=1 makes it fail.

mod common;

#[cfg(not(feature = "cuda"))]
use common::skip_gpu;

#[test]
fn gpu_pll_server_on_its_own_stream_matches_the_cpu() {
    #[cfg(feature = "cuda")]
    gpu::run();
    #[cfg(not(feature = "cuda"))]
    skip_gpu("built without the `cuda` feature");
}

#[cfg(feature = "cuda")]
mod gpu {
    use super::common::skip_gpu;
    use cudarc::driver::CudaContext;
    use helora::backend::{Backend, BackendError, CpuBackend, CudaBackend};
    use helora::ckks::*;
    use helora::linear::random_lora_factors;
    use helora::pll::{ClientId, PllServer, PllSettings};
    use helora::ring::{Basis, RnsPoly};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub(super) fn run() {
        let params = Params::new(ParamSpec::n13_depth2()).expect("preset parameters");
        // Only a missing GPU is a skip.
        match CudaBackend::new(params.ring().clone(), params.alpha()) {
            Ok(b) => drop(b),
            Err(e @ BackendError::NoDevice(_)) => return skip_gpu(&e.to_string()),
            Err(e) => panic!("the CUDA backend failed to start: {e}"),
        }
        let ctx = CudaContext::new(0).expect("a CUDA context");
        // SAFETY: no buffer is used on both streams (each backend has its own pool), so
        // stream order is all either side needs; turned off before the second stream exists.
        unsafe { ctx.disable_event_tracking() };
        let model_stream = ctx.new_stream().expect("the model's stream");
        let he_stream = ctx.new_stream().expect("the HE server's stream");

        let mut rng = ChaCha8Rng::seed_from_u64(77);
        let (a, b) = random_lora_factors(128, 96, 4, &mut rng).expect("factors");
        let first = CudaBackend::with_stream(params.ring().clone(), params.alpha(), he_stream)
            .expect("the HE server's backend");
        let mut gpu_server = PllServer::with_backend(&params, PllSettings::off(), move |p| {
            Evaluator::with_backend(p, first.sibling())
        })
        .expect("the PLL server on CUDA");
        let mut cpu_server = PllServer::cpu(&params, PllSettings::off()).expect("CPU server");
        let gpu_adapter = gpu_server.add_adapter(&a, &b, 2).expect("adapter on CUDA");
        let cpu_adapter = cpu_server
            .add_adapter(&a, &b, 2)
            .expect("adapter on the CPU");

        // One client, registered with both servers with the same keys.
        let mut keygen = KeyGenerator::new(&params).expect("keygen");
        let keys = keygen
            .evaluation_keys(&cpu_server.rotation_steps(), false)
            .expect("keys");
        for server in [&mut cpu_server as &mut dyn Register, &mut gpu_server] {
            server.register(&keys, keygen.public_key());
        }
        let encoder = Encoder::new(params.n()).expect("encoder");
        let mut encryptor =
            SymmetricEncryptor::new(&params, keygen.secret_key()).expect("encryptor");
        let plan = cpu_server.adapter(cpu_adapter).expect("adapter").plan();
        let (level, scale) = (plan.input_level(), params.default_scale());
        let tokens: Vec<Vec<Ciphertext>> = (0..3)
            .map(|_| {
                let x: Vec<f64> = (0..128).map(|_| rng.random_range(-1.0..1.0)).collect();
                plan.input_layout()
                    .pack(&x)
                    .expect("pack")
                    .iter()
                    .map(|slots| {
                        let pt = encoder
                            .encode_at(&params, slots, level, scale)
                            .expect("encode");
                        encryptor.encrypt(&pt).expect("encrypt")
                    })
                    .collect()
            })
            .collect();
        // Batches on a pool of two threads, whatever the machine has.
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a pool of two threads");
        let want = two
            .install(|| cpu_server.apply_group_batch(ClientId(1), &[cpu_adapter], &tokens))
            .expect("CPU batch");

        // The "model": NTT round trips on the other stream, from another thread, meanwhile.
        let model = CudaBackend::with_stream(params.ring().clone(), params.alpha(), model_stream)
            .expect("the model stream's backend");
        let cpu = CpuBackend::new(params.ring().clone(), params.alpha());
        let got = std::thread::scope(|scope| {
            let busy = scope.spawn(|| {
                let mut rng = ChaCha8Rng::seed_from_u64(3);
                let basis = Basis::level(params.max_level());
                for _ in 0..4 {
                    let mut host = RnsPoly::zero(params.n(), basis, false);
                    for (i, limb) in host.limbs_mut().enumerate() {
                        let q = params.ring().modulus(basis, i).value();
                        limb.iter_mut().for_each(|x| *x = rng.random_range(0..q));
                    }
                    let mut dev = model.upload(&host).expect("upload");
                    model.ntt_forward(&mut dev);
                    let mut want = host.clone();
                    cpu.ntt_forward(&mut want);
                    assert_eq!(
                        model.download(&dev).expect("download"),
                        want,
                        "model stream"
                    );
                }
            });
            let got = two
                .install(|| gpu_server.apply_group_batch(ClientId(1), &[gpu_adapter], &tokens))
                .expect("batch on CUDA");
            busy.join().expect("the model stream's thread");
            got
        });
        assert_eq!(got.len(), want.len());
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "token {k}: the CUDA server's reply differs from the CPU's"
            );
        }
        model.synchronize().expect("no error left behind");
    }

    /// Registration of client 1 with either server.
    trait Register {
        fn register(&mut self, keys: &EvaluationKeys, public: PublicKey);
    }

    impl<B: Backend> Register for PllServer<B> {
        fn register(&mut self, keys: &EvaluationKeys, public: PublicKey) {
            // Parity, not admission, is under test: the keys' own seed is the challenge.
            let seed = keys.a_seed;
            self.register_client(ClientId(1), keys, public, &seed)
                .expect("client registration");
        }
    }
}
