//! GGUF files (llama.cpp's format): the configuration from the metadata, and every tensor
//! dequantised to f32 under its Hugging Face name, with llama.cpp's permutation of the
//! q/k rows undone so the forward pass sees Hugging Face layout.

use super::{names, Architecture, ModelConfig, ModelWeights};
use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value};
use candle_core::{Device, Tensor};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

/// The `general.architecture` values helora runs, and whether llama.cpp's converter
/// permuted their q/k rows (it does for the models it runs with interleaved rotary
/// pairs, "llama"; Qwen2 keeps Hugging Face's half-split layout and is stored as is).
const ARCHITECTURES: &[(&str, bool)] = &[("llama", true), ("qwen2", false)];

/// Reads the header (metadata and tensor directory) of the GGUF file at `path`.
pub fn read_header(path: &Path) -> Result<Content> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    contained(|| Content::read(&mut reader)).map_err(|e| {
        // candle's message gives the type id as if it were a tensor: name the tensor.
        let e = match super::gguf_dtype::unknown_dtype_tensor(path) {
            Some((name, dtype)) if format!("{e}").contains("unknown dtype") => anyhow!(
                "tensor {name} has GGML type {dtype}, which helora cannot read (it reads \
                 F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 and Q2_K … Q8_K)"
            ),
            _ => e,
        };
        e.context(format!("{} is not a readable GGUF file", path.display()))
    })
}

/// Runs candle's GGUF reader on a file from outside, turning a panic inside it into an
/// error (it divides by a `general.alignment` of 0, for one). Its panic message is kept
/// off stderr meanwhile: loading runs before any other thread of ours does work.
fn contained<T>(read: impl FnOnce() -> candle_core::Result<T>) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    std::panic::set_hook(hook);
    match out {
        Ok(result) => Ok(result?),
        Err(_) => bail!("the GGUF reader failed on malformed contents"),
    }
}

/// The model configuration the metadata of `content` describes (`source` names the file
/// in errors).
pub fn config_from_header(content: &Content, source: &Path) -> Result<ModelConfig> {
    let meta = Metadata {
        map: &content.metadata,
        source,
    };
    let arch = meta.string("general.architecture")?;
    if !ARCHITECTURES.iter().any(|(name, _)| *name == arch) {
        bail!(
            "{}: architecture {arch:?} is not supported (supported: {})",
            source.display(),
            supported_list()
        );
    }
    let key = |k: &str| format!("{arch}.{k}");
    if let Some(scaling) = meta.optional_string(&key("rope.scaling.type"))? {
        if scaling != "none" {
            bail!(
                "{}: rope scaling {scaling:?} is not supported",
                source.display()
            );
        }
    }
    let hidden_size = meta.usize(&key("embedding_length"))?;
    let num_heads = meta.usize(&key("attention.head_count"))?;
    let num_kv_heads = meta
        .optional_usize(&key("attention.head_count_kv"))?
        .unwrap_or(num_heads);
    let head_dim = match meta.optional_usize(&key("attention.key_length"))? {
        Some(d) => d,
        None => {
            if num_heads == 0 || hidden_size % num_heads != 0 {
                bail!(
                    "{}: embedding length {hidden_size} is not a multiple of {num_heads} heads",
                    source.display()
                );
            }
            hidden_size / num_heads
        }
    };
    if let Some(v) = meta.optional_usize(&key("attention.value_length"))? {
        if v != head_dim {
            bail!(
                "{}: value heads of {v} differ from key heads of {head_dim}, which helora does not support",
                source.display()
            );
        }
    }
    let vocab_size = match content.metadata.get("tokenizer.ggml.tokens") {
        Some(Value::Array(tokens)) => tokens.len(),
        Some(_) => bail!(
            "{}: metadata tokenizer.ggml.tokens is not a list",
            source.display()
        ),
        None => match meta.optional_usize(&key("vocab_size"))? {
            Some(v) => v,
            None => content
                .tensor_infos
                .get("token_embd.weight")
                .and_then(|info| info.shape.dims().first().copied())
                .ok_or_else(|| {
                    anyhow!(
                        "{}: no token list, vocab_size or token_embd.weight to size the vocabulary",
                        source.display()
                    )
                })?,
        },
    };
    let config = ModelConfig {
        arch: Architecture::Llama,
        vocab_size,
        hidden_size,
        intermediate_size: meta.usize(&key("feed_forward_length"))?,
        num_layers: meta.usize(&key("block_count"))?,
        num_heads,
        num_kv_heads,
        head_dim,
        rotary_dim: meta
            .optional_usize(&key("rope.dimension_count"))?
            .unwrap_or(head_dim),
        rope_theta: meta
            .optional_f64(&key("rope.freq_base"))?
            .unwrap_or(10000.0),
        rms_eps: meta.f64(&key("attention.layer_norm_rms_epsilon"))?,
        max_positions: meta.usize(&key("context_length"))?,
        tie_embeddings: !content.tensor_infos.contains_key("output.weight"),
        qkv_bias: content.tensor_infos.contains_key("blk.0.attn_q.bias"),
    };
    config
        .validate()
        .with_context(|| format!("{}: inconsistent model configuration", source.display()))?;
    Ok(config)
}

