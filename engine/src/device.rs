//! Where the base model (candle) runs: the CPU in every build, CUDA device 0 in the full GPU
//! build (feature `gpu`), a clear error naming that build elsewhere.

use anyhow::Result;
use candle_core::Device;

/// `--device`: where the base model (and, in secure mode, the HE server beside it) runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Cpu,
    Cuda,
}

/// The error of `--device cuda` for the base model in a binary without the `gpu` feature.
pub const GPU_NOT_BUILT: &str = "--device cuda runs the base model on a CUDA GPU, which needs the \
     full GPU build of helora: cargo build --release -p helora-engine --features gpu (see \
     docs/cuda.md)";

/// The device of `choice`. For CUDA, the driver and device are checked first, so a
/// machine without them gets "no usable CUDA driver or device" rather than candle's error.
pub fn model_device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => cuda_device(),
    }
}

/// Whether `choice` can be had, without opening it: for a clear error before anything
/// large is made.
pub fn check(choice: DeviceChoice) -> Result<()> {
    match choice {
        DeviceChoice::Cpu => Ok(()),
        DeviceChoice::Cuda => check_cuda(),
    }
}

#[cfg(feature = "gpu")]
fn check_cuda() -> Result<()> {
    use anyhow::Context;
    helora::backend::cuda::check_device(0).context("--device cuda")
}

#[cfg(feature = "gpu")]
fn cuda_device() -> Result<Device> {
    use anyhow::Context;
    check_cuda()?;
    Device::new_cuda(0).context("--device cuda: opening CUDA device 0 for the base model")
}

#[cfg(not(feature = "gpu"))]
fn check_cuda() -> Result<()> {
    anyhow::bail!(GPU_NOT_BUILT)
}

#[cfg(not(feature = "gpu"))]
fn cuda_device() -> Result<Device> {
    anyhow::bail!(GPU_NOT_BUILT)
}

/// The name reports use for `device`.
pub fn name(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
