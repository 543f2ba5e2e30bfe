//! `helora bench ops --device cuda`: the CPU run's operations (same JSON keys) through
//! `Evaluator<B>` for a [`TimedBackend`](super::clock::TimedBackend) B (CUDA; the CPU backend in tests), each device operation
//! timed with the device's clock (CUDA events) around one call on an otherwise idle stream
//! (so a gap while the host still queues launches counts), after warm-up, medians; plus a
//! key switch, a batched NTT, the device's copy bandwidth, kernel launches per call and
//! every device operation's memory-traffic floor. Encoding, encryption and decryption are
//! the client's work and stay on the host (timed on the host's clock).

use super::clock::{TimedBackend, Timer};
use super::floor::Shape;
use super::keys;
use super::ops::{host_machine, params_for, setup, Operands, OpsOptions, HOISTED_STEPS};
use super::provenance::Provenance;
use super::report::{DeviceFigures, OpTiming, OpsReport};
use super::timing::{measure, measure_samples, Iterations, Timing};
use crate::progress::Progress;
use anyhow::{Context, Result};
use helora::ckks::{Evaluator, Params};
use helora::ring::{Basis, RnsPoly};
use std::time::Duration;

/// Limbs the batched NTT transforms at least: enough polynomials over Q ∪ P that the
/// data (64 MiB at N = 2^13) does not fit the H100's 50 MB L2.
const NTT_BATCH_MIN_LIMBS: usize = 1024;

/// Ciphertext primes of the key-switch figure at most: issue 4's reference shape (N = 2^16,
/// 24 primes; the preset's top level has 25).
const KEY_SWITCH_PRIMES: usize = 24;

/// On the stand-in driver (cuda-emu), whose timings are never reported: the NTT batch's
/// limbs and the bandwidth copies' bytes of a smoke run (every operation still runs).
const SMOKE_NTT_BATCH_LIMBS: usize = 16;
pub(super) const SMOKE_COPY_BYTES: usize = 1 << 20;

/// Key switches queued back to back between one pair of events for the pipelined figure.
const PIPELINED: usize = 16;

/// Runs the benchmark on the backend `make` builds for the parameters, its copy bandwidth
/// measured over copies of `copy_bytes` (far above the L2 on a GPU).
pub fn run<B: TimedBackend>(
    options: &OpsOptions,
    make: impl FnOnce(&Params) -> Result<B>,
    copy_bytes: usize,
) -> Result<OpsReport> {
    let params = params_for(options.n)?;
    let backend = make(&params)?;
    let name = backend.device_name()?;
    let smoke = super::cuda::is_emulator(&name);
    let copy_bytes = if smoke {
        copy_bytes.min(SMOKE_COPY_BYTES)
    } else {
        copy_bytes
    };
    let bandwidth = backend
        .copy_bandwidth(copy_bytes, 20)
        .context("measuring the device copy bandwidth")?;
    backend.trim();
    let iters = options
        .iters
        .map_or(Iterations::DEFAULT_ADAPTIVE, Iterations::Fixed);
    let keys = keys::generate(&params, &HOISTED_STEPS)?;
    let mut evaluator = Evaluator::with_backend(&params, backend)?;
    evaluator
        .set_keys(&keys.eval)
        .context("loading the evaluation keys onto the device")?;
    let ntt_batch_limbs = if smoke {
        SMOKE_NTT_BATCH_LIMBS
    } else {
        NTT_BATCH_MIN_LIMBS
    };
    let (ops, mut figures) = time_ops(&params, &keys, &evaluator, iters, ntt_batch_limbs)?;
    figures.name = name;
    figures.copy_bandwidth_gbs = bandwidth / 1e9;
    Ok(OpsReport {
        run: Provenance::now(),
        setup: setup(&params),
        machine: host_machine(&params, 1),
        iters_mode: if options.iters.is_some() {
            "fixed"
        } else {
            "adaptive"
        },
        keygen: keys.elapsed,
        switching_keys: keys.switching_keys,
        ops,
        device: Some(figures),
    })
}

/// Device time of `op`: events around one call; its output is dropped after the stop.
fn device<T>(timer: &dyn Timer, iters: Iterations, op: impl Fn() -> Result<T>) -> Result<Timing> {
    measure_samples(iters, || -> Result<Duration> {
        timer.start()?;
        let out = op()?;
        let t = timer.stop()?;
        drop(out);
        Ok(t)
    })
}

/// Kernel launches one call of `op` queues.
fn launches_of<B: TimedBackend, T>(backend: &B, op: impl FnOnce() -> Result<T>) -> Result<u64> {
    let before = backend.launches();
    drop(op()?);
    Ok(backend.launches() - before)
}

