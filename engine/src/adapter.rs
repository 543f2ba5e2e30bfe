//! LoRA adapters in PEFT format: `adapter_config.json` + `adapter_model.safetensors`.
//!
//! For every adapted projection W (d_out × d_in, applied as y = x·Wᵀ) PEFT stores
//! `lora_A` (r × d_in) and `lora_B` (d_out × r), and the adapted output is
//! y + scaling · x·Aᵀ·Bᵀ with scaling = lora_alpha / r (or / √r with rsLoRA). helora keeps
//! the factors in the orientation of the HE plan: a = Aᵀ (d_in × r) and b = scaling·Bᵀ
//! (r × d_out), so that delta = x·a·b.
//!
//! Base weights are held in Hugging Face layout whatever the model file (GGUF q/k rows are
//! un-permuted on load), so an HF-trained adapter's rows need no permutation here.

use crate::model::ModelConfig;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Largest |lora_alpha| accepted: PEFT's are in the tens to hundreds, and far beyond this
/// the scaled deltas overflow f32 activations into NaN.
pub const MAX_LORA_ALPHA: f64 = 1e6;

/// One adapted projection's factors, delta = x·a·b.
pub struct LoraFactors {
    /// Aᵀ: d_in × r, f32.
    pub a: Tensor,
    /// scaling·Bᵀ: r × d_out, f32.
    pub b: Tensor,
}

impl LoraFactors {
    pub fn rank(&self) -> usize {
        self.a.dims()[1]
    }

    /// Row-major f64 copies for the HE plan: (a as d_in × r, b as r × d_out).
    pub fn to_matrices(&self) -> Result<(helora::linear::Matrix, helora::linear::Matrix)> {
        let matrix = |t: &Tensor| -> Result<helora::linear::Matrix> {
            let (rows, cols) = t.dims2()?;
            let data: Vec<f64> = t
                .to_dtype(DType::F64)?
                .flatten_all()?
                .to_vec1()
                .context("copying LoRA factors")?;
            Ok(helora::linear::Matrix::new(rows, cols, data)?)
        };
        Ok((matrix(&self.a)?, matrix(&self.b)?))
    }
}

/// The first entry of a matrix that is NaN or infinite: (row, column, value).
fn first_non_finite(t: &Tensor) -> Result<Option<(usize, usize, f32)>> {
    let (_, cols) = t.dims2()?;
    let values: Vec<f32> = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    Ok(values
        .iter()
        .position(|v| !v.is_finite())
        .map(|k| (k / cols, k % cols, values[k])))
}

/// A loaded adapter: factors by (layer, PEFT module name).
pub struct LoraAdapter {
    pub source: PathBuf,
    pub rank: usize,
    pub alpha: f64,
    pub scaling: f64,
    pub target_modules: Vec<String>,
    pub layers: BTreeMap<(usize, String), LoraFactors>,
}

/// The fields of `adapter_config.json` helora reads.
#[derive(serde::Deserialize)]
struct AdapterConfig {
    peft_type: Option<String>,
    r: usize,
    lora_alpha: f64,
    target_modules: TargetModules,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    rank_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    alpha_pattern: HashMap<String, serde_json::Value>,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
}

/// PEFT writes target_modules as a list, or a regular expression string.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum TargetModules {
    List(Vec<String>),
    Pattern(String),
}

impl LoraAdapter {
    /// Loads the PEFT adapter in directory `dir` and checks it against `model`.
    pub fn load(dir: &Path, model: &ModelConfig) -> Result<Self> {
        Self::load_for(dir, Some(model))
    }

    /// Loads the PEFT adapter in `dir` without a base model (a server holds only adapters):
    /// each projection's shape is read off its factors, PEFT's layout (lora_A `[r, d_in]`,
    /// lora_B `[d_out, r]`, both transposed under `fan_in_fan_out`).
    pub fn load_standalone(dir: &Path) -> Result<Self> {
        Self::load_for(dir, None)
    }

