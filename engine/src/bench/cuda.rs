//! `--device cuda` of `bench ops` and `bench lora`: the GPU runs in a binary built with the
//! `cuda` feature, a clear error in one built without it.

use super::device_report::DeviceLoraReport;
use super::lora::LoraOptions;
use super::ops::OpsOptions;
use super::report::OpsReport;
use anyhow::Result;

/// Bytes per buffer of the GPU's bandwidth copy: far above the H100's 50 MB L2.
#[cfg(feature = "cuda")]
const COPY_BYTES: usize = 512 << 20;

/// The CUDA backend for `params`, or the backend's error (no driver, no device).
#[cfg(feature = "cuda")]
fn backend(params: &helora::ckks::Params) -> Result<helora::backend::CudaBackend> {
    use anyhow::Context;
    helora::backend::CudaBackend::new(params.ring().clone(), params.alpha())
        .context("starting the CUDA backend")
}

/// Whether a CUDA device name is the stand-in driver's (cuda-emu, "helora cuda-emu (not a
/// GPU)"): it runs the kernels on the CPU, so its event times are host times of an
/// emulation, never GPU timings.
pub fn is_emulator(device_name: &str) -> bool {
    device_name.contains("cuda-emu")
}

/// What `bench ops/lora --device cuda` print instead of their report on the stand-in driver:
/// the benchmark's work ran (a smoke run), its timings are not reported.
pub fn emulator_notice(bench: &str, device_name: &str) -> String {
    let smoke = if bench == "ops" {
        "the NTT batch and the bandwidth copies at smoke sizes"
    } else {
        "the bandwidth copies at a smoke size"
    };
    format!(
        "bench {bench} --device cuda: the device is {device_name:?}, the stand-in driver that \
         runs the kernels on the CPU; every operation of the benchmark ran on it ({smoke}), \
         and no timing is reported (they would be host times of an emulation, not a GPU's)\n"
    )
}

/// The error of `--device cuda` in a binary without the feature.
pub const NOT_BUILT: &str = "built without CUDA support; rebuild with --features cuda";

/// `bench ops` on the GPU.
pub fn ops(options: &OpsOptions) -> Result<OpsReport> {
    #[cfg(feature = "cuda")]
    return super::device_ops::run(options, backend, COPY_BYTES);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = options;
        anyhow::bail!(NOT_BUILT)
    }
}

/// `bench lora` on the GPU, with `batch` independent ciphertexts for the throughput figure.
pub fn lora(options: &LoraOptions, batch: usize) -> Result<DeviceLoraReport> {
    #[cfg(feature = "cuda")]
    return super::device_lora::run(options, batch, backend, COPY_BYTES);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (options, batch);
        anyhow::bail!(NOT_BUILT)
    }
}