/// Device time of an in-place NTT of every polynomial in `polys` (all in the domain
/// `forward` starts from): the transform back runs untimed before each sample.
fn ntt_time<B: TimedBackend>(
    backend: &B,
    timer: &dyn Timer,
    iters: Iterations,
    polys: &mut [B::Poly],
    forward: bool,
) -> Result<Timing> {
    measure_samples(iters, || -> Result<Duration> {
        for p in polys.iter_mut() {
            // Back to the starting domain: a transform in the wrong domain is a sticky error.
            if backend.is_ntt(p) == forward {
                if forward {
                    backend.ntt_inverse(p);
                } else {
                    backend.ntt_forward(p);
                }
            }
        }
        timer.start()?;
        for p in polys.iter_mut() {
            if forward {
                backend.ntt_forward(p);
            } else {
                backend.ntt_inverse(p);
            }
        }
        timer.stop()
    })
}

fn time_ops<B: TimedBackend>(
    params: &Params,
    keys: &keys::BenchKeys,
    evaluator: &Evaluator<B>,
    iters: Iterations,
    ntt_batch_limbs: usize,
) -> Result<(Vec<OpTiming>, DeviceFigures)> {
    let ctx = params.ring();
    let top = params.max_level();
    let backend = evaluator.backend();
    let timer = backend.timer()?;
    let timer = &*timer;
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

    const COUNT: u64 = 17;
    let progress = Progress::start_long(
        &format!(
            "timing {COUNT} operations on the {} backend (N = {})",
            backend.name(),
            params.n()
        ),
        COUNT,
        "operations",
    );
    let mut ops = Vec::new();
    let mut floor_bytes = Vec::new();
    let mut launches = Vec::new();
    let mut record = |key, what, timing, floor: Option<f64>| {
        ops.push(OpTiming { key, what, timing });
        if let Some(bytes) = floor {
            floor_bytes.push((key, bytes));
        }
        progress.advance();
    };

    // Coefficient-form inputs: any residues below the first prime are valid.
    let limb = RnsPoly::from_data(params.n(), Basis::level(0), false, pt.poly.limb(0).to_vec())
        .context("one limb")?;
    let mut one = vec![backend.upload(&limb)?];
    let t = ntt_time(backend, timer, iters, &mut one, true)?;
    record(
        "ntt_us",
        "forward NTT of one limb (one prime, N coefficients)",
        t,
        Some(shape.ntt(1)),
    );
    let t = ntt_time(backend, timer, iters, &mut one, false)?;
    record(
        "intt_us",
        "inverse NTT of one limb (one prime, N coefficients)",
        t,
        Some(shape.ntt(1)),
    );
    let mut coeff = pt.poly.clone();
    coeff.ntt_form = false;
    let mut poly = vec![backend.upload(&coeff)?];
    let t = ntt_time(backend, timer, iters, &mut poly, true)?;
    record(
        "ntt_poly_us",
        "forward NTT of one polynomial at the top level (all its limbs)",
        t,
        Some(shape.ntt(shape.limbs)),
    );
    let t = ntt_time(backend, timer, iters, &mut poly, false)?;
    record(
        "intt_poly_us",
        "inverse NTT of one polynomial at the top level (all its limbs)",
        t,
        Some(shape.ntt(shape.limbs)),
    );
    let full = ctx.full_basis();
    let count = ntt_batch_limbs.div_ceil(full.len());
    let mut batch = (0..count)
        .map(|_| backend.upload(&RnsPoly::zero(params.n(), full, false)))
        .collect::<Result<Vec<_>, _>>()?;
    let batch_limbs = count * full.len();
    let t = ntt_time(backend, timer, iters, &mut batch, true)?;
    record(
        "ntt_batch_us",
        "forward NTTs of ntt_batch_limbs limbs: polynomials over Q ∪ P queued back to back",
        t,
        Some(shape.ntt(batch_limbs)),
    );
    drop(batch);
    backend.trim();

    // The client's side, on the host.
    let host = measure(iters, || {
        encoder.encode(ctx, &values, pt.scale, Basis::level(top))
    })?;
    record(
        "encode_us",
        "encoding N/2 real values into a plaintext at the top level (host)",
        host,
        None,
    );
    let t = measure(iters, || encoder.decode(ctx, &pt.poly, pt.scale))?;
    record(
        "decode_us",
        "decoding a top-level plaintext to N/2 real values (host)",
        t,
        None,
    );
    let t = measure(iters, || symmetric.encrypt_seeded(&pt))?;
    record(
        "encrypt_us",
        "seeded symmetric encryption at the top level (host: the client's side)",
        t,
        None,
    );
    let t = measure(iters, || public.encrypt(&pt))?;
    record(
        "encrypt_pk_us",
        "public-key encryption at the top level (host: the client's side)",
        t,
        None,
    );
    let t = measure(iters, || decryptor.decrypt(&ct_host))?;
    record(
        "decrypt_us",
        "decryption of a top-level ciphertext (host: the client's side)",
        t,
        None,
    );

    launches.push((
        "ct_pt_mul_us",
        launches_of(backend, || Ok(evaluator.mul_plain(&ct_a, &pt_dev)?))?,
    ));
    let t = device(timer, iters, || Ok(evaluator.mul_plain(&ct_a, &pt_dev)?))?;
    record(
        "ct_pt_mul_us",
        "ciphertext × plaintext",
        t,
        Some(shape.ct_pt_mul()),
    );
    launches.push((
        "ct_ct_mul_relin_us",
        launches_of(backend, || Ok(evaluator.mul_relin(&ct_a, &ct_b)?))?,
    ));
    let t = device(timer, iters, || Ok(evaluator.mul_relin(&ct_a, &ct_b)?))?;
    record(
        "ct_ct_mul_relin_us",
        "ciphertext × ciphertext with relinearisation",
        t,
        Some(shape.ct_ct_mul_relin()),
    );
    launches.push((
        "rescale_us",
        launches_of(backend, || Ok(evaluator.rescale(&ct_a)?))?,
    ));
    let t = device(timer, iters, || Ok(evaluator.rescale(&ct_a)?))?;
    record(
        "rescale_us",
        "rescale by the top prime (one level down)",
        t,
        Some(shape.rescale()),
    );

    // A bare key switch of c1 with the relinearisation key: decomposition (ModUp), inner
    // product, ModDown of both halves. At N = 2^16 the reference shape has 24
    // ciphertext primes, one below the preset's top level, so c1 is dropped to that first.
    let ks_limbs = (top + 1).min(KEY_SWITCH_PRIMES);
    let ks_shape = Shape {
        limbs: ks_limbs,
        ..shape
    };
    let mut ks_input = ct_a.c1.clone();
    backend.truncate_q(&mut ks_input, ks_limbs);
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
    launches.push(("key_switch_us", launches_of(backend, key_switch)?));
    let t = device(timer, iters, key_switch)?;
    record(
        "key_switch_us",
        "key switch of one polynomial over key_switch_limbs primes (decompose, inner \
         product with the key, ModDown)",
        t,
        Some(ks_shape.key_switch()),
    );
    let t = measure_samples(iters, || -> Result<Duration> {
        timer.start()?;
        let outs = (0..PIPELINED)
            .map(|_| key_switch())
            .collect::<Result<Vec<_>>>()?;
        let t = timer.stop()?;
        drop(outs);
        Ok(t / PIPELINED as u32)
    })?;
    record(
        "key_switch_pipelined_us",
        "key switch, per call of 16 queued back to back (host launch gaps hidden)",
        t,
        Some(ks_shape.key_switch()),
    );
    launches.push((
        "rotate_us",
        launches_of(backend, || Ok(evaluator.rotate(&ct_a, 1)?))?,
    ));
    let t = device(timer, iters, || Ok(evaluator.rotate(&ct_a, 1)?))?;
    record(
        "rotate_us",
        "rotation by 1 slot (decomposition + key switch)",
        t,
        Some(shape.rotations(1)),
    );
    let hoisted = || Ok(evaluator.rotate_hoisted(&ct_a, &HOISTED_STEPS)?);
    launches.push(("hoisted_rotate_8_us", launches_of(backend, hoisted)?));
    let t = device(timer, iters, hoisted)?;
    record(
        "hoisted_rotate_8_us",
        "8 rotations (steps 1..=8) sharing one decomposition",
        t,
        Some(shape.rotations(HOISTED_STEPS.len())),
    );
    progress.finish();
    backend.wait()?;
    let figures = DeviceFigures {
        name: String::new(),
        backend: backend.name(),
        clock: backend.clock(),
        copy_bandwidth_gbs: 0.0,
        ntt_batch_limbs: batch_limbs,
        key_switch_limbs: ks_limbs,
        floor_bytes,
        launches,
        host_ops: vec![
            "encode_us",
            "decode_us",
            "encrypt_us",
            "encrypt_pk_us",
            "decrypt_us",
        ],
    };
    Ok((ops, figures))
}

