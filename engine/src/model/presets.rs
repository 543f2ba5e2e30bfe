//! The shapes of well-known models, for benchmarks with random weights made in place (no
//! download): `helora bench token --preset NAME`.

use super::{Architecture, ModelConfig};
use anyhow::{bail, Result};

pub const PRESETS: &[&str] = &["chatglm2-6b", "llama2-7b", "llama3-8b", "smollm2-135m"];

/// The configuration of preset `name` (one of [`PRESETS`]).
pub fn preset(name: &str) -> Result<ModelConfig> {
    let llama = |layers, hidden, ffn, heads, kv_heads, vocab, theta: f64, tied| ModelConfig {
        arch: Architecture::Llama,
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: ffn,
        num_layers: layers,
        num_heads: heads,
        num_kv_heads: kv_heads,
        head_dim: hidden / heads,
        rotary_dim: hidden / heads,
        rope_theta: theta,
        rms_eps: 1e-5,
        max_positions: 4096,
        tie_embeddings: tied,
        qkv_bias: false,
    };
    let config = match name {
        // 28 layers, 32 heads of 128 in 2 multi-query groups: query_key_value is 4096 → 4608.
        "chatglm2-6b" => ModelConfig {
            arch: Architecture::ChatGlm2,
            vocab_size: 65024,
            hidden_size: 4096,
            intermediate_size: 13696,
            num_layers: 28,
            num_heads: 32,
            num_kv_heads: 2,
            head_dim: 128,
            rotary_dim: 64,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            max_positions: 32768,
            tie_embeddings: false,
            qkv_bias: true,
        },
        "llama2-7b" => llama(32, 4096, 11008, 32, 32, 32000, 10000.0, false),
        "llama3-8b" => llama(32, 4096, 14336, 32, 8, 128256, 500000.0, false),
        "smollm2-135m" => llama(30, 576, 1536, 9, 3, 49152, 100000.0, true),
        other => bail!(
            "unknown preset {other:?}; choose one of {}",
            PRESETS.join(", ")
        ),
    };
    config.validate()?;
    Ok(config)
}

/// PEFT's default LoRA targets for the architecture.
pub fn default_targets(config: &ModelConfig) -> Vec<String> {
    match config.arch {
        Architecture::ChatGlm2 => vec!["query_key_value".into()],
        Architecture::Llama => vec!["q_proj".into(), "v_proj".into()],
    }
}
