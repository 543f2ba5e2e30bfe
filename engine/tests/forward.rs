//! The forward pass on tiny random models of both architectures: decoding with the cache
//! agrees with one pass over the whole sequence, a hook's delta acts exactly like the same
//! change to the projection's weight, bad weights and inputs are errors; and the sampler.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use helora::math::sampling::{seeded_rng, standard_normal, ChaCha20Rng};
use helora_engine::model::{
    Architecture, InputSite, LoraHook, Model, ModelConfig, ModelWeights, NoHook, Sampler,
};
use std::collections::HashMap;

const TOKENS: [u32; 12] = [3, 17, 42, 0, 63, 8, 8, 25, 51, 9, 30, 2];

fn config(arch: Architecture) -> ModelConfig {
    match arch {
        Architecture::Llama => ModelConfig {
            arch,
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 48,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            rotary_dim: 8,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            max_positions: 32,
            tie_embeddings: true,
            qkv_bias: true,
        },
        Architecture::ChatGlm2 => ModelConfig {
            arch,
            vocab_size: 64,
            hidden_size: 32,
            intermediate_size: 40,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 8,
            rotary_dim: 4,
            rope_theta: 10000.0,
            rms_eps: 1e-5,
            max_positions: 32,
            tie_embeddings: false,
            qkv_bias: true,
        },
    }
}

/// Llama without biases, untied, multi-query (one key/value head).
fn plain_llama() -> ModelConfig {
    ModelConfig {
        num_kv_heads: 1,
        tie_embeddings: false,
        qkv_bias: false,
        ..config(Architecture::Llama)
    }
}

/// The Hugging Face name of `module`'s weight in `layer`.
fn weight_name(arch: Architecture, layer: usize, module: &str) -> String {
    match (arch, module) {
        (Architecture::Llama, "q_proj" | "k_proj" | "v_proj" | "o_proj") => {
            format!("model.layers.{layer}.self_attn.{module}.weight")
        }
        (Architecture::Llama, _) => format!("model.layers.{layer}.mlp.{module}.weight"),
        (Architecture::ChatGlm2, "query_key_value" | "dense") => {
            format!("transformer.encoder.layers.{layer}.self_attention.{module}.weight")
        }
        (Architecture::ChatGlm2, _) => {
            format!("transformer.encoder.layers.{layer}.mlp.{module}.weight")
        }
    }
}

/// Every tensor the configuration implies, with its shape; norms are flagged.
fn shapes(c: &ModelConfig) -> Vec<(String, Vec<usize>, bool)> {
    let (v, h) = (c.vocab_size, c.hidden_size);
    let mut out = Vec::new();
    let (embedding, norm, head) = match c.arch {
        Architecture::Llama => (
            "model.embed_tokens.weight",
            "model.norm.weight",
            "lm_head.weight",
        ),
        Architecture::ChatGlm2 => (
            "transformer.embedding.word_embeddings.weight",
            "transformer.encoder.final_layernorm.weight",
            "transformer.output_layer.weight",
        ),
    };
    out.push((embedding.to_string(), vec![v, h], false));
    out.push((norm.to_string(), vec![h], true));
    if !c.tie_embeddings {
        out.push((head.to_string(), vec![v, h], false));
    }
    for layer in 0..c.num_layers {
        let prefix = match c.arch {
            Architecture::Llama => format!("model.layers.{layer}"),
            Architecture::ChatGlm2 => format!("transformer.encoder.layers.{layer}"),
        };
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            out.push((format!("{prefix}.{norm}.weight"), vec![h], true));
        }
        for (module, d_in, d_out) in c.projections() {
            let name = weight_name(c.arch, layer, module);
            out.push((name.clone(), vec![d_out, d_in], false));
            let biased = matches!(module, "q_proj" | "k_proj" | "v_proj" | "query_key_value");
            if biased && c.qkv_bias {
                out.push((name.replace(".weight", ".bias"), vec![d_out], false));
            }
        }
    }
    out
}

