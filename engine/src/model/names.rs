//! The tensor names a loaded model must carry (Hugging Face names), so that every loader
//! checks completeness the same way and the forward pass only ever meets shape errors.

use super::{Architecture, ModelConfig};
use anyhow::{bail, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::path::Path;

/// Every tensor the forward pass reads for `config`, biases included when the
/// configuration says there are some, `lm_head.weight` only when not tied.
pub fn expected_tensors(config: &ModelConfig) -> Vec<String> {
    let mut names = Vec::new();
    match config.arch {
        Architecture::Llama => {
            names.push("model.embed_tokens.weight".to_string());
            for i in 0..config.num_layers {
                let p = format!("model.layers.{i}");
                names.push(format!("{p}.input_layernorm.weight"));
                for proj in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                    names.push(format!("{p}.self_attn.{proj}.weight"));
                }
                if config.qkv_bias {
                    for proj in ["q_proj", "k_proj", "v_proj"] {
                        names.push(format!("{p}.self_attn.{proj}.bias"));
                    }
                }
                names.push(format!("{p}.post_attention_layernorm.weight"));
                for proj in ["gate_proj", "up_proj", "down_proj"] {
                    names.push(format!("{p}.mlp.{proj}.weight"));
                }
            }
            names.push("model.norm.weight".to_string());
            if !config.tie_embeddings {
                names.push("lm_head.weight".to_string());
            }
        }
        Architecture::ChatGlm2 => {
            names.push("transformer.embedding.word_embeddings.weight".to_string());
            for i in 0..config.num_layers {
                let p = format!("transformer.encoder.layers.{i}");
                names.push(format!("{p}.input_layernorm.weight"));
                names.push(format!("{p}.self_attention.query_key_value.weight"));
                if config.qkv_bias {
                    names.push(format!("{p}.self_attention.query_key_value.bias"));
                }
                names.push(format!("{p}.self_attention.dense.weight"));
                names.push(format!("{p}.post_attention_layernorm.weight"));
                names.push(format!("{p}.mlp.dense_h_to_4h.weight"));
                names.push(format!("{p}.mlp.dense_4h_to_h.weight"));
            }
            names.push("transformer.encoder.final_layernorm.weight".to_string());
            if !config.tie_embeddings {
                names.push("transformer.output_layer.weight".to_string());
            }
        }
    }
    names
}

/// Fails naming the first expected tensor that `tensors` lacks, and the first tensor it
/// has that the forward pass would silently ignore (a feature helora does not implement,
/// or a configuration that does not describe the file).
pub fn check_tensors(
    tensors: &HashMap<String, Tensor>,
    config: &ModelConfig,
    source: &Path,
) -> Result<()> {
    let expected = expected_tensors(config);
    if let Some(missing) = expected.iter().find(|n| !tensors.contains_key(n.as_str())) {
        bail!(
            "{}: tensor {missing} is missing ({} tensors expected for this configuration, {} found)",
            source.display(),
            expected.len(),
            tensors.len()
        );
    }
    if tensors.len() != expected.len() {
        let known: std::collections::HashSet<&str> = expected.iter().map(String::as_str).collect();
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|n| !known.contains(n.as_str()))
            .collect();
        extra.sort();
        if let Some(first) = extra.first() {
            bail!(
                "{}: unexpected tensor {first} ({} unexpected in all): helora's forward pass has no place for it",
                source.display(),
                extra.len()
            );
        }
    }
    Ok(())
}
