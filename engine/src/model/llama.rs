//! The Llama family (Llama 2/3, Mistral, Qwen2, SmolLM2) under Hugging Face names.

use super::layer::{fused, take, Layer, SiteModules};
use super::rope::RopeStyle;
use super::ModelWeights;
use anyhow::Result;

/// Modules reading the attention-normed hidden state.
pub const QKV: &[&str] = &["q_proj", "k_proj", "v_proj"];
/// Module reading the attention output (heads side by side).
pub const OUTPUT: &[&str] = &["o_proj"];
/// Modules reading the MLP-normed hidden state.
pub const GATE_UP: &[&str] = &["gate_proj", "up_proj"];
/// Module reading silu(gate) · up.
pub const DOWN: &[&str] = &["down_proj"];

pub(crate) const SITES: SiteModules = SiteModules {
    qkv: QKV,
    output: OUTPUT,
    gate_up: GATE_UP,
    down: DOWN,
};

pub(crate) const ROPE: RopeStyle = RopeStyle::Half;
pub(crate) const EMBEDDING: &str = "model.embed_tokens.weight";
pub(crate) const FINAL_NORM: &str = "model.norm.weight";
pub(crate) const OUTPUT_LAYER: &str = "lm_head.weight";

pub(crate) fn layer(weights: &mut ModelWeights, i: usize) -> Result<Layer> {
    let c = weights.config.clone();
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let attn = format!("model.layers.{i}.self_attn");
    let mlp = format!("model.layers.{i}.mlp");
    Ok(Layer {
        attention_norm: take(
            weights,
            &format!("model.layers.{i}.input_layernorm.weight"),
            &[h],
        )?,
        qkv: fused(
            weights,
            &[
                (&format!("{attn}.q_proj"), c.q_dim()),
                (&format!("{attn}.k_proj"), c.kv_dim()),
                (&format!("{attn}.v_proj"), c.kv_dim()),
            ],
            h,
            c.qkv_bias,
        )?,
        output: fused(weights, &[(&format!("{attn}.o_proj"), h)], c.q_dim(), false)?,
        mlp_norm: take(
            weights,
            &format!("model.layers.{i}.post_attention_layernorm.weight"),
            &[h],
        )?,
        gate_up: fused(
            weights,
            &[
                (&format!("{mlp}.gate_proj"), f),
                (&format!("{mlp}.up_proj"), f),
            ],
            h,
            false,
        )?,
        down: fused(weights, &[(&format!("{mlp}.down_proj"), h)], f, false)?,
    })
}
