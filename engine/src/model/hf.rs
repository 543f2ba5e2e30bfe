//! Hugging Face model directories: `config.json` and the `*.safetensors` shards, whose
//! tensors already carry the names and layout helora uses (bf16/f16 become f32).

use super::{names, Architecture, ModelConfig, ModelWeights};
use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `model_type`s run by the Llama forward pass.
const LLAMA_TYPES: &[&str] = &["llama", "mistral", "qwen2"];

/// Reads `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<ModelConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse_config(&text, &path)
}

/// The configuration in the text of a `config.json` (`source` names it in errors).
pub fn parse_config(text: &str, source: &Path) -> Result<ModelConfig> {
    let value: Value = serde_json::from_str(text)
        .with_context(|| format!("{} is not valid JSON", source.display()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| anyhow!("{} is not a JSON object", source.display()))?;
    let fields = Fields { obj, source };
    let model_type = fields.string("model_type")?;
    let config = if LLAMA_TYPES.contains(&model_type) {
        llama_config(&fields, model_type)?
    } else if model_type == "chatglm" {
        chatglm_config(&fields)?
    } else {
        bail!(
            "{}: model_type {model_type:?} is not supported (supported: {}, chatglm)",
            source.display(),
            LLAMA_TYPES.join(", ")
        );
    };
    config
        .validate()
        .with_context(|| format!("{}: inconsistent model configuration", source.display()))?;
    Ok(config)
}

fn llama_config(f: &Fields, model_type: &str) -> Result<ModelConfig> {
    if let Some(act) = f.optional_string("hidden_act")? {
        if act != "silu" {
            f.unsupported(&format!("hidden_act {act:?} (only silu)"))?;
        }
    }
    if f.optional_bool("attention_bias")? == Some(true) {
        f.unsupported("attention_bias (an o_proj bias)")?;
    }
    if f.optional_bool("mlp_bias")? == Some(true) {
        f.unsupported("mlp_bias")?;
    }
    if f.is_set("rope_scaling") {
        f.unsupported("rope_scaling")?;
    }
    // Newer files group the rotary settings under rope_parameters.
    let mut rope_theta = f.optional_f64("rope_theta")?;
    if let Some(params) = f.obj.get("rope_parameters").filter(|v| !v.is_null()) {
        let params = params.as_object().ok_or_else(|| {
            anyhow!(
                "{}: field \"rope_parameters\" is not an object",
                f.source.display()
            )
        })?;
        let p = Fields {
            obj: params,
            source: f.source,
        };
        if let Some(kind) = p.optional_string("rope_type")? {
            if kind != "default" {
                f.unsupported(&format!("rope_parameters.rope_type {kind:?}"))?;
            }
        }
        rope_theta = p.optional_f64("rope_theta")?.or(rope_theta);
    }

    let hidden_size = f.usize("hidden_size")?;
    let num_heads = f.usize("num_attention_heads")?;
    let head_dim = match f.optional_usize("head_dim")? {
        Some(d) => d,
        None => {
            if num_heads == 0 || hidden_size % num_heads != 0 {
                bail!(
                    "{}: hidden_size {hidden_size} is not a multiple of {num_heads} heads",
                    f.source.display()
                );
            }
            hidden_size / num_heads
        }
    };
    let mut max_positions = f.usize("max_position_embeddings")?;
    // A sliding window changes nothing for sequences that fit in it: cap the length there
    // rather than implement it.
    let windowed = match model_type {
        "qwen2" => f.optional_bool("use_sliding_window")?.unwrap_or(false),
        _ => true,
    };
    if windowed {
        if let Some(window) = f.optional_usize("sliding_window")? {
            max_positions = max_positions.min(window);
        }
    }
    Ok(ModelConfig {
        arch: Architecture::Llama,
        vocab_size: f.usize("vocab_size")?,
        hidden_size,
        intermediate_size: f.usize("intermediate_size")?,
        num_layers: f.usize("num_hidden_layers")?,
        num_heads,
        num_kv_heads: f
            .optional_usize("num_key_value_heads")?
            .unwrap_or(num_heads),
        head_dim,
        rotary_dim: head_dim,
        rope_theta: rope_theta.unwrap_or(10000.0),
        rms_eps: f.optional_f64("rms_norm_eps")?.unwrap_or(1e-6),
        max_positions,
        tie_embeddings: f.optional_bool("tie_word_embeddings")?.unwrap_or(false),
        qkv_bias: model_type == "qwen2",
    })
}

fn chatglm_config(f: &Fields) -> Result<ModelConfig> {
    // The variants of the ChatGLM block helora does not implement.
    let required_flags = [
        ("rmsnorm", true),
        ("post_layer_norm", true),
        ("add_bias_linear", false),
        ("apply_residual_connection_post_layernorm", false),
    ];
    for (flag, wanted) in required_flags {
        if let Some(value) = f.optional_bool(flag)? {
            if value != wanted {
                f.unsupported(&format!("{flag} = {value}"))?;
            }
        }
    }
    if f.is_set("rope_scaling") {
        f.unsupported("rope_scaling")?;
    }
    let num_heads = f.usize("num_attention_heads")?;
    let num_kv_heads = if f.optional_bool("multi_query_attention")?.unwrap_or(false) {
        f.usize("multi_query_group_num")?
    } else {
        num_heads
    };
    let head_dim = f.usize("kv_channels")?;
    Ok(ModelConfig {
        arch: Architecture::ChatGlm2,
        vocab_size: f.usize("padded_vocab_size")?,
        hidden_size: f.usize("hidden_size")?,
        intermediate_size: f.usize("ffn_hidden_size")?,
        num_layers: f.usize("num_layers")?,
        num_heads,
        num_kv_heads,
        head_dim,
        rotary_dim: head_dim / 2,
        rope_theta: 10000.0 * f.optional_f64("rope_ratio")?.unwrap_or(1.0),
        rms_eps: f.optional_f64("layernorm_epsilon")?.unwrap_or(1e-5),
        max_positions: f.usize("seq_length")?,
        tie_embeddings: f.optional_bool("tie_word_embeddings")?.unwrap_or(false),
        qkv_bias: f.optional_bool("add_qkv_bias")?.unwrap_or(false),
    })
}

/// Reads the model in `dir`: `config.json` and every `*.safetensors` file, tensors as
/// f32 on `device`. A bar shows progress over the files when `show_progress`.
pub fn load_weights(dir: &Path, device: &Device, show_progress: bool) -> Result<ModelWeights> {
    let config = read_config(dir)?;
    let files = safetensors_files(dir)?;
    let tied_head = match config.arch {
        Architecture::Llama => "lm_head.weight",
        Architecture::ChatGlm2 => "transformer.output_layer.weight",
    };
    let progress = show_progress.then(|| {
        Progress::start(
            &format!("loading {} safetensors files", files.len()),
            files.len() as u64,
        )
    });
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in &files {
        let loaded = candle_core::safetensors::load(file, &Device::Cpu)
            .with_context(|| format!("{} is not a readable safetensors file", file.display()))?;
        for (name, t) in loaded {
            // Rotary frequency buffers are recomputed from the configuration; a tied head
            // saved anyway is the embedding again.
            if name.ends_with(".inv_freq") || (config.tie_embeddings && name == tied_head) {
                continue;
            }
            let t = t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_device(device))
                .with_context(|| format!("{}: cannot convert tensor {name}", file.display()))?;
            if tensors.insert(name.clone(), t).is_some() {
                bail!(
                    "{}: tensor {name} appears in more than one safetensors file",
                    dir.display()
                );
            }
        }
        if let Some(p) = &progress {
            p.advance();
        }
    }
    if let Some(p) = progress {
        p.finish();
    }
    names::check_tensors(&tensors, &config, dir)?;
    Ok(ModelWeights {
        config,
        tensors,
        device: device.clone(),
    })
}

