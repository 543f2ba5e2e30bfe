//! `helora bench lora --device cuda`: the CPU run's LoRA apply (same JSON keys, the same
//! set-up and report: `lora::Session`) on `Evaluator<B>` for a [`TimedBackend`] B (CUDA;
//! the CPU backend in tests), timed with the device's clock (CUDA events), beside its
//! memory-traffic floor.
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
//! - `graph_apply_us`: the same apply captured once as a CUDA graph (on a fixed
//!   device-resident input) and replayed: before each replay the next input is copied into
//!   the captured input's buffers (device to device, outside the events), then one graph
//!   launch replaces the eager apply's `launches_per_apply` kernel launches. The last
//!   replay's reply is checked bit for bit against the eager apply of the same input. The
//!   CPU backend (tests) has no graphs: its replays run the apply again, eagerly.

use super::clock::{Replay, TimedBackend};
use super::device_ops;
use super::device_report::DeviceLoraReport;
use super::floor::{self, LoraTraffic};
use super::lora::{expand, LoraOptions, Session, Speed};
use super::ops::params_for;
use super::timing::{measure, measure_samples, Iterations, Timing};
use crate::stats::median;
use anyhow::{bail, Context, Result};
use helora::ckks::{Ciphertext, Evaluator, Params};
use std::time::{Duration, Instant};

/// Runs the benchmark on the backend `make` builds for the parameters (CUDA; the CPU
/// backend in tests), its copy bandwidth measured over copies of `copy_bytes`.
pub fn run<B: TimedBackend>(
    options: &LoraOptions,
    batch: usize,
    make: impl FnOnce(&Params) -> Result<B>,
    copy_bytes: usize,
) -> Result<DeviceLoraReport> {
    let LoraOptions {
        d_in, d_out, rank, ..
    } = *options;
    if d_in == 0 || d_out == 0 || rank == 0 || batch == 0 {
        bail!("--d-in, --d-out, --r and --batch must be positive");
    }
    let params = params_for(options.n)?;
    let backend = make(&params)?;
    let (device, bandwidth) = device_ops::open(&backend, copy_bytes)?;
    let session = Session::open(&params, options, batch, backend)?;
    let (server, plan, uploads) = (&session.server, &session.plan, &session.uploads);
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
    let host_inputs = session.expanded_inputs()?;
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
        let out = plan.apply(server, &inputs[0])?;
        queued.push(host.elapsed());
        let t = timer.stop()?;
        drop(out);
        Ok(t)
    })?;
    let before = server.backend().launches();
    drop(plan.apply(server, &inputs[0])?);
    let launches_per_apply = server.backend().launches() - before;
    let apply_path = measure_samples(iters, || -> Result<Duration> {
        timer.start()?;
        let device_inputs = host_inputs[0]
            .iter()
            .map(|ct| server.upload(ct))
            .collect::<Result<Vec<_>, _>>()?;
        let out = plan.apply(server, &device_inputs)?;
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
            .map(|token| plan.apply(server, token))
            .collect::<Result<Vec<_>, _>>()?;
        let t = timer.stop()?;
        outputs = out;
        Ok(t)
    })?;

    // One apply captured as a graph on a copy of the first input, replayed over the batch.
    let start = Instant::now();
    let mut replay = server
        .backend()
        .capture(inputs[0].clone(), |x| Ok(plan.apply(server, x)?))
        .context("capturing the apply as a CUDA graph")?;
    server.backend().wait()?;
    let graph_capture_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut next = 0;
    let graph = measure_samples(iters, || -> Result<Duration> {
        refill(server.backend(), replay.input(), &inputs[next % batch])?;
        next += 1;
        timer.start()?;
        replay.launch()?;
        timer.stop()
    })?;
    check_replay(server, replay.as_mut(), &inputs, &outputs)?;
    drop(replay);

    let traffic = LoraTraffic {
        n: params.n(),
        level: plan.input_level(),
        special: params.p_primes().len(),
        alpha: params.alpha(),
        input_chunks: plan.input_layout().chunks,
        output_chunks: plan.output_layout().chunks,
        rank_padded: plan.rank_padded(),
        rotation_keys: session.rotation_keys,
    };
    let apply_us = apply.micros();
    let batch_us = batched.micros();
    let per_apply_us = batch_us / batch as f64;
    let apply_floor_us = floor::floor_us(traffic.single(), bandwidth);
    let batch_floor_us = floor::floor_us(traffic.batched(batch), bandwidth);
    let speed = Speed {
        apply,
        ms_per_token_batch: per_apply_us / 1e3,
        tokens_per_s: 1e6 / per_apply_us,
        threads: 1,
    };
    let replies: Vec<&[_]> = outputs.iter().map(Vec::as_slice).collect();
    let common = session.report(speed, &replies)?;
    Ok(DeviceLoraReport {
        common,
        backend: server.backend().name(),
        device,
        clock: server.backend().clock(),
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
        graph_apply_us: graph.micros(),
        graph_iterations: graph.iters,
        graph_launches_per_apply: server.backend().launches_per_replay(),
        graph_capture_ms,
        graph_mode: server.backend().replay_mode(),
        notes: vec![
            "apply_us: CUDA events around one apply on device-resident inputs, to the rescaled reply",
            "apply_path_us: as apply_us, with the host-to-device copy of the expanded upload (in NTT form already)",
            "expand_us: the server's CPU regenerating c1 from the seed (no device-side expansion yet)",
            "no host synchronisation inside the apply: it only queues work on one stream (apply_queue_us: the host's time to queue it, warm-up samples included)",
            "floors: inputs, replies, diagonal plaintexts and rotation keys each moved once (batch: shared ones once per batch)",
            "graph_apply_us: events around one launch of the apply captured as a graph, after the next input was copied into the captured input's buffers; its reply checked bit for bit against the eager apply's",
        ],
    })
}

