//! `--device cuda` of `bench ops` and `bench lora`: the GPU runs in a binary built with the
//! `cuda` feature, a clear error in one built without it.

use super::cuda_report::CudaLoraReport;
use super::lora::LoraOptions;
use super::ops::OpsOptions;
use super::report::OpsReport;
use anyhow::Result;

/// The error of `--device cuda` in a binary without the feature.
pub const NOT_BUILT: &str = "built without CUDA support; rebuild with --features cuda";

/// `bench ops` on the GPU.
pub fn ops(options: &OpsOptions) -> Result<OpsReport> {
    #[cfg(feature = "cuda")]
    return super::cuda_ops::run(options);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = options;
        anyhow::bail!(NOT_BUILT)
    }
}

/// `bench lora` on the GPU, with `batch` independent ciphertexts for the throughput figure.
pub fn lora(options: &LoraOptions, batch: usize) -> Result<CudaLoraReport> {
    #[cfg(feature = "cuda")]
    return super::cuda_lora::run(options, batch);
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (options, batch);
        anyhow::bail!(NOT_BUILT)
    }
}
