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

    /// `x`: `[n, d_in]` → `[n, d_out]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?).context("projection")?;
        match &self.bias {
            Some(b) => Ok(y.broadcast_add(b)?),
            None => Ok(y),
        }
    }
}