fn random(rng: &mut ChaCha20Rng, shape: &[usize], mean: f64, std: f64) -> Tensor {
    let count = shape.iter().product();
    let values: Vec<f32> = (0..count)
        .map(|_| (mean + std * standard_normal(rng)) as f32)
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

fn random_tensors(c: &ModelConfig, seed: u8) -> HashMap<String, Tensor> {
    let mut rng = seeded_rng([seed; 32]);
    shapes(c)
        .into_iter()
        .map(|(name, shape, norm)| {
            let t = if norm {
                random(&mut rng, &shape, 1.0, 0.1)
            } else {
                let fan_in = if shape.len() == 2 { shape[1] } else { 1 };
                random(&mut rng, &shape, 0.0, 1.0 / (fan_in as f64).sqrt())
            };
            (name, t)
        })
        .collect()
}

fn weights(config: &ModelConfig, tensors: HashMap<String, Tensor>) -> ModelWeights {
    ModelWeights {
        config: config.clone(),
        tensors,
        device: Device::Cpu,
    }
}

fn model(config: &ModelConfig) -> Model {
    Model::new(weights(config, random_tensors(config, 7))).expect("a valid tiny model")
}

/// max |a − b| / max |b|.
fn relative_error(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let scale = b.abs().unwrap().max_all().unwrap();
    diff.to_scalar::<f32>().unwrap() / scale.to_scalar::<f32>().unwrap()
}

fn full_logits(model: &Model, hook: &mut dyn LoraHook) -> Tensor {
    let mut cache = model.new_cache();
    let logits = model.forward_all(&TOKENS, &mut cache, hook).unwrap();
    assert_eq!(logits.dims(), [TOKENS.len(), model.config().vocab_size]);
    assert_eq!(logits.dtype(), DType::F32);
    assert_eq!(cache.len(), TOKENS.len());
    logits
}

fn check_incremental(config: &ModelConfig) {
    let model = model(config);
    let full = full_logits(&model, &mut NoHook);
    // A prompt of 5, a chunk of 3 after it (masked against the cache), then one at a time.
    let mut cache = model.new_cache();
    let mut at = 0;
    for chunk in [5, 3, 1, 1, 1, 1] {
        let last = model
            .forward(&TOKENS[at..at + chunk], &mut cache, &mut NoHook)
            .unwrap();
        at += chunk;
        assert_eq!(cache.len(), at);
        let expected = full.get(at - 1).unwrap();
        let err = relative_error(&last, &expected);
        assert!(
            err < 1e-4,
            "{:?} after {at} tokens: relative error {err}",
            config.arch
        );
    }
    assert_eq!(at, TOKENS.len());
}

#[test]
fn decoding_with_the_cache_matches_one_full_pass() {
    check_incremental(&config(Architecture::Llama));
    check_incremental(&plain_llama());
    check_incremental(&config(Architecture::ChatGlm2));
}

#[test]
fn forward_all_rows_match_forward_at_each_length() {
    for arch in [Architecture::Llama, Architecture::ChatGlm2] {
        let model = model(&config(arch));
        let full = full_logits(&model, &mut NoHook);
        for n in [1, 4, TOKENS.len()] {
            let mut cache = model.new_cache();
            let last = model
                .forward(&TOKENS[..n], &mut cache, &mut NoHook)
                .unwrap();
            assert!(relative_error(&last, &full.get(n - 1).unwrap()) < 1e-5);
        }
    }
}

/// Three sequences with prompts of different lengths, prefilled in one batch and then
/// decoded one token each per batched step, against each sequence run on its own; with a
/// rank-1 hook on layer 1's first projection, so each row's delta must reach its own
/// sequence.
fn check_batch(config: &ModelConfig) {
    let model = model(config);
    let (_, d_in, d_out) = config.projections()[0];
    let mut rng = seeded_rng([9; 32]);
    let mut hook = RankOne {
        layer: 1,
        module: config.projections()[0].0,
        a: random(&mut rng, &[d_in, 1], 0.0, 0.5),
        b: random(&mut rng, &[1, d_out], 0.0, 0.5),
        calls: 0,
    };
    let prompts: [&[u32]; 3] = [&TOKENS[..5], &TOKENS[2..3], &TOKENS[4..11]];
    let decoded: [[u32; 3]; 3] = [[7, 1, 60], [2, 2, 9], [33, 0, 5]];

    let mut want = Vec::new();
    for (prompt, next) in prompts.iter().zip(&decoded) {
        let mut cache = model.new_cache();
        let mut rows = vec![model.forward(prompt, &mut cache, &mut hook).unwrap()];
        for &t in next {
            rows.push(model.forward(&[t], &mut cache, &mut hook).unwrap());
        }
        want.push(rows);
    }

    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
    hook.calls = 0;
    let prefill = model
        .forward_batch(&prompts, &mut caches, &mut hook)
        .unwrap();
    assert_eq!(hook.calls, 1, "one hook call for the whole batch");
    let mut got = vec![prefill];
    for step in 0..3 {
        let tokens: Vec<[u32; 1]> = decoded.iter().map(|d| [d[step]]).collect();
        let tokens: Vec<&[u32]> = tokens.iter().map(|t| t.as_slice()).collect();
        got.push(
            model
                .forward_batch(&tokens, &mut caches, &mut hook)
                .unwrap(),
        );
    }
    for (s, cache) in caches.iter().enumerate() {
        assert_eq!(cache.len(), prompts[s].len() + 3);
    }
    for (step, logits) in got.iter().enumerate() {
        assert_eq!(logits.dims(), [3, config.vocab_size]);
        for (s, rows) in want.iter().enumerate() {
            let err = relative_error(&logits.get(s).unwrap(), &rows[step]);
            assert!(
                err < 1e-5,
                "{:?} sequence {s} step {step}: relative error {err}",
                config.arch
            );
        }
    }
}

#[test]
fn a_batch_of_sequences_matches_each_sequence_alone() {
    check_batch(&config(Architecture::Llama));
    check_batch(&plain_llama());
    check_batch(&config(Architecture::ChatGlm2));
}

#[test]
fn bad_batches_are_errors_and_leave_the_caches_alone() {
    let c = config(Architecture::Llama);
    let model = model(&c);
    let mut caches = vec![model.new_cache(), model.new_cache()];
    let err = |r: Result<Tensor>| error_text(r);
    let e = err(model.forward_batch(&[&[1]], &mut caches, &mut NoHook));
    assert!(e.contains("1 sequences of tokens for 2 caches"), "{e}");
    let e = err(model.forward_batch(&[&[1], &[]], &mut caches, &mut NoHook));
    assert!(e.contains("no tokens"), "{e}");
    let e = err(model.forward_batch(&[], &mut [], &mut NoHook));
    assert!(e.contains("no tokens"), "{e}");
    // One sequence too long: nothing is written to either cache.
    model
        .forward(&[1; 30], &mut caches[1], &mut NoHook)
        .unwrap();
    let e = err(model.forward_batch(&[&[1, 2], &[3, 4, 5]], &mut caches, &mut NoHook));
    assert!(e.contains("33 positions"), "{e}");
    assert_eq!((caches[0].len(), caches[1].len()), (0, 30));
    let e = err(model.forward_batch(&[&[1], &[64]], &mut caches, &mut NoHook));
    assert!(e.contains("token id 64"), "{e}");
    assert_eq!((caches[0].len(), caches[1].len()), (0, 30));
}

#[test]
fn a_cleared_cache_starts_over() {
    let model = model(&config(Architecture::ChatGlm2));
    let mut cache = model.new_cache();
    let first = model.forward(&TOKENS, &mut cache, &mut NoHook).unwrap();
    cache.clear();
    assert!(cache.is_empty());
    let again = model.forward(&TOKENS, &mut cache, &mut NoHook).unwrap();
    assert_eq!(relative_error(&again, &first), 0.0);
}

/// A naive f64 forward pass written from the architectures' definitions, one position
/// at a time, sharing no code with the engine: logits at every position.
fn reference_logits(
    c: &ModelConfig,
    tensors: &HashMap<String, Tensor>,
    tokens: &[u32],
) -> Vec<Vec<f64>> {
    let get = |name: &str| -> Vec<f64> {
        let t = &tensors[name];
        let flat = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        flat.into_iter().map(f64::from).collect()
    };
    // y = W·x for W stored [d_out, d_in].
    let matvec = |w: &[f64], x: &[f64]| -> Vec<f64> {
        w.chunks(x.len())
            .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    };
    let rms = |x: &[f64], w: &[f64]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
        let r = 1.0 / (ms + c.rms_eps).sqrt();
        x.iter().zip(w).map(|(v, g)| v * r * g).collect()
    };
    let silu = |v: f64| v / (1.0 + (-v).exp());
    let add = |a: &mut Vec<f64>, b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
    // Rotates one head in place at position `pos`.
    let rotate = |head: &mut [f64], pos: usize| {
        let d = c.rotary_dim;
        for i in 0..d / 2 {
            let angle = pos as f64 * c.rope_theta.powf(-((2 * i) as f64) / d as f64);
            let (a, b) = match c.arch {
                Architecture::Llama => (i, i + d / 2),
                Architecture::ChatGlm2 => (2 * i, 2 * i + 1),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * angle.cos() - x1 * angle.sin();
            head[b] = x1 * angle.cos() + x0 * angle.sin();
        }
    };
    let (hd, f) = (c.head_dim, c.intermediate_size);
    let group = c.num_heads / c.num_kv_heads;
    let mut xs: Vec<Vec<f64>> = {
        let (emb_name, _) = match c.arch {
            Architecture::Llama => ("model.embed_tokens.weight", ()),
            Architecture::ChatGlm2 => ("transformer.embedding.word_embeddings.weight", ()),
        };
        let emb = get(emb_name);
        tokens
            .iter()
            .map(|&t| emb[t as usize * c.hidden_size..(t as usize + 1) * c.hidden_size].to_vec())
            .collect()
    };
    for layer in 0..c.num_layers {
        let (prefix, attn, mlp) = match c.arch {
            Architecture::Llama => {
                let p = format!("model.layers.{layer}");
                (p.clone(), format!("{p}.self_attn"), format!("{p}.mlp"))
            }
            Architecture::ChatGlm2 => {
                let p = format!("transformer.encoder.layers.{layer}");
                (p.clone(), format!("{p}.self_attention"), format!("{p}.mlp"))
            }
        };
        let (mut qs, mut ks, mut vs) = (Vec::new(), Vec::new(), Vec::new());
        for (pos, x) in xs.iter().enumerate() {
            let h = rms(x, &get(&format!("{prefix}.input_layernorm.weight")));
            let linear = |name: &str| {
                let mut y = matvec(&get(&format!("{attn}.{name}.weight")), &h);
                if c.qkv_bias {
                    add(&mut y, &get(&format!("{attn}.{name}.bias")));
                }
                y
            };
            let (mut q, mut k, v) = match c.arch {
                Architecture::Llama => (linear("q_proj"), linear("k_proj"), linear("v_proj")),
                Architecture::ChatGlm2 => {
                    let all = linear("query_key_value");
                    let (q, rest) = all.split_at(c.q_dim());
                    let (k, v) = rest.split_at(c.kv_dim());
                    (q.to_vec(), k.to_vec(), v.to_vec())
                }
            };
            q.chunks_mut(hd).for_each(|head| rotate(head, pos));
            k.chunks_mut(hd).for_each(|head| rotate(head, pos));
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        let (o_name, up_name, down_name) = match c.arch {
            Architecture::Llama => ("o_proj", "", "down_proj"),
            Architecture::ChatGlm2 => ("dense", "dense_h_to_4h", "dense_4h_to_h"),
        };
        for (pos, x) in xs.iter_mut().enumerate() {
            let mut attended = Vec::new();
            for head in 0..c.num_heads {
                let kv = head / group;
                let q = &qs[pos][head * hd..(head + 1) * hd];
                let scores: Vec<f64> = (0..=pos)
                    .map(|j| {
                        let k = &ks[j][kv * hd..(kv + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..hd {
                    attended.push(
                        (0..=pos)
                            .map(|j| e[j] / z * vs[j][kv * hd + d])
                            .sum::<f64>(),
                    );
                }
            }
            add(
                x,
                &matvec(&get(&format!("{attn}.{o_name}.weight")), &attended),
            );
            let h = rms(
                x,
                &get(&format!("{prefix}.post_attention_layernorm.weight")),
            );
            let (gate, up) = match c.arch {
                Architecture::Llama => (
                    matvec(&get(&format!("{mlp}.gate_proj.weight")), &h),
                    matvec(&get(&format!("{mlp}.up_proj.weight")), &h),
                ),
                Architecture::ChatGlm2 => {
                    let both = matvec(&get(&format!("{mlp}.{up_name}.weight")), &h);
                    (both[..f].to_vec(), both[f..].to_vec())
                }
            };
            let act: Vec<f64> = gate.iter().zip(&up).map(|(g, u)| silu(*g) * u).collect();
            add(x, &matvec(&get(&format!("{mlp}.{down_name}.weight")), &act));
        }
    }
    let (norm, head) = match c.arch {
        Architecture::Llama if c.tie_embeddings => {
            ("model.norm.weight", "model.embed_tokens.weight")
        }
        Architecture::Llama => ("model.norm.weight", "lm_head.weight"),
        Architecture::ChatGlm2 => (
            "transformer.encoder.final_layernorm.weight",
            "transformer.output_layer.weight",
        ),
    };
    let (norm, head) = (get(norm), get(head));
    xs.iter().map(|x| matvec(&head, &rms(x, &norm))).collect()
}

#[test]
fn the_forward_pass_matches_a_naive_reference() {
    for c in [
        config(Architecture::Llama),
        plain_llama(),
        config(Architecture::ChatGlm2),
    ] {
        let tensors = random_tensors(&c, 9);
        let want = reference_logits(&c, &tensors, &TOKENS);
        let want: Vec<f32> = want.into_iter().flatten().map(|v| v as f32).collect();
        let want = Tensor::from_vec(want, (TOKENS.len(), c.vocab_size), &Device::Cpu).unwrap();
        let model = Model::new(weights(&c, tensors)).unwrap();
        let got = full_logits(&model, &mut NoHook);
        let err = relative_error(&got, &want);
        assert!(err < 1e-4, "{:?}: relative error {err}", c.arch);
    }
}

/// A tiny model generated by scripts/reference/make_reference.py, with the configuration
/// written out by hand from its reference.json (the config.json parser lives elsewhere).
fn reference_model(dir: &str) -> (Model, serde_json::Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir);
    let json = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let reference: serde_json::Value = serde_json::from_str(&json).unwrap();
    let c = &reference["config"];
    let int = |key: &str| c[key].as_u64().unwrap_or_else(|| panic!("{key}")) as usize;
    let float = |key: &str| c[key].as_f64().unwrap_or_else(|| panic!("{key}"));
    let flag = |key: &str| c[key].as_bool().unwrap_or(false);
    let config = if reference["architecture"]
        .as_str()
        .unwrap()
        .contains("ChatGLM2")
    {
        ModelConfig {
            arch: Architecture::ChatGlm2,
            vocab_size: int("vocab_size"),
            hidden_size: int("hidden_size"),
            intermediate_size: int("ffn_hidden_size"),
            num_layers: int("num_layers"),
            num_heads: int("num_attention_heads"),
            num_kv_heads: int("multi_query_group_num"),
            head_dim: int("head_dim"),
            rotary_dim: int("rotary_dim"),
            rope_theta: float("rope_base") * float("rope_ratio"),
            rms_eps: float("layernorm_epsilon"),
            // config.json's seq_length.
            max_positions: 128,
            tie_embeddings: flag("tie_word_embeddings"),
            qkv_bias: flag("qkv_bias"),
        }
    } else {
        ModelConfig {
            arch: Architecture::Llama,
            vocab_size: int("vocab_size"),
            hidden_size: int("hidden_size"),
            intermediate_size: int("intermediate_size"),
            num_layers: int("num_hidden_layers"),
            num_heads: int("num_attention_heads"),
            num_kv_heads: int("num_key_value_heads"),
            head_dim: int("head_dim"),
            rotary_dim: int("head_dim"),
            rope_theta: float("rope_theta"),
            rms_eps: float("rms_norm_eps"),
            max_positions: int("max_position_embeddings"),
            tie_embeddings: flag("tie_word_embeddings"),
            qkv_bias: flag("qkv_bias"),
        }
    };
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    (Model::new(weights(&config, tensors)).unwrap(), reference)
}

/// forward_all over each reference sequence, and decoding it one token at a time, give
/// Hugging Face's logits at every position within 1e-3 of their largest magnitude.
fn check_reference(dir: &str) {
    let (model, reference) = reference_model(dir);
    let sequences = reference["sequences"].as_array().unwrap();
    assert!(!sequences.is_empty());
    for sequence in sequences {
        let tokens: Vec<u32> = sequence["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap() as u32)
            .collect();
        let rows: Vec<f32> = sequence["logits"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
            })
            .collect();
        let vocab = model.config().vocab_size;
        let want = Tensor::from_vec(rows, (tokens.len(), vocab), &Device::Cpu).unwrap();

        let got = model
            .forward_all(&tokens, &mut model.new_cache(), &mut NoHook)
            .unwrap();
        let err = relative_error(&got, &want);
        assert!(
            err < 1e-3,
            "{dir}, {} tokens: relative error {err}",
            tokens.len()
        );

        let mut cache = model.new_cache();
        for (p, &token) in tokens.iter().enumerate() {
            let last = model.forward(&[token], &mut cache, &mut NoHook).unwrap();
            let err = relative_error(&last, &want.get(p).unwrap());
            assert!(
                err < 1e-3,
                "{dir}, decoding position {p}: relative error {err}"
            );
        }
    }
}

#[test]
fn tiny_llama_matches_transformers() {
    check_reference("tiny-llama");
}

#[test]
fn tiny_qwen2_matches_transformers() {
    check_reference("tiny-qwen2");
}

#[test]
fn tiny_chatglm2_matches_the_reference() {
    check_reference("tiny-chatglm2");
}

/// Adds (x·a)·b to one module's output: the LoRA delta of a rank-1 adapter.
struct RankOne {
    layer: usize,
    module: &'static str,
    /// `[d_in, 1]`.
    a: Tensor,
    /// `[1, d_out]`.
    b: Tensor,
    calls: usize,
}

impl LoraHook for RankOne {
    fn wants(&self, site: InputSite) -> bool {
        site.layer == self.layer && site.modules.contains(&self.module)
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        self.calls += 1;
        site.modules
            .iter()
            .map(|&m| {
                Ok(if m == self.module {
                    Some(x.matmul(&self.a)?.matmul(&self.b)?)
                } else {
                    None
                })
            })
            .collect()
    }
}

fn check_delta_equals_weight_change(config: &ModelConfig, layer: usize, module: &'static str) {
    let (_, d_in, d_out) = config
        .projections()
        .into_iter()
        .find(|(name, _, _)| *name == module)
        .unwrap();
    let mut rng = seeded_rng([module.len() as u8; 32]);
    let a = random(&mut rng, &[d_in, 1], 0.0, 0.5);
    let b = random(&mut rng, &[1, d_out], 0.0, 0.5);
    let base = model(config);
    let mut hook = RankOne {
        layer,
        module,
        a: a.clone(),
        b: b.clone(),
        calls: 0,
    };
    let hooked = full_logits(&base, &mut hook);
    assert_eq!(hook.calls, 1, "{module}: one call per forward pass");

    // The same change in the weights: W + bᵀ·aᵀ, so x·(W + bᵀaᵀ)ᵀ = x·Wᵀ + (x·a)·b.
    let mut tensors = random_tensors(config, 7);
    let name = weight_name(config.arch, layer, module);
    let update = b.t().unwrap().matmul(&a.t().unwrap()).unwrap();
    let changed = (&tensors[&name] + update).unwrap();
    tensors.insert(name, changed);
    let merged = full_logits(&Model::new(weights(config, tensors)).unwrap(), &mut NoHook);

    let err = relative_error(&hooked, &merged);
    assert!(
        err < 1e-4,
        "{:?} {module}: relative error {err}",
        config.arch
    );
    let plain = full_logits(&base, &mut NoHook);
    let moved = relative_error(&hooked, &plain);
    assert!(
        moved > 1e-3,
        "{:?} {module}: the delta changed nothing ({moved})",
        config.arch
    );
}

#[test]
fn a_hook_delta_acts_like_the_same_weight_change() {
    let llama = config(Architecture::Llama);
    for module in [
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    ] {
        check_delta_equals_weight_change(&llama, 1, module);
    }
    check_delta_equals_weight_change(&plain_llama(), 0, "k_proj");
    let glm = config(Architecture::ChatGlm2);
    for module in ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"] {
        check_delta_equals_weight_change(&glm, 0, module);
    }
}

/// Wants every site and records what it was shown; counts the `deltas` calls that did not
/// follow a `stage` of the same site and input.
struct Recorder {
    seen: Vec<(usize, &'static [&'static str], Vec<usize>)>,
    staged: Option<(InputSite, Tensor)>,
    unstaged: usize,
}

impl Recorder {
    fn new() -> Self {
        Self {
            seen: Vec::new(),
            staged: None,
            unstaged: 0,
        }
    }
}

impl LoraHook for Recorder {
    fn wants(&self, _site: InputSite) -> bool {
        true
    }

    fn stage(&mut self, site: InputSite, x: &Tensor) -> Result<()> {
        self.staged = Some((site, x.clone()));
        Ok(())
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let same_input = match self.staged.take() {
            Some((staged, input)) if staged == site => {
                input.dims() == x.dims()
                    && (&input - x)?
                        .abs()?
                        .flatten_all()?
                        .max(0)?
                        .to_scalar::<f32>()?
                        == 0.0
            }
            _ => false,
        };
        if !same_input {
            self.unstaged += 1;
        }
        self.seen
            .push((site.layer, site.modules, x.dims().to_vec()));
        Ok(vec![None; site.modules.len()])
    }
}

#[test]
fn the_hook_sees_every_site_with_its_input() {
    for arch in [Architecture::Llama, Architecture::ChatGlm2] {
        let c = config(arch);
        let model = model(&c);
        let mut recorder = Recorder::new();
        let hooked = full_logits(&model, &mut recorder);
        assert_eq!(
            relative_error(&hooked, &full_logits(&model, &mut NoHook)),
            0.0
        );
        let sites: [&[&str]; 4] = match arch {
            Architecture::Llama => [
                helora_engine::model::llama::QKV,
                helora_engine::model::llama::OUTPUT,
                helora_engine::model::llama::GATE_UP,
                helora_engine::model::llama::DOWN,
            ],
            Architecture::ChatGlm2 => [
                helora_engine::model::chatglm::QKV,
                helora_engine::model::chatglm::OUTPUT,
                helora_engine::model::chatglm::GATE_UP,
                helora_engine::model::chatglm::DOWN,
            ],
        };
        let projections = c.projections();
        let mut expected = Vec::new();
        for layer in 0..c.num_layers {
            for modules in sites {
                let d_in = projections.iter().find(|p| p.0 == modules[0]).unwrap().1;
                // Every module of a site reads the same input.
                for m in modules {
                    assert_eq!(projections.iter().find(|p| p.0 == *m).unwrap().1, d_in);
                }
                expected.push((layer, modules, vec![TOKENS.len(), d_in]));
            }
        }
        assert_eq!(recorder.seen, expected, "{arch:?}");
        // Each site's input reached the hook through `stage` first (the secure hook copies
        // it to the host there, before the base projection is queued).
        assert_eq!(recorder.unstaged, 0, "{arch:?}");
    }
}

/// Returns whatever it was built with at every site.
struct Fixed(fn(usize, &Tensor) -> Vec<Option<Tensor>>);

impl LoraHook for Fixed {
    fn wants(&self, _site: InputSite) -> bool {
        true
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok((self.0)(site.modules.len(), x))
    }
}

fn error_text(result: Result<Tensor>) -> String {
    format!("{:#}", result.expect_err("an error"))
}

#[test]
fn bad_deltas_are_errors() {
    let model = model(&config(Architecture::Llama));
    let mut cache = model.new_cache();
    let mut too_few = Fixed(|_, _| vec![None]);
    let e = error_text(model.forward(&TOKENS, &mut cache, &mut too_few));
    assert!(e.contains("returned 1 deltas"), "{e}");
    let mut wrong_shape = Fixed(|count, x| {
        let n = x.dim(0).unwrap();
        vec![Some(Tensor::zeros((n, 3), DType::F32, &Device::Cpu).unwrap()); count]
    });
    let e = error_text(model.forward(&TOKENS, &mut cache, &mut wrong_shape));
    assert!(e.contains("q_proj") && e.contains("[12, 32]"), "{e}");
    // A failed pass leaves the cache as it was, even after some layers wrote to it.
    assert!(cache.is_empty());
    let mut fresh = model.new_cache();
    model
        .forward(&TOKENS[..4], &mut fresh, &mut NoHook)
        .unwrap();
    model
        .forward(&TOKENS[..4], &mut cache, &mut NoHook)
        .unwrap();
    let mut late = Fixed(|count, _| vec![None; count + usize::from(count == 1)]);
    let e = error_text(model.forward(&TOKENS[4..], &mut cache, &mut late));
    assert!(e.contains("o_proj"), "{e}");
    assert_eq!(cache.len(), 4);
    let want = model
        .forward(&TOKENS[4..], &mut fresh, &mut NoHook)
        .unwrap();
    let got = model
        .forward(&TOKENS[4..], &mut cache, &mut NoHook)
        .unwrap();
    assert_eq!(relative_error(&got, &want), 0.0);
}

fn model_error(config: &ModelConfig, tensors: HashMap<String, Tensor>) -> String {
    match Model::new(weights(config, tensors)) {
        Ok(_) => panic!("the model was accepted"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_weights_are_errors_naming_the_tensor() {
    for arch in [Architecture::Llama, Architecture::ChatGlm2] {
        let c = config(arch);
        for (name, shape, _) in shapes(&c) {
            let mut missing = random_tensors(&c, 7);
            missing.remove(&name);
            let e = model_error(&c, missing);
            assert!(e.contains(&name) && e.contains("no tensor"), "{e}");

            let mut wrong = random_tensors(&c, 7);
            let mut bad_shape = shape.clone();
            bad_shape[0] += 1;
            wrong.insert(
                name.clone(),
                Tensor::zeros(bad_shape, DType::F32, &Device::Cpu).unwrap(),
            );
            let e = model_error(&c, wrong);
            assert!(e.contains(&name) && e.contains("shape"), "{e}");
        }
    }
    // A bias the configuration does not announce would be silently dropped: refuse it.
    let c = plain_llama();
    let mut tensors = random_tensors(&c, 7);
    let bias = "model.layers.1.self_attn.v_proj.bias";
    tensors.insert(
        bias.into(),
        Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap(),
    );
    let e = model_error(&c, tensors);
    assert!(e.contains(bias), "{e}");
    // And a configuration that does not hold together.
    let c = ModelConfig {
        num_kv_heads: 3,
        ..config(Architecture::Llama)
    };
    let e = model_error(&c, random_tensors(&config(Architecture::Llama), 7));
    assert!(e.contains("key/value heads"), "{e}");
}

#[test]
fn bad_tokens_are_errors() {
    let c = config(Architecture::ChatGlm2);
    let model = model(&c);
    let mut cache = model.new_cache();
    let e = error_text(model.forward(&[], &mut cache, &mut NoHook));
    assert!(e.contains("no tokens"), "{e}");
    let e = error_text(model.forward(&[1, 64, 2], &mut cache, &mut NoHook));
    assert!(e.contains("token id 64"), "{e}");
    let e = error_text(model.forward_all(&[u32::MAX], &mut cache, &mut NoHook));
    assert!(e.contains("outside the vocabulary"), "{e}");
    assert!(cache.is_empty());

    let too_long = vec![1u32; c.max_positions + 1];
    let e = error_text(model.forward(&too_long, &mut cache, &mut NoHook));
    assert!(e.contains("33 positions"), "{e}");
    model
        .forward(&too_long[..c.max_positions], &mut cache, &mut NoHook)
        .unwrap();
    let e = error_text(model.forward(&[1], &mut cache, &mut NoHook));
    assert!(e.contains("33 positions"), "{e}");

    let other = self::model(&config(Architecture::Llama));
    let mut foreign = other.new_cache();
    other.forward(&[1], &mut foreign, &mut NoHook).unwrap();
    let plain = self::model(&plain_llama());
    let e = error_text(plain.forward(&[1], &mut foreign, &mut NoHook));
    assert!(e.contains("another shape"), "{e}");
}

fn logits(values: &[f32]) -> Tensor {
    Tensor::new(values, &Device::Cpu).unwrap()
}

#[test]
fn greedy_takes_the_first_maximum() {
    let mut greedy = Sampler::greedy();
    assert_eq!(greedy.sample(&logits(&[0.1, 3.0, -1.0, 3.0])).unwrap(), 1);
    assert_eq!(greedy.sample(&logits(&[-5.0, -7.0])).unwrap(), 0);
    assert_eq!(greedy.sample(&logits(&[2.0])).unwrap(), 0);
}

#[test]
fn a_tiny_nucleus_is_greedy() {
    let mut rng = seeded_rng([3; 32]);
    let mut sampler = Sampler::top_p(1e-9, 0.7, 11).unwrap();
    for _ in 0..50 {
        let t = random(&mut rng, &[100], 0.0, 2.0);
        assert_eq!(
            sampler.sample(&t).unwrap(),
            Sampler::greedy().sample(&t).unwrap()
        );
    }
    assert_eq!(sampler.sample(&logits(&[1.0, 4.0, 4.0])).unwrap(), 1);
}

#[test]
fn a_seed_replays_its_draws() {
    let t = logits(&[0.0, 0.5, 1.0, 0.2, -0.3]);
    let draws = |seed| {
        let mut s = Sampler::top_p(0.95, 1.3, seed).unwrap();
        (0..200).map(|_| s.sample(&t).unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(draws(5), draws(5));
    assert_ne!(draws(5), draws(6));
}

/// Frequencies of each token over `n` draws.
fn frequencies(sampler: &mut Sampler, t: &Tensor, n: usize) -> Vec<f64> {
    let mut counts = vec![0usize; t.dim(0).unwrap()];
    for _ in 0..n {
        counts[sampler.sample(t).unwrap() as usize] += 1;
    }
    counts.into_iter().map(|c| c as f64 / n as f64).collect()
}

#[test]
fn top_p_draws_follow_the_nucleus_distribution() {
    // 20 000 draws: a frequency's standard deviation is at most 0.0036, the tolerance ~4σ.
    const DRAWS: usize = 20_000;
    const TOLERANCE: f64 = 0.015;
    let t = logits(&[0.5f32.ln(), 0.3f32.ln(), 0.2f32.ln()]);
    let close = |got: &[f64], want: &[f64]| {
        let ok = got.iter().zip(want).all(|(g, w)| (g - w).abs() < TOLERANCE);
        assert!(ok, "frequencies {got:?}, expected {want:?}");
    };

    let mut all = Sampler::top_p(1.0, 1.0, 1).unwrap();
    close(&frequencies(&mut all, &t, DRAWS), &[0.5, 0.3, 0.2]);

    // 0.5 < 0.75 ≤ 0.5 + 0.3: the nucleus is the first two, renormalised.
    let mut two = Sampler::top_p(0.75, 1.0, 2).unwrap();
    let f = frequencies(&mut two, &t, DRAWS);
    assert_eq!(f[2], 0.0);
    close(&f, &[0.625, 0.375, 0.0]);

    // Temperature 2 takes square roots of the probabilities before normalising.
    let mut warm = Sampler::top_p(1.0, 2.0, 3).unwrap();
    let roots = [0.5f64.sqrt(), 0.3f64.sqrt(), 0.2f64.sqrt()];
    let sum: f64 = roots.iter().sum();
    close(&frequencies(&mut warm, &t, DRAWS), &roots.map(|r| r / sum));
}

#[test]
fn bad_sampler_arguments_are_errors() {
    for top_p in [0.0, -0.1, 1.5, f64::NAN] {
        assert!(Sampler::top_p(top_p, 1.0, 0).is_err(), "top_p {top_p}");
    }
    for temperature in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        assert!(
            Sampler::top_p(0.9, temperature, 0).is_err(),
            "temperature {temperature}"
        );
    }
    let mut sampler = Sampler::top_p(0.9, 1.0, 0).unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = sampler.sample(&logits(&[0.0, bad])).unwrap_err();
        assert!(format!("{e:#}").contains("logit 1"), "{e:#}");
        assert!(Sampler::greedy().sample(&logits(&[bad, 0.0])).is_err());
    }
    assert!(sampler.sample(&logits(&[])).is_err());
    let matrix = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(sampler.sample(&matrix).is_err());
}
