//! A model with a preset's exact shapes and seeded random weights made in place (no
//! download), for `bench token`: projections and embeddings uniform with standard
//! deviation 1/√fan_in (so every projection keeps activations near unit scale and the
//! logits stay finite), unit RMS-norm weights, zero biases. Before anything is allocated,
//! [`check_memory`] compares the f32 footprint with the memory available (on a GPU,
//! [`check_gpu_memory`] the bf16 footprint with the GPU's free memory).

use crate::model::{Architecture, Model, ModelConfig, ModelWeights};
use crate::progress::Progress;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use half::bf16;
use helora::math::sampling;
use rand_core::RngCore;
use std::collections::HashMap;

/// How a tensor is filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    /// Uniform, standard deviation 1/√fan_in (fan_in: the last dimension).
    Scaled,
    Ones,
    Zeros,
}

/// Every tensor the forward pass reads for `config`, with its shape and filling.
fn tensor_shapes(c: &ModelConfig) -> Vec<(String, Vec<usize>, Fill)> {
    let (v, h) = (c.vocab_size, c.hidden_size);
    let (embedding, norm, head, prefix, attn) = match c.arch {
        Architecture::Llama => (
            "model.embed_tokens.weight",
            "model.norm.weight",
            "lm_head.weight",
            "model.layers",
            "self_attn",
        ),
        Architecture::ChatGlm2 => (
            "transformer.embedding.word_embeddings.weight",
            "transformer.encoder.final_layernorm.weight",
            "transformer.output_layer.weight",
            "transformer.encoder.layers",
            "self_attention",
        ),
    };
    let mut out = vec![
        (embedding.to_string(), vec![v, h], Fill::Scaled),
        (norm.to_string(), vec![h], Fill::Ones),
    ];
    if !c.tie_embeddings {
        out.push((head.to_string(), vec![v, h], Fill::Scaled));
    }
    for layer in 0..c.num_layers {
        let p = format!("{prefix}.{layer}");
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            out.push((format!("{p}.{norm}.weight"), vec![h], Fill::Ones));
        }
        for (module, d_in, d_out) in c.projections() {
            let attention = matches!(
                module,
                "q_proj" | "k_proj" | "v_proj" | "o_proj" | "query_key_value" | "dense"
            );
            let block = if attention { attn } else { "mlp" };
            let name = format!("{p}.{block}.{module}");
            out.push((format!("{name}.weight"), vec![d_out, d_in], Fill::Scaled));
            let biased = matches!(module, "q_proj" | "k_proj" | "v_proj" | "query_key_value");
            if biased && c.qkv_bias {
                out.push((format!("{name}.bias"), vec![d_out], Fill::Zeros));
            }
        }
    }
    out
}

/// Parameters of the model (tied embeddings counted once).
pub fn parameter_count(config: &ModelConfig) -> u64 {
    tensor_shapes(config)
        .iter()
        .map(|(_, shape, _)| shape.iter().product::<usize>() as u64)
        .sum()
}

/// Bytes the run needs: f32 weights, plus a key/value cache of `positions` positions for
/// each of `sequences` sequences (allocated by doubling from 256, so rounded up the same
/// way), plus the largest fused projection, which exists twice while [`Model::new`]
/// concatenates it.
pub fn memory_needed(config: &ModelConfig, positions: usize, sequences: usize) -> u64 {
    footprint(config, positions, sequences, 4)
}

/// As [`memory_needed`] with `weight_bytes` per parameter (the cache stays f32).
fn footprint(config: &ModelConfig, positions: usize, sequences: usize, weight_bytes: u64) -> u64 {
    let weights = weight_bytes * parameter_count(config);
    let capacity = positions
        .max(256)
        .next_power_of_two()
        .min(config.max_positions);
    let kv = 4 * 2 * config.num_layers * config.kv_dim() * capacity * sequences;
    let largest = config
        .projections()
        .iter()
        .map(|p| p.1 * p.2)
        .max()
        .unwrap_or(0);
    weights + kv as u64 + weight_bytes * 2 * largest as u64
}

/// `MemAvailable` of /proc/meminfo in bytes; `None` where it cannot be read.
pub fn memory_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_available_from(&info)
}

fn mem_available_from(info: &str) -> Option<u64> {
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The preset with the fewest parameters: what the memory refusal suggests instead.
fn smallest_preset() -> Option<&'static str> {
    crate::model::presets::PRESETS
        .iter()
        .filter_map(|&name| {
            Some((
                name,
                parameter_count(&crate::model::presets::preset(name).ok()?),
            ))
        })
        .min_by_key(|&(_, count)| count)
        .map(|(name, _)| name)
}

/// What the key/value memory is, for the refusals.
fn caches(sequences: usize) -> String {
    match sequences {
        1 => "the key/value cache".into(),
        n => format!("the key/value caches of {n} sequences"),
    }
}

