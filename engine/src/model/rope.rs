//! Rotary position embedding: cos/sin tables for every position the model accepts, and
//! their application to the leading `rotary_dim` dimensions of each query and key head.

use super::ModelConfig;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

/// How the rotated dimensions are paired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RopeStyle {
    /// Hugging Face Llama's `rotate_half`: dimension i pairs with i + rotary_dim/2.
    Half,
    /// ChatGLM2: dimensions 2i and 2i+1 form a pair.
    Interleaved,
}

pub(crate) struct Rotary {
    style: RopeStyle,
    dim: usize,
    /// `[max_positions, dim / 2]`: angle position·θ_i with θ_i = theta^(-2i/dim).
    cos: Tensor,
    sin: Tensor,
}

impl Rotary {
    pub(crate) fn new(config: &ModelConfig, style: RopeStyle, device: &Device) -> Result<Self> {
        let dim = config.rotary_dim;
        let half = dim / 2;
        let positions = config.max_positions;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| config.rope_theta.powf(-((2 * i) as f64) / dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(positions * half);
        let mut sin = Vec::with_capacity(positions * half);
        for p in 0..positions {
            for &f in &inv_freq {
                let angle = p as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let cos = Tensor::from_vec(cos, (positions, half), device)?;
        let sin = Tensor::from_vec(sin, (positions, half), device)?;
        Ok(Self {
            style,
            dim,
            cos,
            sin,
        })
    }

    /// Rotates `x`, `[heads, n, head_dim]`, whose rows sit at positions `start..start + n`.
    pub(crate) fn apply(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let (_heads, n, head_dim) = x.dims3()?;
        if start + n > self.cos.dim(0)? {
            bail!("position {} is past the rotary table", start + n - 1);
        }
        let cos = self.cos.narrow(0, start, n)?;
        let sin = self.sin.narrow(0, start, n)?;
        let x = x.unsqueeze(0)?;
        let rotate = |part: &Tensor| -> Result<Tensor> {
            let part = part.contiguous()?;
            Ok(match self.style {
                RopeStyle::Half => candle_nn::rotary_emb::rope(&part, &cos, &sin)?,
                RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&part, &cos, &sin)?,
            })
        };
        let out = if self.dim == head_dim {
            rotate(&x)?
        } else {
            // Only the leading dimensions turn; the rest pass through unchanged.
            let turned = rotate(&x.narrow(3, 0, self.dim)?)?;
            let kept = x.narrow(3, self.dim, head_dim - self.dim)?;
            Tensor::cat(&[&turned, &kept], 3)?
        };
        out.squeeze(0).context("rotary embedding")
    }
}
