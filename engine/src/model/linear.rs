//! A dense projection y = x·Wᵀ + b over rows of activations.

use anyhow::{Context, Result};
use candle_core::Tensor;

pub(crate) struct Linear {
    /// `[d_out, d_in]` as Hugging Face stores it. Multiplying by the transposed view is as
    /// fast as by a transposed copy (measured on SmolLM2-135M decode) and shares the tied
    /// embedding instead of duplicating it.
    weight: Tensor,
    /// `[d_out]`.
    bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `x`: `[n, d_in]` → `[n, d_out]`, in `x`'s dtype. A bf16 weight (the GPU bench) gets
    /// its input in bf16 and gives the product back in `x`'s dtype.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let weight = self.weight.t()?;
        let y = if x.dtype() == weight.dtype() {
            x.matmul(&weight)
        } else {
            x.to_dtype(weight.dtype())?
                .matmul(&weight)?
                .to_dtype(x.dtype())
        }
        .context("projection")?;
        match &self.bias {
            Some(b) => Ok(y.broadcast_add(b)?),
            None => Ok(y),
        }
    }
}
