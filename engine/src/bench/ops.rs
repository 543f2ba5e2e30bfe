//! `helora bench ops`: key generation, then a median timing of each CKKS operation at the
//! top level of a preset parameter set, through `Evaluator<B>` on a
//! [`TimedBackend`](super::clock::TimedBackend) B. The CPU run (`run`): the CPU backend,
//! single-threaded, on the host's clock. A device run (`device_ops.rs` opens the device):
//! each backend operation on the device's clock, plus the device's rows and figures. The
//! same body times both; only the clock and the device's extras differ.

use super::clock::TimedBackend;
use super::floor::Shape;
use super::provenance::Provenance;
use super::report::{DeviceFigures, Machine, OpTiming, OpsReport, Setup};
use super::stopwatch::Stopwatch;
use super::timing::{measure, measure_samples, Iterations};
use super::{keys, machine, plaintext};
use crate::progress::Progress;
use anyhow::{anyhow, Context, Result};
use helora::backend::{Backend, CpuBackend};
use helora::ckks::{
    max_modulus_bits_128, Ciphertext, Decryptor, Encoder, Encryptor, Evaluator, ParamSpec, Params,
    Plaintext, SymmetricEncryptor,
};
use helora::ring::{Basis, RnsPoly};
use std::time::Duration;

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

/// Runs the bench on the CPU backend in a pool of one thread: each operation's latency on
/// one core, as the report says (the CPU backend would otherwise spread a key switch's parts
/// over the cores), timed on the host's clock.
pub fn run(options: &OpsOptions) -> Result<OpsReport> {
    super::thread_pool(1)?.install(|| {
        let params = params_for(options.n)?;
        let backend = CpuBackend::new(params.ring().clone(), params.alpha());
        run_on(options, &params, backend, None)
    })
}

/// What a device run knows before it times anything (`device_ops.rs` measures it).
pub struct DeviceRun {
    pub name: String,
    /// Copy bandwidth, bytes read + written per second.
    pub copy_bandwidth: f64,
    /// Limbs the batched NTT transforms at least.
    pub ntt_batch_limbs: usize,
}