    fn load_for(dir: &Path, model: Option<&ModelConfig>) -> Result<Self> {
        let config_path = dir.join("adapter_config.json");
        let weights_path = dir.join("adapter_model.safetensors");
        if !dir.is_dir() {
            crate::files::regular_file(dir)?;
            bail!(
                "adapter {} is a file: expected a PEFT adapter directory (with \
                 adapter_config.json and adapter_model.safetensors)",
                dir.display()
            );
        }
        for path in [&config_path, &weights_path] {
            if path.exists() {
                crate::files::regular_file(path)?;
            }
        }
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading the adapter config {}", config_path.display()))?;
        let config: AdapterConfig = serde_json::from_str(&text)
            .with_context(|| format!("parsing the adapter config {}", config_path.display()))?;
        let invalid = |why: String| anyhow!("adapter config {}: {why}", config_path.display());
        if let Some(kind) = &config.peft_type {
            if kind != "LORA" {
                return Err(invalid(format!(
                    "peft_type is {kind}; only LORA is supported"
                )));
            }
        }
        if config.r == 0 || config.r > helora::linear::MAX_RANK {
            return Err(invalid(format!(
                "rank r = {} is outside 1 … {}",
                config.r,
                helora::linear::MAX_RANK
            )));
        }
        if !(config.lora_alpha.is_finite() && config.lora_alpha.abs() <= MAX_LORA_ALPHA) {
            return Err(invalid(format!(
                "lora_alpha {:e} is not a finite number of magnitude at most {MAX_LORA_ALPHA:e}",
                config.lora_alpha
            )));
        }
        if config.use_dora {
            return Err(invalid("DoRA adapters (use_dora) are not supported".into()));
        }
        if !config.rank_pattern.is_empty() || !config.alpha_pattern.is_empty() {
            return Err(invalid(
                "per-module rank_pattern / alpha_pattern are not supported".into(),
            ));
        }
        if config
            .modules_to_save
            .as_ref()
            .is_some_and(|m| !m.is_empty())
        {
            return Err(invalid(
                "modules_to_save (fully fine-tuned modules) are not supported: they would be \
                 public base weights"
                    .into(),
            ));
        }
        if config.bias.as_deref().is_some_and(|b| b != "none") {
            return Err(invalid(format!(
                "bias = {:?} is not supported (only \"none\")",
                config.bias.as_deref().unwrap_or_default()
            )));
        }
        let target_modules = match config.target_modules {
            TargetModules::List(list) => list,
            TargetModules::Pattern(p) => {
                return Err(invalid(format!(
                    "target_modules is the pattern {p:?}; list the modules instead"
                )))
            }
        };
        if target_modules.is_empty() {
            return Err(invalid("target_modules is empty".into()));
        }
        if let Some(model) = model {
            let known: Vec<&str> = model.projections().iter().map(|p| p.0).collect();
            if let Some(m) = target_modules.iter().find(|m| !known.contains(&m.as_str())) {
                return Err(invalid(format!(
                    "target module {m:?} is not a projection of this {:?} model (it has {})",
                    model.arch,
                    known.join(", ")
                )));
            }
        }
        let scaling = if config.use_rslora {
            config.lora_alpha / (config.r as f64).sqrt()
        } else {
            config.lora_alpha / config.r as f64
        };

        let tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .with_context(|| format!("reading the adapter weights {}", weights_path.display()))?;
        let bad = |why: String| anyhow!("adapter weights {}: {why}", weights_path.display());
        let mut pairs: BTreeMap<(usize, String), [Option<Tensor>; 2]> = BTreeMap::new();
        for (name, tensor) in tensors {
            let (layer, module, which) =
                parse_key(&name).ok_or_else(|| bad(format!("unexpected tensor {name}")))?;
            if let Some(model) = model.filter(|m| layer >= m.num_layers) {
                return Err(bad(format!(
                    "tensor {name} is for layer {layer}, the model has {}",
                    model.num_layers
                )));
            }
            if !target_modules.iter().any(|m| m == &module) {
                return Err(bad(format!(
                    "tensor {name} adapts {module}, which is not in target_modules"
                )));
            }
            let slot = &mut pairs.entry((layer, module)).or_default()[which];
            if slot.is_some() {
                return Err(bad(format!("tensor {name} appears twice")));
            }
            *slot = Some(tensor.to_dtype(DType::F32)?);
        }
        if pairs.is_empty() {
            return Err(bad("no lora_A / lora_B tensors".into()));
        }

        let mut layers = BTreeMap::new();
        for ((layer, module), [a, b]) in pairs {
            let what = format!("layer {layer} {module}");
            let (a, b) = match (a, b) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err(bad(format!("{what} lacks lora_A or lora_B"))),
            };
            let (d_in, d_out) = match model {
                Some(model) => model
                    .projections()
                    .iter()
                    .find(|p| p.0 == module)
                    .map(|p| (p.1, p.2))
                    .ok_or_else(|| bad(format!("{what}: unknown module")))?,
                None => shapes_from_factors(&a, &b, config.r, config.fan_in_fan_out)
                    .map_err(|e| bad(format!("{what}: {e}")))?,
            };
            let a = orient(&a, config.r, d_in, config.fan_in_fan_out)
                .map_err(|e| bad(format!("{what} lora_A: {e}")))?;
            let b = orient(&b, d_out, config.r, config.fan_in_fan_out)
                .map_err(|e| bad(format!("{what} lora_B: {e}")))?;
            for (name, t) in [("lora_A", &a), ("lora_B", &b)] {
                if let Some((i, j, v)) = first_non_finite(t)? {
                    return Err(bad(format!("{what} {name}: entry ({i}, {j}) is {v}")));
                }
            }
            let factors = LoraFactors {
                a: a.t()?.contiguous()?,
                b: (b.t()? * scaling)?.contiguous()?,
            };
            if let Some((i, j, v)) = first_non_finite(&factors.b)? {
                return Err(bad(format!(
                    "{what} lora_B: entry ({j}, {i}) times the scaling {scaling:e} is {v} in f32"
                )));
            }
            layers.insert((layer, module), factors);
        }
        Ok(Self {
            source: dir.to_path_buf(),
            rank: config.r,
            alpha: config.lora_alpha,
            scaling,
            target_modules,
            layers,
        })
    }

    /// Random factors shaped like a freshly trained adapter (see
    /// [`helora::linear::random_lora_factors`]) on `targets` of every layer: for benchmarks.
    pub fn random(
        config: &ModelConfig,
        targets: &[String],
        rank: usize,
        rng: &mut impl rand_core::RngCore,
    ) -> Result<Self> {
        if rank == 0 || rank > helora::linear::MAX_RANK {
            bail!("rank {rank} is outside 1 … {}", helora::linear::MAX_RANK);
        }
        let projections = config.projections();
        let mut layers = BTreeMap::new();
        for (i, module) in targets.iter().enumerate() {
            if targets[..i].contains(module) {
                bail!("target {module:?} is named twice");
            }
            let &(_, d_in, d_out) =
                projections.iter().find(|p| p.0 == module).ok_or_else(|| {
                    let names: Vec<&str> = projections.iter().map(|p| p.0).collect();
                    anyhow!(
                        "{module:?} is not a projection of this model (its projections: {})",
                        names.join(", ")
                    )
                })?;
            for layer in 0..config.num_layers {
                let (a, b) = helora::linear::random_lora_factors(d_in, d_out, rank, rng)?;
                let tensor = |m: &helora::linear::Matrix| -> Result<Tensor> {
                    let data: Vec<f32> = (0..m.rows())
                        .flat_map(|i| (0..m.cols()).map(move |j| (i, j)))
                        .map(|(i, j)| m.get(i, j) as f32)
                        .collect();
                    Ok(Tensor::from_vec(data, (m.rows(), m.cols()), &Device::Cpu)?)
                };
                let factors = LoraFactors {
                    a: tensor(&a)?,
                    b: tensor(&b)?,
                };
                layers.insert((layer, module.clone()), factors);
            }
        }
        Ok(Self {
            source: PathBuf::from("(random)"),
            rank,
            alpha: rank as f64,
            scaling: 1.0,
            target_modules: targets.to_vec(),
            layers,
        })
    }

    pub fn get(&self, layer: usize, module: &str) -> Option<&LoraFactors> {
        self.layers.get(&(layer, module.to_string()))
    }

    /// Number of adapted projections (per token, that many LoRA applications).
    pub fn projection_count(&self) -> usize {
        self.layers.len()
    }
}

