//! `helora bench lora --device cuda`: the CPU run's LoRA apply (same JSON keys) on
//! `Evaluator<CudaBackend>`, timed with CUDA events, beside its memory-traffic floor.
//!
//! - `apply_us`: events around one `plan.apply` on device-resident inputs, up to the
//!   rescaled reply. `apply_path_us`: events around the host-to-device copy of the
//!   expanded upload and the apply (the upload arrives in NTT form: c0 is sent so and c1
//!   is sampled so, so there is nothing to transform). The seed expansion runs on the
//!   server's CPU (`expand_us`, host clock); `token_layer_us` adds it.
//! - The apply path has no host synchronisation: `LoraPlan::apply` and the evaluator only
//!   queue work (no download, no synchronize); the pageable host-to-device copy of the
//!   upload returns once the driver has staged it.
//! - Batch: `batch` independent ciphertexts already on the device, applied back to back on
//!   the backend's one stream (the evaluator is single-stream), events around all of them.

use super::cuda_report::CudaLoraReport;
use super::floor::{self, LoraTraffic};
use super::keys;
use super::lora::{check_replies, encrypt_inputs, expand, random_inputs, LoraOptions, LoraReport};
use super::machine;
use super::ops::params_for;
use super::timing::{measure, measure_samples, median, Iterations, Timing};
use anyhow::{bail, Context, Result};
use helora::backend::CudaBackend;
use helora::ckks::{Decryptor, Encoder, Evaluator, SymmetricEncryptor};
use helora::linear::{random_lora_factors, LoraPlan};
use helora::math::sampling;
use std::time::{Duration, Instant};

/// Bytes per buffer of the bandwidth copy: far above the L2.
const COPY_BYTES: usize = 512 << 20;