/// Copies a token's input ciphertexts into the ones a replay reads (device to device).
fn refill<B: TimedBackend>(
    backend: &B,
    dst: &mut [Ciphertext<B::Poly>],
    src: &[Ciphertext<B::Poly>],
) -> Result<()> {
    if dst.len() != src.len() {
        bail!(
            "{} input ciphertexts for a replay of {}",
            src.len(),
            dst.len()
        );
    }
    for (d, s) in dst.iter_mut().zip(src) {
        if (d.level, d.scale) != (s.level, s.scale) {
            bail!("a replay's input must have the captured input's level and scale");
        }
        backend.copy_into(&mut d.c0, &s.c0)?;
        backend.copy_into(&mut d.c1, &s.c1)?;
    }
    Ok(())
}

/// Replays on the batch's last input: the reply must equal, bit for bit, the eager apply's
/// reply on the same input, and the replay must queue no kernel launch of its own.
fn check_replay<B: TimedBackend>(
    server: &Evaluator<B>,
    replay: &mut dyn Replay<Vec<Ciphertext<B::Poly>>, Vec<Ciphertext<B::Poly>>>,
    inputs: &[Vec<Ciphertext<B::Poly>>],
    eager: &[Vec<Ciphertext<B::Poly>>],
) -> Result<()> {
    let (Some(input), Some(want)) = (inputs.last(), eager.last()) else {
        bail!("no input to check the replay on");
    };
    refill(server.backend(), replay.input(), input)?;
    let before = server.backend().launches();
    replay.launch()?;
    if server.backend().launches() != before {
        bail!("a graph replay queued kernel launches of its own");
    }
    let got = replay.output();
    if got.len() != want.len() {
        bail!(
            "the replay returned {} ciphertexts, the eager apply {}",
            got.len(),
            want.len()
        );
    }
    for (g, w) in got.iter().zip(want) {
        if server.download(g)? != server.download(w)? {
            bail!("the graph replay's reply differs from the eager apply's on the same input");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use helora::backend::CpuBackend;

    /// The device benchmark's code on the CPU backend (host clock), small shapes: the
    /// batch decrypts correctly and every figure is there.
    #[test]
    fn device_lora_runs_on_the_cpu_backend() {
        let options = LoraOptions {
            d_in: 256,
            d_out: 128,
            rank: 4,
            n: 8192,
            tokens: 1,
            iters: Some(1),
            threads: 1,
            memory_limit: None,
        };
        let make = |p: &Params| Ok(CpuBackend::new(p.ring().clone(), p.alpha()));
        let r = run(&options, 3, make, 1 << 20).unwrap();
        assert_eq!((r.backend, r.batch, r.common.tokens), ("cpu", 3, 3));
        // The compact reply's rounding dominates at these small shapes: 6e-5 to 7.5e-5
        // measured on the CPU.
        assert!(
            r.common.relative_error < 3e-4,
            "{}",
            r.common.relative_error
        );
        for x in [
            r.apply_us,
            r.graph_apply_us,
            r.apply_path_us,
            r.token_layer_us,
            r.applies_per_s,
            r.apply_floor_us,
            r.apply_floor_ratio,
            r.batch_floor_ratio,
        ] {
            assert!(x > 0.0, "{r:?}");
        }
        assert!(r.table().contains("applies/s") && r.table().contains("graph replay"));
        assert_eq!(
            r.graph_launches_per_apply, 0,
            "the CPU backend has no graphs"
        );
        assert!(r.graph_mode.contains("eagerly"), "{}", r.graph_mode);
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["ms_per_apply"].as_f64().is_some() && v["apply_us"].as_f64().is_some());
        assert!(v["graph_apply_us"].as_f64().is_some() && v["graph_mode"].as_str().is_some());
    }
}
