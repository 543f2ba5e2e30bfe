//! ChatGLM2 under THUDM's names: fused `query_key_value` (q, then the key groups, then the
//! value groups, with a bias), `dense` without bias, and `dense_h_to_4h` whose first half
//! is the SwiGLU gate and second half the up projection.

use super::layer::{fused, take, Layer, SiteModules};
use super::rope::RopeStyle;
use super::ModelWeights;
use anyhow::Result;

/// Module reading the attention-normed hidden state (q, k and v fused).
pub const QKV: &[&str] = &["query_key_value"];
/// Module reading the attention output (heads side by side).
pub const OUTPUT: &[&str] = &["dense"];
/// Module reading the MLP-normed hidden state (gate and up fused).
pub const GATE_UP: &[&str] = &["dense_h_to_4h"];
/// Module reading silu(gate) · up.
pub const DOWN: &[&str] = &["dense_4h_to_h"];

pub(crate) const SITES: SiteModules = SiteModules {
    qkv: QKV,
    output: OUTPUT,
    gate_up: GATE_UP,
    down: DOWN,
};

/// Pairs (2i, 2i+1) of the first rotary_dim dimensions of each head turn together.
pub(crate) const ROPE: RopeStyle = RopeStyle::Interleaved;
pub(crate) const EMBEDDING: &str = "transformer.embedding.word_embeddings.weight";
pub(crate) const FINAL_NORM: &str = "transformer.encoder.final_layernorm.weight";
pub(crate) const OUTPUT_LAYER: &str = "transformer.output_layer.weight";

pub(crate) fn layer(weights: &mut ModelWeights, i: usize) -> Result<Layer> {
    let c = weights.config.clone();
    let (h, f) = (c.hidden_size, c.intermediate_size);
    let prefix = format!("transformer.encoder.layers.{i}");
    let attn = format!("{prefix}.self_attention");
    let qkv_width = c.q_dim() + 2 * c.kv_dim();
    Ok(Layer {
        attention_norm: take(weights, &format!("{prefix}.input_layernorm.weight"), &[h])?,
        qkv: fused(
            weights,
            &[(&format!("{attn}.query_key_value"), qkv_width)],
            h,
            c.qkv_bias,
        )?,
        output: fused(weights, &[(&format!("{attn}.dense"), h)], c.q_dim(), false)?,
        mlp_norm: take(
            weights,
            &format!("{prefix}.post_attention_layernorm.weight"),
            &[h],
        )?,
        gate_up: fused(
            weights,
            &[(&format!("{prefix}.mlp.dense_h_to_4h"), 2 * f)],
            h,
            false,
        )?,
        down: fused(
            weights,
            &[(&format!("{prefix}.mlp.dense_4h_to_h"), h)],
            f,
            false,
        )?,
    })
}