/// The `*.safetensors` files in `dir`, sorted.
fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            crate::files::regular_file(&path)?;
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!(
            "{}: no *.safetensors files (PyTorch .bin checkpoints are not supported; save the \
             model with safetensors or use a GGUF file)",
            dir.display()
        );
    }
    Ok(files)
}

/// Typed access to the fields of a JSON object, with errors naming the file and field.
pub(crate) struct Fields<'a> {
    pub obj: &'a Map<String, Value>,
    pub source: &'a Path,
}

impl Fields<'_> {
    /// Present and not null.
    fn is_set(&self, key: &str) -> bool {
        self.obj.get(key).is_some_and(|v| !v.is_null())
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn wrong(&self, key: &str, what: &str) -> anyhow::Error {
        anyhow!("{}: field {key:?} is not {what}", self.source.display())
    }

    fn missing(&self, key: &str) -> anyhow::Error {
        anyhow!("{}: field {key:?} is missing", self.source.display())
    }

    fn unsupported(&self, what: &str) -> Result<()> {
        bail!("{}: {what} is not supported", self.source.display())
    }

    pub fn optional_usize(&self, key: &str) -> Result<Option<usize>> {
        self.get(key)
            .map(|v| {
                v.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| self.wrong(key, "a non-negative integer"))
            })
            .transpose()
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.optional_usize(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn optional_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().ok_or_else(|| self.wrong(key, "a number")))
            .transpose()
    }

    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| v.as_bool().ok_or_else(|| self.wrong(key, "true or false")))
            .transpose()
    }

    pub fn optional_string(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| v.as_str().ok_or_else(|| self.wrong(key, "a string")))
            .transpose()
    }

    pub fn string(&self, key: &str) -> Result<&str> {
        self.optional_string(key)?.ok_or_else(|| self.missing(key))
    }
}