/// Checks `t` is rows × cols as PEFT stores it; with `fan_in_fan_out` a transposed copy
/// is accepted too (PEFT keeps nn.Linear layout for these models and resets the flag, but
/// hand-made files may not).
fn orient(t: &Tensor, rows: usize, cols: usize, fan_in_fan_out: bool) -> Result<Tensor> {
    let dims = t.dims();
    if dims == [rows, cols] {
        return Ok(t.clone());
    }
    if fan_in_fan_out && dims == [cols, rows] {
        return Ok(t.t()?.contiguous()?);
    }
    bail!("shape {dims:?}, expected [{rows}, {cols}] for this model and rank")
}

/// (d_in, d_out) of a projection read off its PEFT factors of rank `r`.
fn shapes_from_factors(
    a: &Tensor,
    b: &Tensor,
    r: usize,
    fan_in_fan_out: bool,
) -> Result<(usize, usize)> {
    let (a, b) = (a.dims(), b.dims());
    let (d_in, d_out) = match (a, b, fan_in_fan_out) {
        ([ra, d_in], [d_out, rb], false) if *ra == r && *rb == r => (*d_in, *d_out),
        ([d_in, ra], [rb, d_out], true) if *ra == r && *rb == r => (*d_in, *d_out),
        _ => bail!("lora_A {a:?} and lora_B {b:?} are not factors of rank {r}"),
    };
    if d_in == 0 || d_out == 0 {
        bail!("lora_A {a:?} and lora_B {b:?} have an empty dimension");
    }
    Ok((d_in, d_out))
}