/// Bytes in GiB, as the memory refusals print them.
pub(super) fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

/// Fails with the need and the available amount when the model would not fit, rather than
/// letting the allocation be killed half-way. `available` is `None` where unknown (the
/// run then goes on).
pub fn check_memory(
    preset: &str,
    config: &ModelConfig,
    positions: usize,
    sequences: usize,
    available: Option<u64>,
) -> Result<()> {
    let need = memory_needed(config, positions, sequences);
    match available {
        Some(available) if need > available => bail!(
            "the {preset} base model needs about {:.1} GiB in f32 ({:.2} billion parameters \
             plus {}), but only {:.1} GiB of memory is available: run the HE path alone with \
             --he-only{}{}",
            gib(need),
            parameter_count(config) as f64 / 1e9,
            caches(sequences),
            gib(available),
            match smallest_preset() {
                Some(smallest) if smallest != preset => {
                    format!(", or pick a smaller preset ({smallest})")
                }
                _ => String::new(),
            },
            if sequences > 1 {
                ", or a smaller --batch"
            } else {
                ""
            }
        ),
        _ => Ok(()),
    }
}

/// As [`check_memory`] for the model on a GPU: bf16 weights against the GPU's free memory
/// (`None` where unknown: the run goes on).
pub fn check_gpu_memory(
    preset: &str,
    config: &ModelConfig,
    positions: usize,
    sequences: usize,
    free: Option<u64>,
) -> Result<()> {
    let need = footprint(config, positions, sequences, 2);
    match free {
        Some(free) if need > free => bail!(
            "the {preset} base model needs about {:.1} GiB of GPU memory in bf16 ({:.2} \
             billion parameters plus {}), but only {:.1} GiB is free on the GPU: pick a smaller \
             preset (smollm2-135m){}",
            gib(need),
            parameter_count(config) as f64 / 1e9,
            caches(sequences),
            gib(free),
            if sequences > 1 {
                " or a smaller --batch"
            } else {
                ""
            }
        ),
        _ => Ok(()),
    }
}

/// Builds the model on `device`, every tensor from a generator seeded with `seed`: f32 on
/// the CPU; on a GPU the matrices in bf16 (what a GPU deployment runs), each made on the
/// host and uploaded before the next, so the host holds one tensor at a time. The same
/// seed gives the same values on both, up to bf16 rounding.
pub fn build(config: &ModelConfig, seed: u64, device: &Device) -> Result<Model> {
    let matrices = if device.is_cpu() {
        DType::F32
    } else {
        DType::BF16
    };
    build_with(config, seed, device, matrices)
}

/// As [`build`] with the matrices in `matrices` (f32 or bf16).
fn build_with(config: &ModelConfig, seed: u64, device: &Device, matrices: DType) -> Result<Model> {
    let shapes = tensor_shapes(config);
    let progress = Progress::start(
        &format!(
            "generating {:.0} M random weights",
            parameter_count(config) as f64 / 1e6
        ),
        shapes.len() as u64,
    );
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut rng = sampling::seeded_rng(seed_bytes);
    let mut tensors = HashMap::with_capacity(shapes.len());
    for (name, shape, fill) in shapes {
        let count: usize = shape.iter().product();
        let tensor = match fill {
            Fill::Ones => Tensor::from_vec(vec![1f32; count], shape, device)?,
            Fill::Zeros => Tensor::from_vec(vec![0f32; count], shape, device)?,
            Fill::Scaled => {
                let fan_in = *shape.last().unwrap_or(&1);
                // Uniform on ±√3·σ has standard deviation σ; two draws per 64-bit word.
                let half_width = (3.0 / fan_in as f64).sqrt() as f32;
                match matrices {
                    DType::BF16 => {
                        let values = uniform_as(&mut rng, count, half_width, bf16::from_f32);
                        Tensor::from_vec(values, shape, device)?
                    }
                    DType::F32 => {
                        Tensor::from_vec(uniform(&mut rng, count, half_width), shape, device)?
                    }
                    other => bail!("random matrices in {other:?}: only f32 and bf16"),
                }
            }
        };
        tensors.insert(name, tensor);
        progress.advance();
    }
    progress.finish();
    Model::new(ModelWeights {
        config: config.clone(),
        tensors,
        device: device.clone(),
    })
}

/// `count` values uniform in [−half_width, half_width).
fn uniform(rng: &mut impl RngCore, count: usize, half_width: f32) -> Vec<f32> {
    uniform_as(rng, count, half_width, |v| v)
}