/// Reads every tensor of the GGUF file at `path` (whose header is `content`), dequantised
/// to f32 on `device`, under Hugging Face names. A bar shows progress when
/// `show_progress`.
pub fn load_weights(
    path: &Path,
    content: &Content,
    device: &Device,
    show_progress: bool,
) -> Result<ModelWeights> {
    let config = config_from_header(content, path)?;
    let meta = Metadata {
        map: &content.metadata,
        source: path,
    };
    let arch = meta.string("general.architecture")?;
    let permuted = ARCHITECTURES
        .iter()
        .any(|(name, permuted)| *name == arch && *permuted);

    // Read in file order: one forward sweep through a file of hundreds of megabytes.
    let mut infos: Vec<_> = content.tensor_infos.iter().collect();
    infos.sort_by_key(|(_, info)| info.offset);

    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let progress = show_progress.then(|| {
        Progress::start(
            &format!("dequantising {} tensors", infos.len()),
            infos.len() as u64,
        )
    });
    let mut tensors = HashMap::with_capacity(infos.len());
    for (gguf_name, info) in infos {
        let name = hf_name(gguf_name).ok_or_else(|| {
            anyhow!(
                "{}: tensor {gguf_name} has no counterpart in helora's forward pass",
                path.display()
            )
        })?;
        let heads = match gguf_name.split('.').nth(2) {
            Some("attn_q") if permuted => Some(config.num_heads),
            Some("attn_k") if permuted => Some(config.num_kv_heads),
            _ => None,
        };
        let tensor = read_tensor(&mut reader, content, info, heads, device).with_context(|| {
            format!(
                "{}: cannot read tensor {gguf_name} ({:?}, shape {:?})",
                path.display(),
                info.ggml_dtype,
                info.shape.dims()
            )
        })?;
        tensors.insert(name, tensor);
        if let Some(p) = &progress {
            p.advance();
        }
    }
    if let Some(p) = progress {
        p.finish();
    }
    names::check_tensors(&tensors, &config, path)?;
    Ok(ModelWeights {
        config,
        tensors,
        device: device.clone(),
    })
}

/// One tensor dequantised to f32 (on the CPU, where the un-permutation is cheap), its
/// rows un-permuted for `heads` heads when given, then moved to `device`.
fn read_tensor(
    reader: &mut BufReader<File>,
    content: &Content,
    info: &TensorInfo,
    heads: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    check_extent(
        info,
        content.tensor_data_offset,
        reader.get_ref().metadata()?.len(),
    )?;
    let q = contained(|| info.read(reader, content.tensor_data_offset, &Device::Cpu))?;
    let t = q.dequantize(&Device::Cpu)?;
    let t = match heads {
        Some(heads) => unpermute_rotary(&t, heads)?,
        None => t,
    };
    Ok(t.to_device(device)?)
}

/// Fails unless the tensor's size is computable and its bytes lie inside the file (candle
/// multiplies the dimensions unchecked and would allocate what a header claims).
fn check_extent(info: &TensorInfo, data_offset: u64, file_len: u64) -> Result<()> {
    let dtype = info.ggml_dtype;
    let elements = info
        .shape
        .dims()
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .filter(|n| n.is_multiple_of(dtype.block_size() as u64))
        .ok_or_else(|| anyhow!("shape {:?} has no valid size", info.shape.dims()))?;
    let bytes = (elements / dtype.block_size() as u64)
        .checked_mul(dtype.type_size() as u64)
        .ok_or_else(|| anyhow!("shape {:?} has no valid size", info.shape.dims()))?;
    let end = data_offset
        .checked_add(info.offset)
        .and_then(|start| start.checked_add(bytes));
    match end {
        Some(end) if end <= file_len => Ok(()),
        _ => bail!(
            "its {bytes} bytes at offset {} run past the end of the file ({file_len} bytes)",
            info.offset
        ),
    }
}

