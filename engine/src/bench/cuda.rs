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
