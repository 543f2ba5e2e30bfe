//! The key/value cache of one sequence: per layer, the rotated keys and the values of every
//! position seen so far, `[kv_heads, capacity, head_dim]`, written in place and grown by
//! doubling so a decode step copies only its own row.

use super::ModelConfig;
use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

/// Smallest allocation, in positions (short chats never regrow).
const MIN_CAPACITY: usize = 256;

/// The past of one sequence, made by [`super::Model::new_cache`] and extended by each
/// forward pass.
pub struct KvCache {
    /// One entry per layer, allocated on the layer's first write.
    layers: Vec<Option<LayerKv>>,
    len: usize,
    max_positions: usize,
    kv_heads: usize,
    head_dim: usize,
    device: Device,
}

struct LayerKv {
    keys: Tensor,
    values: Tensor,
}

impl KvCache {
    pub(crate) fn new(config: &ModelConfig, device: &Device) -> Self {
        Self {
            layers: (0..config.num_layers).map(|_| None).collect(),
            len: 0,
            max_positions: config.max_positions,
            kv_heads: config.num_kv_heads,
            head_dim: config.head_dim,
            device: device.clone(),
        }
    }

    /// Positions held (the position the next token gets).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position (keeps the memory).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Whether this cache was made for a model of `config`'s shape.
    pub(crate) fn fits(&self, config: &ModelConfig) -> bool {
        self.layers.len() == config.num_layers
            && self.max_positions == config.max_positions
            && self.kv_heads == config.num_kv_heads
            && self.head_dim == config.head_dim
    }

    /// Writes `keys`/`values`, `[kv_heads, n, head_dim]`, of `layer` at positions
    /// `len..len + n` and returns all `len + n` positions of that layer. Nothing counts as
    /// held until [`advance`](Self::advance), so a forward pass that fails half-way leaves
    /// the cache as it was.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        keys: &Tensor,
        values: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let n = keys.dim(1)?;
        let (len, end) = (self.len, self.len + n);
        if end > self.max_positions {
            bail!(
                "{end} positions do not fit the model's {}",
                self.max_positions
            );
        }
        let shape = (self.kv_heads, self.max_positions, self.head_dim);
        let Some(slot) = self.layers.get_mut(layer) else {
            bail!("the cache has no layer {layer}");
        };
        let capacity = slot.as_ref().map_or(0, |kv| kv.keys.dims()[1]);
        if end > capacity {
            let capacity = (2 * capacity).max(end).max(MIN_CAPACITY).min(shape.1);
            let grown = |old: Option<&Tensor>| -> Result<Tensor> {
                let new = Tensor::zeros((shape.0, capacity, shape.2), DType::F32, &self.device)?;
                if let Some(old) = old.filter(|_| len > 0) {
                    new.slice_set(&old.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
                }
                Ok(new)
            };
            let keys = grown(slot.as_ref().map(|kv| &kv.keys))?;
            let values = grown(slot.as_ref().map(|kv| &kv.values))?;
            *slot = Some(LayerKv { keys, values });
        }
        let Some(kv) = slot.as_ref() else {
            bail!("the cache of layer {layer} was not allocated");
        };
        kv.keys.slice_set(&keys.contiguous()?, 1, len)?;
        kv.values.slice_set(&values.contiguous()?, 1, len)?;
        Ok((kv.keys.narrow(1, 0, end)?, kv.values.narrow(1, 0, end)?))
    }

    /// Marks the `n` positions just written to every layer as held.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
