//! `helora bench ops --device cuda`: the CPU run's operations (same JSON keys, one body:
//! `ops::run_on`) through `Evaluator<B>` for a [`TimedBackend`] B (CUDA; the CPU backend in
//! tests), each device operation timed with the device's clock (CUDA events) around one call
//! on an otherwise idle stream (so a gap while the host still queues launches counts), after
//! warm-up, medians; plus a key switch, a batched NTT, the device's copy bandwidth, kernel
//! launches per call and every device operation's memory-traffic floor. Encoding,
//! encryption and decryption are the client's work and stay on the host (timed on the
//! host's clock). This file opens the device: its name, its bandwidth, the batch's size.

use super::clock::TimedBackend;
use super::ops::{params_for, run_on, DeviceRun, OpsOptions};
use super::report::OpsReport;
use anyhow::{Context, Result};
use helora::ckks::Params;

/// Limbs the batched NTT transforms at least: enough polynomials over Q ∪ P that the
/// data (64 MiB at N = 2^13) does not fit the H100's 50 MB L2.
const NTT_BATCH_MIN_LIMBS: usize = 1024;

/// On the stand-in driver (cuda-emu), whose timings are never reported: the NTT batch's
/// limbs and the bandwidth copies' bytes of a smoke run (every operation still runs).
const SMOKE_NTT_BATCH_LIMBS: usize = 16;
const SMOKE_COPY_BYTES: usize = 1 << 20;

/// A device opened for a benchmark: its name, and its copy bandwidth (bytes read + written
/// per second), measured over copies of `copy_bytes` (far above the L2 on a GPU; smoke
/// sizes on the stand-in driver). Leaves the backend's buffer cache empty.
pub(super) fn open<B: TimedBackend>(backend: &B, copy_bytes: usize) -> Result<(String, f64)> {
    let name = backend.device_name()?;
    let copy_bytes = if super::cuda::is_emulator(&name) {
        copy_bytes.min(SMOKE_COPY_BYTES)
    } else {
        copy_bytes
    };
    let bandwidth = backend
        .copy_bandwidth(copy_bytes, 20)
        .context("measuring the device copy bandwidth")?;
    backend.trim();
    Ok((name, bandwidth))
}

/// Runs the benchmark on the backend `make` builds for the parameters, its copy bandwidth
/// measured over copies of `copy_bytes`.
pub fn run<B: TimedBackend>(
    options: &OpsOptions,
    make: impl FnOnce(&Params) -> Result<B>,
    copy_bytes: usize,
) -> Result<OpsReport> {
    let params = params_for(options.n)?;
    let backend = make(&params)?;
    let (name, copy_bandwidth) = open(&backend, copy_bytes)?;
    let ntt_batch_limbs = if super::cuda::is_emulator(&name) {
        SMOKE_NTT_BATCH_LIMBS
    } else {
        NTT_BATCH_MIN_LIMBS
    };
    let device = DeviceRun {
        name,
        copy_bandwidth,
        ntt_batch_limbs,
    };
    run_on(options, &params, backend, Some(device))
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