/// The Hugging Face name of the GGUF tensor `gguf_name`, or `None` for a tensor helora
/// has no use for.
pub fn hf_name(gguf_name: &str) -> Option<String> {
    match gguf_name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.split_once('.')?;
    let hf_module = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    let biased = matches!(module, "attn_q" | "attn_k" | "attn_v");
    match kind {
        "weight" => {}
        "bias" if biased => {}
        _ => return None,
    }
    Some(format!("model.layers.{layer}.{hf_module}.{kind}"))
}

/// Undoes llama.cpp's `permute` of the rows of a q or k projection (weight `[rows, in]`
/// or bias `[rows]`, rows = `heads` × head_dim). The converter reshapes the rows to
/// (heads, 2, head_dim/2) and swaps the last two axes, interleaving the two rotary halves
/// of each head; swapping back restores Hugging Face's half-split order.
pub fn unpermute_rotary(t: &Tensor, heads: usize) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = *dims
        .first()
        .ok_or_else(|| anyhow!("a scalar has no rows"))?;
    if heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        bail!("{rows} rows cannot be split into {heads} heads of an even size");
    }
    let half = rows / heads / 2;
    let t = match dims.as_slice() {
        [_] => t.reshape((heads, half, 2))?.transpose(1, 2)?,
        [_, cols] => t.reshape((heads, half, 2, *cols))?.transpose(1, 2)?,
        _ => bail!("expected a matrix or a vector, got shape {dims:?}"),
    };
    Ok(t.contiguous()?.reshape(dims)?)
}

fn supported_list() -> String {
    ARCHITECTURES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Typed access to GGUF metadata, with errors naming the file and the key.
pub(crate) struct Metadata<'a> {
    pub map: &'a HashMap<String, Value>,
    pub source: &'a Path,
}

impl Metadata<'_> {
    fn missing(&self, key: &str) -> anyhow::Error {
        anyhow!("{}: metadata {key} is missing", self.source.display())
    }

    fn wrong(&self, key: &str, what: &str, value: &Value) -> anyhow::Error {
        anyhow!(
            "{}: metadata {key} is not {what} (found {:?})",
            self.source.display(),
            value.value_type()
        )
    }

    pub fn optional_usize(&self, key: &str) -> Result<Option<usize>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let n = match v {
            Value::U8(x) => Some(u64::from(*x)),
            Value::U16(x) => Some(u64::from(*x)),
            Value::U32(x) => Some(u64::from(*x)),
            Value::U64(x) => Some(*x),
            Value::I8(x) => u64::try_from(*x).ok(),
            Value::I16(x) => u64::try_from(*x).ok(),
            Value::I32(x) => u64::try_from(*x).ok(),
            Value::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| self.wrong(key, "a non-negative integer", v))
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        self.optional_usize(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn optional_f64(&self, key: &str) -> Result<Option<f64>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        match v {
            Value::F32(x) => Ok(Some(f64::from(*x))),
            Value::F64(x) => Ok(Some(*x)),
            _ => Err(self.wrong(key, "a number", v)),
        }
    }

    pub fn f64(&self, key: &str) -> Result<f64> {
        self.optional_f64(key)?.ok_or_else(|| self.missing(key))
    }

    pub fn optional_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.wrong(key, "a boolean", v)),
        }
    }

    pub fn optional_string(&self, key: &str) -> Result<Option<&str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    pub fn string(&self, key: &str) -> Result<&str> {
        self.optional_string(key)?.ok_or_else(|| self.missing(key))
    }

    /// A list of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>> {
        let v = self.map.get(key).ok_or_else(|| self.missing(key))?;
        let Value::Array(items) = v else {
            return Err(self.wrong(key, "a list", v));
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.as_str()),
                other => Err(self.wrong(key, "a list of strings", other)),
            })
            .collect()
    }

    /// A list of integers (token types).
    pub fn optional_ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(v) = self.map.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(self.wrong(key, "a list", v));
        };
        items
            .iter()
            .map(|item| match item {
                Value::I32(x) => Ok(i64::from(*x)),
                Value::U32(x) => Ok(i64::from(*x)),
                Value::I8(x) => Ok(i64::from(*x)),
                Value::U8(x) => Ok(i64::from(*x)),
                Value::I16(x) => Ok(i64::from(*x)),
                Value::U16(x) => Ok(i64::from(*x)),
                Value::I64(x) => Ok(*x),
                other => Err(self.wrong(key, "a list of integers", other)),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}
