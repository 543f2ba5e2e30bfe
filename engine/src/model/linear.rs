//! A dense projection y = x·Wᵀ + b over rows of activations.

use anyhow::{Context, Result};
use candle_core::Tensor;

pub(crate) struct Linear {
    /// `[d_in, d_out]`, contiguous.
    weight_t: Tensor,
    /// `[d_out]`.
    bias: Option<Tensor>,
}

impl Linear {
    /// `weight` is `[d_out, d_in]` as Hugging Face stores it.
    pub(crate) fn new(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        // One transposed copy up front: candle's gemm then streams the weight row-major.
        let weight_t = weight.t()?.contiguous()?;
        Ok(Self { weight_t, bias })
    }

    /// `x`: `[n, d_in]` → `[n, d_out]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight_t).context("projection")?;
        match &self.bias {
            Some(b) => Ok(y.broadcast_add(b)?),
            None => Ok(y),
        }
    }
}
