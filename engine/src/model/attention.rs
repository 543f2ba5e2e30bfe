//! Causal grouped-query attention of new positions over the cached ones. Each key/value
//! head serves `heads / kv_heads` consecutive query heads (Llama's repeat_kv, ChatGLM2's
//! multi-query groups); the queries of a group are stacked as rows so the shared keys are
//! read once, never copied per head.

use anyhow::Result;
use candle_core::{Device, Tensor};

/// `q`: `[heads, n, head_dim]` (rotated); `keys`, `values`: `[kv_heads, total, head_dim]`
/// with the new positions last; `mask` from [`causal_mask`]. Returns
/// `[n, heads · head_dim]`, heads side by side as the output projection reads them.
pub(crate) fn attend(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    mask: Option<&Tensor>,
) -> Result<Tensor> {
    let (heads, n, head_dim) = q.dims3()?;
    let kv_heads = keys.dim(0)?;
    let group = heads / kv_heads;
    // Rows of group k: query head k·group + j at position t is row j·n + t.
    let q = (q.reshape((kv_heads, group * n, head_dim))? * (1.0 / (head_dim as f64).sqrt()))?;
    let scores = q.matmul(&keys.t()?)?;
    let scores = match mask {
        Some(mask) => scores.broadcast_add(mask)?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = probs.matmul(values)?;
    Ok(out
        .reshape((heads, n, head_dim))?
        .transpose(0, 1)?
        .reshape((n, heads * head_dim))?)
}

/// For `n` new positions after `start` cached ones, `[group · n, start + n]`: 0 where row
/// j·n + t (position start + t) may look, −∞ after it. None for a single new position,
/// which sees everything. The same for every layer, so built once per forward pass.
pub(crate) fn causal_mask(
    group: usize,
    n: usize,
    start: usize,
    device: &Device,
) -> Result<Option<Tensor>> {
    if n == 1 {
        return Ok(None);
    }
    let total = start + n;
    let mut mask = Vec::with_capacity(group * n * total);
    for _ in 0..group {
        for t in 0..n {
            let visible = start + t + 1;
            mask.extend((0..total).map(|j| if j < visible { 0f32 } else { f32::NEG_INFINITY }));
        }
    }
    Ok(Some(Tensor::from_vec(mask, (group * n, total), device)?))
}
