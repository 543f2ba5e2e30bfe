//! The shape of a base model, whatever file it came from.

use anyhow::{bail, Result};

/// The forward passes helora implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// Llama 2/3, Mistral, Qwen2 (q/k/v biases), SmolLM2: `model.layers.N.self_attn.q_proj` …
    Llama,
    /// ChatGLM2: multi-query attention, fused `query_key_value`, rotary on half of each
    /// head, SwiGLU `dense_h_to_4h`.
    ChatGlm2,
}

/// Everything the forward pass needs to know about the shapes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub arch: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that are rotated (head_dim for Llama, head_dim / 2
    /// for ChatGLM2).
    pub rotary_dim: usize,
    pub rope_theta: f64,
    pub rms_eps: f64,
    pub max_positions: usize,
    /// The output projection is the token embedding.
    pub tie_embeddings: bool,
    /// q/k/v (or query_key_value) carry biases (Qwen2, ChatGLM2).
    pub qkv_bias: bool,
}

impl ModelConfig {
    /// Checks the shapes agree with one another (files come from outside).
    pub fn validate(&self) -> Result<()> {
        // Every size positive; and far above any real model, low enough that the shape
        // arithmetic cannot overflow and a hostile file cannot make the loader allocate
        // without bound (the rotary tables hold max_positions × rotary_dim values, the
        // tensor names num_layers entries).
        let sizes = [
            ("vocab_size", self.vocab_size, 1 << 24),
            ("hidden_size", self.hidden_size, 1 << 18),
            ("intermediate_size", self.intermediate_size, 1 << 20),
            ("num_layers", self.num_layers, 1 << 10),
            ("num_heads", self.num_heads, 1 << 12),
            ("num_kv_heads", self.num_kv_heads, 1 << 12),
            ("head_dim", self.head_dim, 1 << 12),
            ("max_positions", self.max_positions, 1 << 21),
        ];
        for (name, value, limit) in sizes {
            if value == 0 {
                bail!("{name} is 0");
            }
            if value > limit {
                bail!("{name} {value} exceeds the supported {limit}");
            }
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            bail!(
                "{} attention heads cannot be shared by {} key/value heads",
                self.num_heads,
                self.num_kv_heads
            );
        }
        if self.rotary_dim == 0
            || self.rotary_dim > self.head_dim
            || !self.rotary_dim.is_multiple_of(2)
        {
            bail!(
                "rotary dimension {} does not fit a head of {}",
                self.rotary_dim,
                self.head_dim
            );
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            bail!("rope theta {} is not positive", self.rope_theta);
        }
        if !(self.rms_eps.is_finite() && self.rms_eps > 0.0) {
            bail!("RMS-norm epsilon {} is not positive", self.rms_eps);
        }
        Ok(())
    }

    /// Width of the query projection's output.
    pub fn q_dim(&self) -> usize {
        self.num_heads * self.head_dim
    }

    /// Width of the key (and of the value) projection's output.
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim
    }

    /// The projections of one layer as PEFT names them, with (d_in, d_out), grouped by the
    /// input they read (one [`super::InputSite`] each).
    pub fn projections(&self) -> Vec<(&'static str, usize, usize)> {
        let (h, f) = (self.hidden_size, self.intermediate_size);
        match self.arch {
            Architecture::Llama => vec![
                ("q_proj", h, self.q_dim()),
                ("k_proj", h, self.kv_dim()),
                ("v_proj", h, self.kv_dim()),
                ("o_proj", self.q_dim(), h),
                ("gate_proj", h, f),
                ("up_proj", h, f),
                ("down_proj", f, h),
            ],
            Architecture::ChatGlm2 => vec![
                ("query_key_value", h, self.q_dim() + 2 * self.kv_dim()),
                ("dense", self.q_dim(), h),
                ("dense_h_to_4h", h, 2 * f),
                ("dense_4h_to_h", f, h),
            ],
        }
    }
}