pub fn run(options: &LoraOptions, batch: usize) -> Result<CudaLoraReport> {
    let LoraOptions {
        d_in, d_out, rank, ..
    } = *options;
    if d_in == 0 || d_out == 0 || rank == 0 || batch == 0 {
        bail!("--d-in, --d-out, --r and --batch must be positive");
    }
    let params = params_for(options.n)?;
    let backend = CudaBackend::new(params.ring().clone(), params.alpha())
        .context("starting the CUDA backend")?;
    let device = backend.device_name()?;
    let bandwidth = backend
        .copy_bandwidth(COPY_BYTES, 20)
        .context("measuring the device copy bandwidth")?;
    backend.trim_pool();
    let mut rng = sampling::os_rng()?;
    let (a, b) = random_lora_factors(d_in, d_out, rank, &mut rng)?;
    let encoder = Encoder::new(params.n())?;
    let mut server = Evaluator::with_backend(&params, backend)?;
    let start = Instant::now();
    let plan = LoraPlan::new(&server, &encoder, &a, &b, 2).context("building the LoRA plan")?;
    server.backend().synchronize()?;
    let plan_build_ms = start.elapsed().as_secs_f64() * 1e3;
    let steps = plan.rotation_steps();
    let keys = keys::generate(&params, &steps)?;
    server
        .set_keys(&keys.eval)
        .context("loading the evaluation keys onto the device")?;

    let mut encryptor = SymmetricEncryptor::new(&params, &keys.secret)?;
    let decryptor = Decryptor::new(&params, &keys.secret)?;
    let xs = random_inputs(d_in, batch, &mut rng);
    let (uploads, upload_bytes) = encrypt_inputs(&params, &plan, &encoder, &mut encryptor, &xs)?;
    let iters = options
        .iters
        .map_or(Iterations::DEFAULT_ADAPTIVE, Iterations::Fixed);

    // The server's CPU: parse and expand one token's upload.
    let expand_t = measure(iters, || {
        uploads[0]
            .iter()
            .map(|bytes| expand(&params, bytes))
            .collect::<Result<Vec<_>>>()
    })?;
    let host_inputs = uploads
        .iter()
        .map(|token| token.iter().map(|bytes| expand(&params, bytes)).collect())
        .collect::<Result<Vec<Vec<_>>>>()?;
    let inputs = host_inputs
        .iter()
        .map(|token| token.iter().map(|ct| server.upload(ct)).collect())
        .collect::<Result<Vec<Vec<_>>, _>>()?;

    let timer = server.backend().timer()?;
    // The host's time to queue the apply, beside the device's: a queue time well below the
    // device time shows the host did not wait for the device inside the apply.
    let mut queued = Vec::new();
    let apply = measure_samples(iters, || -> Result<Duration> {
        timer.start()?;
        let host = Instant::now();
        let out = plan.apply(&server, &inputs[0])?;
        queued.push(host.elapsed());
        let t = timer.stop()?;
        drop(out);
        Ok(t)
    })?;
    let before = server.backend().launches();
    drop(plan.apply(&server, &inputs[0])?);
    let launches_per_apply = server.backend().launches() - before;
    let apply_path = measure_samples(iters, || -> Result<Duration> {
        timer.start()?;
        let device_inputs = host_inputs[0]
            .iter()
            .map(|ct| server.upload(ct))
            .collect::<Result<Vec<_>, _>>()?;
        let out = plan.apply(&server, &device_inputs)?;
        let t = timer.stop()?;
        drop(out);
        Ok(t)
    })?;
    let batch_iters = options.iters.map_or(
        Iterations::Adaptive {
            budget: Duration::from_secs(2),
            min: 5,
            max: 1000,
        },
        Iterations::Fixed,
    );
    let mut outputs = Vec::new();
    let batched: Timing = measure_samples(batch_iters, || -> Result<Duration> {
        timer.start()?;
        let out = inputs
            .iter()
            .map(|token| plan.apply(&server, token))
            .collect::<Result<Vec<_>, _>>()?;
        let t = timer.stop()?;
        outputs = out;
        Ok(t)
    })?;
    let replies: Vec<&[_]> = outputs.iter().map(Vec::as_slice).collect();
    let check = check_replies(
        &server,
        &plan,
        &decryptor,
        &encoder,
        (&a, &b),
        &xs,
        &replies,
    )?;

    let traffic = LoraTraffic {
        n: params.n(),
        level: plan.input_level(),
        special: params.p_primes().len(),
        alpha: params.alpha(),
        input_chunks: plan.input_layout().chunks,
        output_chunks: plan.output_layout().chunks,
        rank_padded: plan.rank_padded(),
        rotation_keys: steps.len(),
    };
    let apply_us = apply.micros();
    let batch_us = batched.micros();
    let per_apply_us = batch_us / batch as f64;
    let apply_floor_us = floor::floor_us(traffic.single(), bandwidth);
    let batch_floor_us = floor::floor_us(traffic.batched(batch), bandwidth);
    let counts = plan.op_counts();
    let common = LoraReport {
        n: params.n(),
        d_in,
        d_out,
        rank,
        tokens: batch,
        input_ciphertexts: plan.input_layout().chunks,
        output_ciphertexts: plan.output_layout().chunks,
        keyswitches: counts.keyswitches,
        hoisted_keyswitches: counts.hoisted_keyswitches,
        decompositions: counts.decompositions,
        pt_muls: counts.pt_muls,
        depth: counts.depth,
        rotation_keys: steps.len(),
        ms_per_apply: apply_us / 1e3,
        apply_iterations: apply.iters,
        ms_per_token_batch: per_apply_us / 1e3,
        tokens_per_s: 1e6 / per_apply_us,
        threads: 1,
        relative_error: check.relative_error,
        upload_bytes,
        download_bytes: check.download_bytes,
        reply_bits: check.reply_bits,
        keygen_ms: keys.elapsed.as_secs_f64() * 1e3,
        plan_build_ms,
        cpu: machine::cpu_model(),
        simd: machine::ntt_kernels(params.ring()),
    };
    Ok(CudaLoraReport {
        common,
        backend: "cuda",
        device,
        apply_us,
        apply_queue_us: median(&mut queued).as_secs_f64() * 1e6,
        launches_per_apply,
        apply_path_us: apply_path.micros(),
        expand_us: expand_t.micros(),
        token_layer_us: expand_t.micros() + apply_path.micros(),
        batch,
        batch_us,
        batch_iterations: batched.iters,
        applies_per_s: 1e6 / per_apply_us,
        batch_mode: "single stream: the batch's applies queued back to back",
        copy_bandwidth_gbs: bandwidth / 1e9,
        apply_floor_us,
        apply_floor_ratio: floor::ratio(apply_us, apply_floor_us),
        batch_floor_us_per_apply: batch_floor_us,
        batch_floor_ratio: floor::ratio(per_apply_us, batch_floor_us),
        host_syncs_in_apply: 0,
        notes: vec![
            "apply_us: CUDA events around one apply on device-resident inputs, to the rescaled reply",
            "apply_path_us: as apply_us, with the host-to-device copy of the expanded upload (in NTT form already)",
            "expand_us: the server's CPU regenerating c1 from the seed (no device-side expansion yet)",
            "no host synchronisation inside the apply: it only queues work on one stream (apply_queue_us: the host's time to queue it, warm-up samples included)",
            "floors: inputs, replies, diagonal plaintexts and rotation keys each moved once (batch: shared ones once per batch)",
        ],
    })
}