#[cfg(test)]
mod tests {
    use super::*;
    use helora::backend::CpuBackend;

    /// The device benchmark's code on the CPU backend (host clock): every key, floor and
    /// ratio is there, and the NTT domains stay consistent (a transform in the wrong domain
    /// would fail the run on CUDA).
    #[test]
    fn device_ops_run_on_the_cpu_backend() {
        let options = OpsOptions {
            n: 8192,
            iters: Some(1),
        };
        let make = |p: &Params| Ok(CpuBackend::new(p.ring().clone(), p.alpha()));
        let report = run(&options, make, 1 << 20).unwrap();
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["backend"], "cpu");
        for key in [
            "ntt_us",
            "ntt_batch_us",
            "key_switch_us",
            "key_switch_pipelined_us",
            "hoisted_rotate_8_us",
            "key_switch_floor_us",
            "key_switch_floor_ratio",
            "ct_ct_mul_relin_floor_ratio",
            "copy_bandwidth_gbs",
        ] {
            assert!(
                v[key].as_f64().is_some_and(|x| x > 0.0),
                "{key}: {}",
                v[key]
            );
        }
        assert_eq!(v["ntt_batch_limbs"], 1024);
        assert_eq!(v["key_switch_limbs"], 3);
        assert_eq!(v["launches"]["key_switch_us"], 0);
        assert!(v.get("encrypt_floor_us").is_none());
    }
}