/// `…layers.{L}.{…}.{module}.lora_{A|B}[.adapter].weight` → (L, module, 0 for A / 1 for B).
fn parse_key(name: &str) -> Option<(usize, String, usize)> {
    let parts: Vec<&str> = name.split('.').collect();
    let lora = parts
        .iter()
        .position(|p| *p == "lora_A" || *p == "lora_B")?;
    let which = usize::from(parts[lora] == "lora_B");
    if parts.last() != Some(&"weight") || lora == 0 || lora + 3 < parts.len() {
        return None;
    }
    let module = parts[lora - 1].to_string();
    let at = parts[..lora].iter().position(|p| *p == "layers")?;
    let layer = parts.get(at + 1)?.parse().ok()?;
    Some((layer, module, which))
}

#[cfg(test)]
mod tests {
    use super::parse_key;

    #[test]
    fn peft_keys_parse() {
        assert_eq!(
            parse_key("base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"),
            Some((3, "q_proj".into(), 0))
        );
        assert_eq!(
            parse_key(
                "base_model.model.transformer.encoder.layers.27.self_attention.query_key_value.lora_B.default.weight"
            ),
            Some((27, "query_key_value".into(), 1))
        );
        assert_eq!(parse_key("base_model.model.lm_head.weight"), None);
        assert_eq!(parse_key("model.layers.x.q_proj.lora_A.weight"), None);
    }
}
