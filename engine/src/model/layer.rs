//! One decoder layer, the same skeleton for every architecture: RMSNorm → fused q|k|v →
//! rotary → attention → output projection → residual → RMSNorm → fused gate|up → SwiGLU →
//! down projection → residual, with the LoRA hook at each of its four input sites.
//! Architectures differ only in tensor names, how q|k|v and gate|up are stored (fused or
//! not) and the rotary pairing, all settled when the weights are loaded.

use super::cache::KvCache;
use super::linear::Linear;
use super::rope::Rotary;
use super::{attention, InputSite, LoraHook, ModelConfig, ModelWeights};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};

pub(crate) struct Layer {
    pub(crate) attention_norm: Tensor,
    /// Output columns: q (heads·head_dim), k (kv_heads·head_dim), v (kv_heads·head_dim).
    pub(crate) qkv: Linear,
    pub(crate) output: Linear,
    pub(crate) mlp_norm: Tensor,
    /// Output columns: gate (intermediate), up (intermediate).
    pub(crate) gate_up: Linear,
    pub(crate) down: Linear,
}

/// The module names read at each input site of a layer, in the order of the fused columns.
pub(crate) struct SiteModules {
    pub(crate) qkv: &'static [&'static str],
    pub(crate) output: &'static [&'static str],
    pub(crate) gate_up: &'static [&'static str],
    pub(crate) down: &'static [&'static str],
}

/// One input site: its modules and the width of each module's output.
struct Site {
    modules: &'static [&'static str],
    widths: Vec<usize>,
}

impl Site {
    fn new(config: &ModelConfig, modules: &'static [&'static str]) -> Result<Self> {
        let projections = config.projections();
        let widths = modules
            .iter()
            .map(|m| {
                projections
                    .iter()
                    .find(|(name, _, _)| name == m)
                    .map(|&(_, _, d_out)| d_out)
                    .with_context(|| format!("no projection {m} in the configuration"))
            })
            .collect::<Result<_>>()?;
        Ok(Self { modules, widths })
    }
}

/// What every layer shares: the shapes, the rotary tables and the hook sites.
pub(crate) struct Shared {
    pub(crate) config: ModelConfig,
    pub(crate) rotary: Rotary,
    sites: [Site; 4],
}

impl Shared {
    pub(crate) fn new(config: ModelConfig, rotary: Rotary, modules: &SiteModules) -> Result<Self> {
        let sites = [
            Site::new(&config, modules.qkv)?,
            Site::new(&config, modules.output)?,
            Site::new(&config, modules.gate_up)?,
            Site::new(&config, modules.down)?,
        ];
        Ok(Self {
            config,
            rotary,
            sites,
        })
    }
}

/// The rows of one forward call that extend one sequence: `rows` new positions after
/// that sequence's cached ones, with their [`attention::causal_mask`].
pub(crate) struct Segment {
    pub(crate) rows: usize,
    pub(crate) mask: Option<Tensor>,
}

impl Layer {
    /// Runs layer `index` on `x`, `[rows, hidden]`: `segments[s]` names the next rows,
    /// the positions `caches[s].len()..` of sequence s, whose keys and values this layer
    /// writes to `caches[s]`. Projections and the hook see every row at once; attention
    /// and the rotary positions are per sequence.
    pub(crate) fn forward(
        &self,
        index: usize,
        x: &Tensor,
        segments: &[Segment],
        caches: &mut [KvCache],
        hook: &mut dyn LoraHook,
        shared: &Shared,
    ) -> Result<Tensor> {
        let c = &shared.config;
        let [qkv_site, output_site, gate_up_site, down_site] = &shared.sites;
        let eps = c.rms_eps as f32;

        let h = candle_nn::ops::rms_norm(x, &self.attention_norm, eps)?;
        stage(hook, index, qkv_site, &h)?;
        let qkv = self.qkv.forward(&h)?;
        let qkv = add_deltas(hook, index, qkv_site, &h, qkv)?;
        let mut attended = Vec::with_capacity(segments.len());
        let mut first = 0;
        for (segment, cache) in segments.iter().zip(caches.iter_mut()) {
            let qkv = qkv.narrow(0, first, segment.rows)?;
            attended.push(attend(index, &qkv, segment, cache, shared)?);
            first += segment.rows;
        }
        let attended = if attended.len() == 1 {
            attended.swap_remove(0)
        } else {
            Tensor::cat(&attended, 0)?
        };
        stage(hook, index, output_site, &attended)?;
        let out = self.output.forward(&attended)?;
        let out = add_deltas(hook, index, output_site, &attended, out)?;
        let x = (x + out)?;

        let h = candle_nn::ops::rms_norm(&x, &self.mlp_norm, eps)?;
        stage(hook, index, gate_up_site, &h)?;
        let gate_up = self.gate_up.forward(&h)?;
        let gate_up = add_deltas(hook, index, gate_up_site, &h, gate_up)?;
        let f = c.intermediate_size;
        let act = (candle_nn::ops::silu(&gate_up.narrow(1, 0, f)?)? * gate_up.narrow(1, f, f)?)?;
        stage(hook, index, down_site, &act)?;
        let out = self.down.forward(&act)?;
        let out = add_deltas(hook, index, down_site, &act, out)?;
        Ok((x + out)?)
    }
}

