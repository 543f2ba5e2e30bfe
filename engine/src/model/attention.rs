//! Causal grouped-query attention of new positions over the cached ones. Each key/value
//! head serves `heads / kv_heads` consecutive query heads (Llama's repeat_kv, ChatGLM2's
//! multi-query groups); the queries of a group are stacked as rows so the shared keys are
//! read once, never copied per head.

use anyhow::Result;
use candle_core::{Device, Tensor};

/// `q`: `[heads, n, head_dim]` (rotated) for positions `start..start + n`; `keys`,
/// `values`: `[kv_heads, start + n, head_dim]`. Returns `[n, heads · head_dim]`, heads
/// side by side as o_proj reads them.
pub(crate) fn attend(q: &Tensor, keys: &Tensor, values: &Tensor, start: usize) -> Result<Tensor> {
    let (heads, n, head_dim) = q.dims3()?;
    let (kv_heads, total, _) = keys.dims3()?;
    let group = heads / kv_heads;
    // Rows of group k: query head k·group + j at position t is row j·n + t.
    let q = (q.reshape((kv_heads, group * n, head_dim))? * (1.0 / (head_dim as f64).sqrt()))?;
    let scores = q.matmul(&keys.t()?)?;
    let scores = if n > 1 {
        scores.broadcast_add(&causal_mask(group, n, start, total, q.device())?)?
    } else {
        // A single new position sees every cached one.
        scores
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let out = probs.matmul(values)?;
    Ok(out
        .reshape((heads, n, head_dim))?
        .transpose(0, 1)?
        .reshape((n, heads * head_dim))?)
}

/// `[group · n, total]`: 0 where row j·n + t (position start + t) may look, −∞ after it.
fn causal_mask(
    group: usize,
    n: usize,
    start: usize,
    total: usize,
    device: &Device,
) -> Result<Tensor> {
    let mut mask = Vec::with_capacity(group * n * total);
    for _ in 0..group {
        for t in 0..n {
            let visible = start + t + 1;
            mask.extend((0..total).map(|j| if j < visible { 0f32 } else { f32::NEG_INFINITY }));
        }
    }
    Ok(Tensor::from_vec(mask, (group * n, total), device)?)
}
