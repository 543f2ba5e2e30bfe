//! `helora bench ops`: key generation, then a median timing of each CKKS operation on the
//! CPU backend, single-threaded, at the top level of a preset parameter set.

use super::provenance::Provenance;
use super::report::{Machine, OpTiming, OpsReport, Setup};
use super::timing::{measure, Iterations};
use super::{keys, machine, plaintext};
use crate::progress::Progress;
use anyhow::{anyhow, Context, Result};
use helora::backend::Backend;
use helora::ckks::{
    max_modulus_bits_128, Ciphertext, Decryptor, Encoder, Encryptor, Evaluator, ParamSpec, Params,
    Plaintext, SymmetricEncryptor,
};
use helora::ring::{arith, Basis};
use std::convert::Infallible;
use std::hint::black_box;

/// Ring degrees with a preset (`ParamSpec::preset`).
pub const SUPPORTED_N: [usize; 2] = [8192, 65536];

/// Steps of the hoisted-rotation benchmark; step 1 is also the single rotation.
pub const HOISTED_STEPS: [i64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

#[derive(Clone, Debug)]
pub struct OpsOptions {
    pub n: usize,
    /// Fixed timed iterations per operation; `None` for adaptive.
    pub iters: Option<usize>,
}

/// The validated preset for ring degree `n`.
pub fn params_for(n: usize) -> Result<Params> {
    let spec = ParamSpec::preset(n).ok_or_else(|| {
        let list: Vec<String> = SUPPORTED_N.iter().map(|n| n.to_string()).collect();
        anyhow!(
            "unsupported ring degree N = {n}; supported values: {}",
            list.join(", ")
        )
    })?;
    Params::new(spec).with_context(|| format!("building the N = {n} parameter set"))
}

/// Runs the bench on a pool of one thread: each operation's latency on one core, as the
/// report says (the CPU backend would otherwise spread a key switch's parts over the cores).
pub fn run(options: &OpsOptions) -> Result<OpsReport> {
    super::thread_pool(1)?.install(|| run_here(options))
}

fn run_here(options: &OpsOptions) -> Result<OpsReport> {
    let params = params_for(options.n)?;
    let iters = options
        .iters
        .map_or(Iterations::DEFAULT_ADAPTIVE, Iterations::Fixed);
    let keys = keys::generate(&params, &HOISTED_STEPS)?;
    let ops = time_ops(&params, &keys, iters)?;
    let iters_mode = if options.iters.is_some() {
        "fixed"
    } else {
        "adaptive"
    };
    Ok(OpsReport {
        run: Provenance::now(),
        setup: setup(&params),
        machine: host_machine(&params, 1),
        iters_mode,
        keygen: keys.elapsed,
        switching_keys: keys.switching_keys,
        ops,
        device: None,
    })
}

/// The parameter set as the report shows it.
pub fn setup(params: &Params) -> Setup {
    let spec = params.spec();
    Setup {
        n: params.n(),
        slots: params.slots(),
        level: params.max_level(),
        limbs: params.max_level() + 1,
        special_primes: params.p_primes().len(),
        digits: spec.digits,
        log_qp: spec.total_modulus_bits(),
        log_qp_max_128: max_modulus_bits_128(spec.log_n).unwrap_or(0),
        log_scale: spec.log_scale,
    }
}

/// The host CPU, its NTT kernel for this ring, and the threads used.
pub fn host_machine(params: &Params, threads: usize) -> Machine {
    Machine {
        cpu: machine::cpu_model(),
        simd: machine::ntt_kernels(params.ring()),
        simd_cpu: machine::simd_capability(),
        threads,
    }
}

/// Times every operation in this thread (the CPU backend does not spawn any).
/// What the timed operations start from, on any backend: the client's encryptors and
/// decryptor, an encoder, random top-level values, their plaintext (host and backend) and
/// two ciphertexts on the backend (the first also on the host).
pub struct Operands<B: Backend> {
    pub symmetric: SymmetricEncryptor,
    pub public: Encryptor,
    pub decryptor: Decryptor,
    pub encoder: Encoder,
    pub values: Vec<f64>,
    pub pt: Plaintext,
    pub pt_dev: Plaintext<B::Poly>,
    pub ct_host: Ciphertext,
    pub ct_a: Ciphertext<B::Poly>,
    pub ct_b: Ciphertext<B::Poly>,
}

impl<B: Backend> Operands<B> {
    pub fn new(params: &Params, keys: &keys::BenchKeys, evaluator: &Evaluator<B>) -> Result<Self> {
        let top = params.max_level();
        let mut symmetric = SymmetricEncryptor::new(params, &keys.secret)?;
        let public = Encryptor::new(params, keys.public.clone())?;
        let decryptor = Decryptor::new(params, &keys.secret)?;
        let encoder = Encoder::new(params.n()).context("building the encoder")?;
        let values = plaintext::random_values(params.slots())?;
        let pt = plaintext::encode(&encoder, params, &values, top)?;
        let pt_dev = evaluator.upload_plaintext(&pt)?;
        let ct_host = symmetric.encrypt(&pt)?;
        let ct_a = evaluator.upload(&ct_host)?;
        let second = symmetric.encrypt(&plaintext::random(&encoder, params, top)?)?;
        let ct_b = evaluator.upload(&second)?;
        Ok(Self {
            symmetric,
            public,
            decryptor,
            encoder,
            values,
            pt,
            pt_dev,
            ct_host,
            ct_a,
            ct_b,
        })
    }
}

fn time_ops(params: &Params, keys: &keys::BenchKeys, iters: Iterations) -> Result<Vec<OpTiming>> {
    let ctx = params.ring();
    let top = params.max_level();
    let mut evaluator = Evaluator::cpu(params);
    evaluator
        .set_keys(&keys.eval)
        .context("loading the evaluation keys")?;
    let Operands {
        mut symmetric,
        mut public,
        decryptor,
        encoder,
        values,
        pt,
        pt_dev,
        ct_host,
        ct_a,
        ct_b,
    } = Operands::new(params, keys, &evaluator)?;

    const COUNT: u64 = 14;
    let progress = Progress::start_long(
        &format!("timing {COUNT} operations (N = {})", params.n()),
        COUNT,
        "operations",
    );
    let mut ops = Vec::new();
    let mut record = |key, what, timing| {
        ops.push(OpTiming { key, what, timing });
        progress.advance();
    };

    // One limb: the unit every other cost is made of.
    let table = ctx.ntt_table(Basis::level(top), 0);
    let mut limb = pt.poly.limb(0).to_vec();
    let t = measure(iters, || {
        table.forward(black_box(&mut limb));
        Ok::<_, Infallible>(())
    })?;
    record(
        "ntt_us",
        "forward NTT of one limb (one prime, N coefficients)",
        t,
    );
    let t = measure(iters, || {
        table.inverse(black_box(&mut limb));
        Ok::<_, Infallible>(())
    })?;
    record(
        "intt_us",
        "inverse NTT of one limb (one prime, N coefficients)",
        t,
    );

    let mut poly = pt.poly.clone();
    let t = measure(iters, || {
        poly.ntt_form = false;
        arith::ntt_forward(ctx, black_box(&mut poly));
        Ok::<_, Infallible>(())
    })?;
    record(
        "ntt_poly_us",
        "forward NTT of one polynomial at the top level (all its limbs)",
        t,
    );
    let t = measure(iters, || {
        poly.ntt_form = true;
        arith::ntt_inverse(ctx, black_box(&mut poly));
        Ok::<_, Infallible>(())
    })?;
    record(
        "intt_poly_us",
        "inverse NTT of one polynomial at the top level (all its limbs)",
        t,
    );

    let t = measure(iters, || {
        encoder.encode(ctx, &values, pt.scale, Basis::level(top))
    })?;
    record(
        "encode_us",
        "encoding N/2 real values into a plaintext at the top level (FFT, NTT of every limb)",
        t,
    );
    let t = measure(iters, || encoder.decode(ctx, &pt.poly, pt.scale))?;
    record(
        "decode_us",
        "decoding a top-level plaintext to N/2 real values (exact CRT, FFT)",
        t,
    );
    let t = measure(iters, || symmetric.encrypt_seeded(&pt))?;
    record(
        "encrypt_us",
        "seeded symmetric encryption of an encoded plaintext at the top level",
        t,
    );
    let t = measure(iters, || public.encrypt(&pt))?;
    record(
        "encrypt_pk_us",
        "public-key encryption of an encoded plaintext at the top level",
        t,
    );
    let t = measure(iters, || decryptor.decrypt(&ct_host))?;
    record(
        "decrypt_us",
        "decryption of a top-level ciphertext (to a plaintext, not decoded)",
        t,
    );
    let t = measure(iters, || evaluator.mul_plain(&ct_a, &pt_dev))?;
    record("ct_pt_mul_us", "ciphertext × plaintext", t);
    let t = measure(iters, || evaluator.mul_relin(&ct_a, &ct_b))?;
    record(
        "ct_ct_mul_relin_us",
        "ciphertext × ciphertext with relinearisation",
        t,
    );
    let t = measure(iters, || evaluator.rescale(&ct_a))?;
    record("rescale_us", "rescale by the top prime (one level down)", t);
    let t = measure(iters, || evaluator.rotate(&ct_a, 1))?;
    record(
        "rotate_us",
        "rotation by 1 slot (decomposition + key switch)",
        t,
    );
    let t = measure(iters, || evaluator.rotate_hoisted(&ct_a, &HOISTED_STEPS))?;
    record(
        "hoisted_rotate_8_us",
        "8 rotations (steps 1..=8) sharing one decomposition",
        t,
    );

    progress.finish();
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_n_has_a_preset() {
        for n in SUPPORTED_N {
            assert!(ParamSpec::preset(n).is_some(), "{n}");
        }
    }

    #[test]
    fn unsupported_n_lists_the_supported_values() {
        let err = params_for(4096).unwrap_err().to_string();
        assert!(
            err.contains("4096") && err.contains("8192") && err.contains("65536"),
            "{err}"
        );
    }
}