/// As [`uniform`], each value stored through `convert` (bf16 for a GPU: no f32 copy of the
/// tensor is ever held).
fn uniform_as<T>(
    rng: &mut impl RngCore,
    count: usize,
    half_width: f32,
    convert: impl Fn(f32) -> T,
) -> Vec<T> {
    let scale = 2.0 * half_width / (1u64 << 32) as f32;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let word = rng.next_u64();
        for part in [word as u32, (word >> 32) as u32] {
            if out.len() < count {
                out.push(convert(part as f32 * scale - half_width));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::names::expected_tensors;
    use crate::model::presets::{preset, PRESETS};

    #[test]
    fn shapes_name_every_expected_tensor() {
        for name in PRESETS {
            let c = preset(name).unwrap();
            let mut ours: Vec<String> = tensor_shapes(&c).into_iter().map(|t| t.0).collect();
            let mut want = expected_tensors(&c);
            ours.sort();
            want.sort();
            assert_eq!(ours, want, "{name}");
        }
    }

    #[test]
    fn parameter_counts_match_the_published_sizes() {
        let billions = |name| parameter_count(&preset(name).unwrap()) as f64 / 1e9;
        assert!((billions("smollm2-135m") - 0.135).abs() < 0.01);
        assert!((billions("chatglm2-6b") - 6.24).abs() < 0.1);
        assert!((billions("llama2-7b") - 6.74).abs() < 0.1);
        assert!((billions("llama3-8b") - 8.03).abs() < 0.1);
    }

    #[test]
    fn gpu_memory_check_counts_bf16() {
        let c = preset("chatglm2-6b").unwrap();
        // 6.24 B parameters in bf16 and the largest projection twice: about 12.1 GiB.
        check_gpu_memory("chatglm2-6b", &c, 24, 1, Some(13 << 30)).unwrap();
        assert!(check_gpu_memory("chatglm2-6b", &c, 24, 1, Some(12 << 30)).is_err());
        let err = check_gpu_memory("chatglm2-6b", &c, 24, 1, Some(8 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("GPU memory in bf16") && err.contains("8.0 GiB"),
            "{err}"
        );
        check_gpu_memory("chatglm2-6b", &c, 24, 1, None).unwrap();
    }

    #[test]
    fn memory_check_names_need_and_availability() {
        let c = preset("chatglm2-6b").unwrap();
        let err = check_memory("chatglm2-6b", &c, 24, 1, Some(16 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--he-only")
                && err.contains("16.0 GiB")
                && err.contains("needs about 24."),
            "{err}"
        );
        check_memory("chatglm2-6b", &c, 24, 1, None).unwrap();
        let small = preset("smollm2-135m").unwrap();
        check_memory("smollm2-135m", &small, 24, 1, Some(2 << 30)).unwrap();
        let err = check_memory("chatglm2-6b", &c, 24, 64, Some(16 << 30))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("caches of 64 sequences") && err.contains("--batch"),
            "{err}"
        );
        // Each sequence of a batch has its own cache: 256 positions of 28 layers' keys and
        // values (2 groups × 128) in f32.
        let cache = 4 * 2 * 28 * 256 * 256;
        assert_eq!(
            memory_needed(&c, 24, 64) - memory_needed(&c, 24, 1),
            63 * cache
        );
    }

    #[test]
    fn bf16_matrices_give_the_f32_model_up_to_rounding() -> Result<()> {
        // What a GPU build makes, here on the CPU: the same seed, the matrices in bf16,
        // activations in f32 (Linear casts around each product).
        let mut c = preset("smollm2-135m")?;
        c.num_layers = 2;
        let f32_model = build_with(&c, 5, &Device::Cpu, DType::F32)?;
        let bf16_model = build_with(&c, 5, &Device::Cpu, DType::BF16)?;
        assert_eq!(f32_model.weight_dtype(), DType::F32);
        assert_eq!(bf16_model.weight_dtype(), DType::BF16);
        let prompt = [1, 500, 9000, 42];
        let logits = |m: &Model| -> Result<Vec<f32>> {
            let mut cache = m.new_cache();
            let mut hook = crate::model::NoHook;
            m.forward(&prompt, &mut cache, &mut hook)?;
            Ok(m.forward(&[7], &mut cache, &mut hook)?.to_vec1()?)
        };
        let (want, got) = (logits(&f32_model)?, logits(&bf16_model)?);
        let diff: f64 = want
            .iter()
            .zip(&got)
            .map(|(w, g)| ((w - g) as f64).powi(2))
            .sum();
        let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
        let err = (diff / norm).sqrt();
        // bf16 keeps 8 bits of mantissa: about 0.4 % per weight, averaged over each sum.
        assert!(err > 0.0 && err < 2e-2, "relative error {err}");
        Ok(())
    }

    #[test]
    fn meminfo_parses() {
        let info = "MemTotal:       24000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(mem_available_from(info), Some(20_000_000 * 1024));
        assert_eq!(mem_available_from("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn uniform_has_the_asked_spread() {
        let mut rng = sampling::seeded_rng([3; 32]);
        let v = uniform(&mut rng, 100_001, 3f32.sqrt());
        assert_eq!(v.len(), 100_001);
        let var = v.iter().map(|x| (x * x) as f64).sum::<f64>() / v.len() as f64;
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }
}
