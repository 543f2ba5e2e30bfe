//! Rotary position embedding: cos/sin tables for the leading positions (as many as fit
//! [`TABLE_BYTES`]; later ones are computed when used), and their application to the
//! leading `rotary_dim` dimensions of each query and key head.

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

/// Largest cos + sin table: a config's max_position_embeddings × head_dim can ask for tens
/// of GiB (2^21 × 4096 is 32 GiB) that a run of a few thousand positions never reads.
const TABLE_BYTES: usize = 64 << 20;

pub(crate) struct Rotary {
    style: RopeStyle,
    dim: usize,
    max_positions: usize,
    /// θ_i = theta^(-2i/dim).
    inv_freq: Vec<f64>,
    /// `[table positions, dim / 2]`: angle position·θ_i.
    cos: Tensor,
    sin: Tensor,
}

/// cos and sin of position·θ_i for `positions`, row-major `[positions, θ]`.
fn angles(inv_freq: &[f64], positions: std::ops::Range<usize>) -> (Vec<f32>, Vec<f32>) {
    let count = positions.len() * inv_freq.len();
    let (mut cos, mut sin) = (Vec::with_capacity(count), Vec::with_capacity(count));
    for p in positions {
        for &f in inv_freq {
            let angle = p as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

impl Rotary {
    pub(crate) fn new(config: &ModelConfig, style: RopeStyle, device: &Device) -> Result<Self> {
        let dim = config.rotary_dim;
        let half = dim / 2;
        let per_position = 2 * half * std::mem::size_of::<f32>();
        let positions = config
            .max_positions
            .min((TABLE_BYTES / per_position).max(1));
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| config.rope_theta.powf(-((2 * i) as f64) / dim as f64))
            .collect();
        let (cos, sin) = angles(&inv_freq, 0..positions);
        let cos = Tensor::from_vec(cos, (positions, half), device)?;
        let sin = Tensor::from_vec(sin, (positions, half), device)?;
        Ok(Self {
            style,
            dim,
            max_positions: config.max_positions,
            inv_freq,
            cos,
            sin,
        })
    }

    /// Positions whose angles are precomputed.
    pub(crate) fn table_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// cos and sin for positions `start..start + n`: from the table, or computed.
    fn slice(&self, start: usize, n: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        if start + n <= self.table_positions() {
            return Ok((self.cos.narrow(0, start, n)?, self.sin.narrow(0, start, n)?));
        }
        let (cos, sin) = angles(&self.inv_freq, start..start + n);
        let shape = (n, self.inv_freq.len());
        Ok((
            Tensor::from_vec(cos, shape, device)?,
            Tensor::from_vec(sin, shape, device)?,
        ))
    }

    /// Rotates `x`, `[heads, n, head_dim]`, whose rows sit at positions `start..start + n`.
    pub(crate) fn apply(&self, x: &Tensor, start: usize) -> Result<Tensor> {
        let (_heads, n, head_dim) = x.dims3()?;
        if start + n > self.max_positions {
            bail!(
                "position {} is past the model's {} positions",
                start + n - 1,
                self.max_positions
            );
        }
        let (cos, sin) = self.slice(start, n, x.device())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Architecture;

    fn config(head_dim: usize, max_positions: usize) -> ModelConfig {
        ModelConfig {
            arch: Architecture::Llama,
            vocab_size: 16,
            hidden_size: head_dim,
            intermediate_size: 16,
            num_layers: 1,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim,
            rotary_dim: head_dim,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            max_positions,
            tie_embeddings: true,
            qkv_bias: false,
        }
    }

    #[test]
    fn the_tables_stay_small_whatever_the_config_asks() -> Result<()> {
        // 65536 positions × 4096 dimensions: 1 GiB of tables if all were made up front.
        let rotary = Rotary::new(&config(4096, 1 << 16), RopeStyle::Half, &Device::Cpu)?;
        let bytes = rotary.table_positions() * 4096 * std::mem::size_of::<f32>();
        assert!(bytes <= TABLE_BYTES, "{bytes} bytes of tables");
        Ok(())
    }

    #[test]
    fn positions_past_the_table_turn_as_the_table_would() -> Result<()> {
        let cfg = config(8, 64);
        let full = Rotary::new(&cfg, RopeStyle::Half, &Device::Cpu)?;
        let mut short = Rotary::new(&cfg, RopeStyle::Half, &Device::Cpu)?;
        short.cos = short.cos.narrow(0, 0, 10)?;
        short.sin = short.sin.narrow(0, 0, 10)?;
        let x = Tensor::arange(0f32, 2.0 * 5.0 * 8.0, &Device::Cpu)?.reshape((2, 5, 8))?;
        let (a, b) = (full.apply(&x, 30)?, short.apply(&x, 30)?);
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        assert!(full.apply(&x, 60).is_err());
        Ok(())
    }
}