/// Attention of one sequence's new rows of q|k|v, `[n, (heads + 2·kv_heads)·head_dim]`,
/// over its cache (which receives their keys and values): `[n, heads · head_dim]`.
fn attend(
    layer: usize,
    qkv: &Tensor,
    segment: &Segment,
    cache: &mut KvCache,
    shared: &Shared,
) -> Result<Tensor> {
    let c = &shared.config;
    let n = segment.rows;
    let heads = |offset: usize, count: usize| -> Result<Tensor> {
        let part = qkv.narrow(1, offset * c.head_dim, count * c.head_dim)?;
        Ok(part
            .reshape((n, count, c.head_dim))?
            .transpose(0, 1)?
            .contiguous()?)
    };
    let start = cache.len();
    let q = shared.rotary.apply(&heads(0, c.num_heads)?, start)?;
    let k = shared
        .rotary
        .apply(&heads(c.num_heads, c.num_kv_heads)?, start)?;
    let v = heads(c.num_heads + c.num_kv_heads, c.num_kv_heads)?;
    let (keys, values) = cache.append(layer, &k, &v)?;
    attention::attend(&q, &keys, &values, segment.mask.as_ref())
}

/// Hands `site`'s input to `hook` before its projections are queued (see
/// [`LoraHook::stage`]).
fn stage(hook: &mut dyn LoraHook, layer: usize, site: &Site, x: &Tensor) -> Result<()> {
    let input = InputSite {
        layer,
        modules: site.modules,
    };
    if hook.wants(input) {
        hook.stage(input, x)
            .with_context(|| format!("LoRA input for layer {layer} {:?}", site.modules))?;
    }
    Ok(())
}

/// Asks `hook` for the deltas of `site` on input `x` and adds them to `y`, whose columns
/// are the site's module outputs side by side.
fn add_deltas(
    hook: &mut dyn LoraHook,
    layer: usize,
    site: &Site,
    x: &Tensor,
    y: Tensor,
) -> Result<Tensor> {
    let input = InputSite {
        layer,
        modules: site.modules,
    };
    if !hook.wants(input) {
        return Ok(y);
    }
    let deltas = hook
        .deltas(input, x)
        .with_context(|| format!("LoRA deltas for layer {layer} {:?}", site.modules))?;
    if deltas.len() != site.modules.len() {
        bail!(
            "the LoRA hook returned {} deltas for layer {layer} {:?}, expected {}",
            deltas.len(),
            site.modules,
            site.modules.len()
        );
    }
    if deltas.iter().all(Option::is_none) {
        return Ok(y);
    }
    let n = x.dim(0)?;
    let mut parts = Vec::with_capacity(deltas.len());
    for ((delta, module), &width) in deltas.into_iter().zip(site.modules).zip(&site.widths) {
        match delta {
            Some(d) => {
                if d.dims() != [n, width] || d.dtype() != DType::F32 {
                    bail!(
                        "the LoRA delta for layer {layer} {module} is {:?} {:?}, expected \
                         [{n}, {width}] F32",
                        d.dims(),
                        d.dtype()
                    );
                }
                parts.push(d);
            }
            None => parts.push(Tensor::zeros((n, width), DType::F32, y.device())?),
        }
    }
    let delta = if parts.len() == 1 {
        parts.swap_remove(0)
    } else {
        Tensor::cat(&parts, 1)?
    };
    Ok((y + delta)?)
}

/// The tensor `name`, checked to have `shape`, as f32, taken out of `weights` so the
/// fused copies never coexist with all the originals (peak memory stays near one model).
pub(crate) fn take(weights: &mut ModelWeights, name: &str, shape: &[usize]) -> Result<Tensor> {
    take_as(weights, name, shape, DType::F32)
}

/// As [`take`] for a matrix (a projection or the embedding): bf16 stays bf16 (the GPU
/// bench's random model, half the memory and bandwidth; [`Linear`] computes in it),
/// anything else becomes f32.
pub(crate) fn take_matrix(
    weights: &mut ModelWeights,
    name: &str,
    shape: &[usize],
) -> Result<Tensor> {
    let stored = weights.get(name, shape)?.dtype();
    let dtype = if stored == DType::BF16 {
        DType::BF16
    } else {
        DType::F32
    };
    take_as(weights, name, shape, dtype)
}

fn take_as(
    weights: &mut ModelWeights,
    name: &str,
    shape: &[usize],
    dtype: DType,
) -> Result<Tensor> {
    let tensor = weights.get(name, shape)?.to_dtype(dtype)?;
    weights.tensors.remove(name);
    Ok(tensor)
}

/// Several projections' weights (and, with `bias`, their biases) stacked into one, in
/// order, so one matrix product serves them all.
pub(crate) fn fused(
    weights: &mut ModelWeights,
    parts: &[(&str, usize)],
    d_in: usize,
    bias: bool,
) -> Result<Linear> {
    let mut matrices = Vec::with_capacity(parts.len());
    let mut biases = Vec::with_capacity(parts.len());
    for &(name, d_out) in parts {
        matrices.push(take_matrix(
            weights,
            &format!("{name}.weight"),
            &[d_out, d_in],
        )?);
        let bias_name = format!("{name}.bias");
        if bias {
            biases.push(take(weights, &bias_name, &[d_out])?);
        } else if weights.tensors.contains_key(&bias_name) {
            bail!(
                "the model has a tensor {bias_name}, but the configuration says {name} has no bias"
            );
        }
    }
    let weight = Tensor::cat(&matrices, 0)?;
    let bias = if bias {
        Some(Tensor::cat(&biases, 0)?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}