/// The benchmark on `backend`: the CPU run's operations on the host's clock, or with
/// `device` each backend operation on the backend's clock, plus the device's own rows
/// (a batched NTT, a bare key switch) and figures (floors, launches).
pub fn run_on<B: TimedBackend>(
    options: &OpsOptions,
    params: &Params,
    backend: B,
    device: Option<DeviceRun>,
) -> Result<OpsReport> {
    let iters = options
        .iters
        .map_or(Iterations::DEFAULT_ADAPTIVE, Iterations::Fixed);
    let keys = keys::generate(params, &HOISTED_STEPS)?;
    let mut evaluator = Evaluator::with_backend(params, backend)?;
    let loading = format!(
        "loading the evaluation keys onto the {} backend",
        evaluator.backend().name()
    );
    evaluator.set_keys(&keys.eval).context(loading)?;
    let (ops, device) = time_ops(params, &keys, &evaluator, iters, device)?;
    let iters_mode = if options.iters.is_some() {
        "fixed"
    } else {
        "adaptive"
    };
    Ok(OpsReport {
        run: Provenance::now(),
        setup: setup(params),
        machine: host_machine(params, 1),
        iters_mode,
        keygen: keys.elapsed,
        switching_keys: keys.switching_keys,
        ops,
        device,
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

/// Ciphertext primes of the key-switch figure at most: issue 4's reference shape (N = 2^16,
/// 24 primes; the preset's top level has 25).
const KEY_SWITCH_PRIMES: usize = 24;

/// Key switches queued back to back between one pair of events for the pipelined figure.
const PIPELINED: usize = 16;

/// Times every operation, in the report's order; a device run adds its rows (a batched NTT
/// after the NTTs, a bare key switch after the rescale) and its figures.
fn time_ops<B: TimedBackend>(
    params: &Params,
    keys: &keys::BenchKeys,
    evaluator: &Evaluator<B>,
    iters: Iterations,
    device: Option<DeviceRun>,
) -> Result<(Vec<OpTiming>, Option<DeviceFigures>)> {
    let ctx = params.ring();
    let top = params.max_level();
    let backend = evaluator.backend();
    let mut clock = match device {
        Some(_) => Stopwatch::device(backend, iters)?,
        None => Stopwatch::host(backend, iters),
    };
    let on_device = clock.on_device();
    // The client's operations run on the host in either run; a device run's definitions say
    // so, the CPU run's say what they are made of.
    let client = |cpu: &'static str, device: &'static str| if on_device { device } else { cpu };
    let shape = Shape {
        n: params.n(),
        limbs: top + 1,
        special: params.p_primes().len(),
        alpha: params.alpha(),
    };
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
    } = Operands::new(params, keys, evaluator)?;

    let progress = if on_device {
        const COUNT: u64 = 17;
        let what = format!(
            "timing {COUNT} operations on the {} backend (N = {})",
            backend.name(),
            params.n()
        );
        Progress::start_long(&what, COUNT, "operations")
    } else {
        const COUNT: u64 = 14;
        let what = format!("timing {COUNT} operations (N = {})", params.n());
        Progress::start_long(&what, COUNT, "operations")
    };
    let mut ops = Vec::new();
    let mut floor_bytes = Vec::new();
    // A floor (bytes the operation must move) for each backend operation of a device run.
    let mut record = |key, what, timing, floor: Option<f64>| {
        ops.push(OpTiming { key, what, timing });
        if let (true, Some(bytes)) = (on_device, floor) {
            floor_bytes.push((key, bytes));
        }
        progress.advance();
    };

    // One limb: the unit every other cost is made of. Coefficient-form inputs: any residues
    // below the first prime are valid.
    let limb = RnsPoly::from_data(params.n(), Basis::level(0), false, pt.poly.limb(0).to_vec())
        .context("one limb")?;
    let mut one = vec![backend.upload(&limb)?];
    let t = clock.ntt(&mut one, true)?;
    record(
        "ntt_us",
        "forward NTT of one limb (one prime, N coefficients)",
        t,
        Some(shape.ntt(1)),
    );
    let t = clock.ntt(&mut one, false)?;
    record(
        "intt_us",
        "inverse NTT of one limb (one prime, N coefficients)",
        t,
        Some(shape.ntt(1)),
    );
    let mut coeff = pt.poly.clone();
    coeff.ntt_form = false;
    let mut poly = vec![backend.upload(&coeff)?];
    let t = clock.ntt(&mut poly, true)?;
    record(
        "ntt_poly_us",
        "forward NTT of one polynomial at the top level (all its limbs)",
        t,
        Some(shape.ntt(shape.limbs)),
    );
    let t = clock.ntt(&mut poly, false)?;
    record(
        "intt_poly_us",
        "inverse NTT of one polynomial at the top level (all its limbs)",
        t,
        Some(shape.ntt(shape.limbs)),
    );
    let mut ntt_batch_limbs = 0;
    if let Some(device) = &device {
        let full = ctx.full_basis();
        let count = device.ntt_batch_limbs.div_ceil(full.len());
        let mut batch = (0..count)
            .map(|_| backend.upload(&RnsPoly::zero(params.n(), full, false)))
            .collect::<Result<Vec<_>, _>>()?;
        ntt_batch_limbs = count * full.len();
        let t = clock.ntt(&mut batch, true)?;
        record(
            "ntt_batch_us",
            "forward NTTs of ntt_batch_limbs limbs: polynomials over Q ∪ P queued back to back",
            t,
            Some(shape.ntt(ntt_batch_limbs)),
        );
        drop(batch);
        backend.trim();
    }

    // The client's side, on the host.
    let t = measure(iters, || {
        encoder.encode(ctx, &values, pt.scale, Basis::level(top))
    })?;
    record(
        "encode_us",
        client(
            "encoding N/2 real values into a plaintext at the top level (FFT, NTT of every limb)",
            "encoding N/2 real values into a plaintext at the top level (host)",
        ),
        t,
        None,
    );
    let t = measure(iters, || encoder.decode(ctx, &pt.poly, pt.scale))?;
    record(
        "decode_us",
        client(
            "decoding a top-level plaintext to N/2 real values (exact CRT, FFT)",
            "decoding a top-level plaintext to N/2 real values (host)",
        ),
        t,
        None,
    );
    let t = measure(iters, || symmetric.encrypt_seeded(&pt))?;
    record(
        "encrypt_us",
        client(
            "seeded symmetric encryption of an encoded plaintext at the top level",
            "seeded symmetric encryption at the top level (host: the client's side)",
        ),
        t,
        None,
    );
    let t = measure(iters, || public.encrypt(&pt))?;
    record(
        "encrypt_pk_us",
        client(
            "public-key encryption of an encoded plaintext at the top level",
            "public-key encryption at the top level (host: the client's side)",
        ),
        t,
        None,
    );
    let t = measure(iters, || decryptor.decrypt(&ct_host))?;
    record(
        "decrypt_us",
        client(
            "decryption of a top-level ciphertext (to a plaintext, not decoded)",
            "decryption of a top-level ciphertext (host: the client's side)",
        ),
        t,
        None,
    );

    let t = clock.call("ct_pt_mul_us", || Ok(evaluator.mul_plain(&ct_a, &pt_dev)?))?;
    record(
        "ct_pt_mul_us",
        "ciphertext × plaintext",
        t,
        Some(shape.ct_pt_mul()),
    );
    let t = clock.call("ct_ct_mul_relin_us", || {
        Ok(evaluator.mul_relin(&ct_a, &ct_b)?)
    })?;
    record(
        "ct_ct_mul_relin_us",
        "ciphertext × ciphertext with relinearisation",
        t,
        Some(shape.ct_ct_mul_relin()),
    );
    let t = clock.call("rescale_us", || Ok(evaluator.rescale(&ct_a)?))?;
    record(
        "rescale_us",
        "rescale by the top prime (one level down)",
        t,
        Some(shape.rescale()),
    );

    // A bare key switch of c1 with the relinearisation key: decomposition (ModUp), inner
    // product, ModDown of both halves. At N = 2^16 the reference shape has 24
    // ciphertext primes, one below the preset's top level, so c1 is dropped to that first.
    let key_switch_limbs = (top + 1).min(KEY_SWITCH_PRIMES);
    if on_device {
        let ks_shape = Shape {
            limbs: key_switch_limbs,
            ..shape
        };
        let mut ks_input = ct_a.c1.clone();
        backend.truncate_q(&mut ks_input, key_switch_limbs);
        let relin = keys
            .eval
            .relin
            .as_ref()
            .context("the benchmark keys have no relinearisation key")?;
        let key = relin
            .digits
            .iter()
            .map(|[b, a]| Ok([backend.upload(b)?, backend.upload(a)?]))
            .collect::<Result<Vec<_>>>()?;
        let key_switch = || {
            let digits = backend.decompose(&ks_input);
            let [b, a] = backend.key_switch_inner_product(&digits, &key, None);
            Ok([backend.mod_down(&b), backend.mod_down(&a)])
        };
        let t = clock.call("key_switch_us", key_switch)?;
        record(
            "key_switch_us",
            "key switch of one polynomial over key_switch_limbs primes (decompose, inner \
             product with the key, ModDown)",
            t,
            Some(ks_shape.key_switch()),
        );
        let t = measure_samples(iters, || -> Result<Duration> {
            let (t, outs) = clock.span(|| {
                (0..PIPELINED)
                    .map(|_| key_switch())
                    .collect::<Result<Vec<_>>>()
            })?;
            drop(outs);
            Ok(t / PIPELINED as u32)
        })?;
        record(
            "key_switch_pipelined_us",
            "key switch, per call of 16 queued back to back (host launch gaps hidden)",
            t,
            Some(ks_shape.key_switch()),
        );
    }
    let t = clock.call("rotate_us", || Ok(evaluator.rotate(&ct_a, 1)?))?;
    record(
        "rotate_us",
        "rotation by 1 slot (decomposition + key switch)",
        t,
        Some(shape.rotations(1)),
    );
    let t = clock.call("hoisted_rotate_8_us", || {
        Ok(evaluator.rotate_hoisted(&ct_a, &HOISTED_STEPS)?)
    })?;
    record(
        "hoisted_rotate_8_us",
        "8 rotations (steps 1..=8) sharing one decomposition",
        t,
        Some(shape.rotations(HOISTED_STEPS.len())),
    );
    progress.finish();
    backend.wait()?;
    let figures = device.map(|device| DeviceFigures {
        name: device.name,
        backend: backend.name(),
        clock: backend.clock(),
        copy_bandwidth_gbs: device.copy_bandwidth / 1e9,
        ntt_batch_limbs,
        key_switch_limbs,
        floor_bytes,
        launches: clock.launches,
        host_ops: vec![
            "encode_us",
            "decode_us",
            "encrypt_us",
            "encrypt_pk_us",
            "decrypt_us",
        ],
    });
    Ok((ops, figures))
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
