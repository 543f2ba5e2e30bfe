//! The forward pass of a whole model: token embedding, the decoder layers over a
//! [`KvCache`], final norm and output projection, with a [`LoraHook`] at every site.

use super::cache::KvCache;
use super::layer::{take, take_matrix, Layer, Segment, Shared, SiteModules};
use super::linear::Linear;
use super::rope::{RopeStyle, Rotary};
use super::{attention, chatglm, llama, Architecture, LoraHook, ModelConfig, ModelWeights};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

pub struct Model {
    shared: Shared,
    device: Device,
    /// `[vocab, hidden]`.
    embedding: Tensor,
    layers: Vec<Layer>,
    final_norm: Tensor,
    /// `[hidden]` → `[vocab]`.
    output: Linear,
}

/// Where one architecture keeps its tensors and how it turns its heads.
struct Layout {
    sites: SiteModules,
    rope: RopeStyle,
    embedding: &'static str,
    final_norm: &'static str,
    output: &'static str,
    layer: fn(&mut ModelWeights, usize) -> Result<Layer>,
}

const LLAMA: Layout = Layout {
    sites: llama::SITES,
    rope: llama::ROPE,
    embedding: llama::EMBEDDING,
    final_norm: llama::FINAL_NORM,
    output: llama::OUTPUT_LAYER,
    layer: llama::layer,
};

const CHATGLM2: Layout = Layout {
    sites: chatglm::SITES,
    rope: chatglm::ROPE,
    embedding: chatglm::EMBEDDING,
    final_norm: chatglm::FINAL_NORM,
    output: chatglm::OUTPUT_LAYER,
    layer: chatglm::layer,
};

impl Model {
    /// Checks every tensor against the configuration, fuses the projections that share an
    /// input and precomputes the rotary tables.
    pub fn new(mut weights: ModelWeights) -> Result<Self> {
        let config = weights.config.clone();
        config.validate().context("invalid model configuration")?;
        let layout = match config.arch {
            Architecture::Llama => &LLAMA,
            Architecture::ChatGlm2 => &CHATGLM2,
        };
        let (vocab, hidden) = (config.vocab_size, config.hidden_size);
        let embedding = take_matrix(&mut weights, layout.embedding, &[vocab, hidden])?;
        let layers = (0..config.num_layers)
            .map(|i| (layout.layer)(&mut weights, i))
            .collect::<Result<Vec<_>>>()?;
        let final_norm = take(&mut weights, layout.final_norm, &[hidden])?;
        let output = if config.tie_embeddings {
            Linear::new(embedding.clone(), None)
        } else {
            Linear::new(
                take_matrix(&mut weights, layout.output, &[vocab, hidden])?,
                None,
            )
        };
        let rotary = Rotary::new(&config, layout.rope, &weights.device)?;
        Ok(Self {
            shared: Shared::new(config, rotary, &layout.sites)?,
            device: weights.device,
            embedding,
            layers,
            final_norm,
            output,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.shared.config
    }

    /// Where the weights, the caches and the activations live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the projection matrices: f32, or bf16 where they were given in bf16
    /// (activations, norms and the cache are f32 either way).
    pub fn weight_dtype(&self) -> DType {
        self.embedding.dtype()
    }

    /// An empty cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.config(), &self.device)
    }

    /// Appends `tokens` to the sequence in `cache` (a whole prompt, or one token while
    /// decoding) and returns the logits after the last of them, `[vocab]` f32.
    pub fn forward(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        hook: &mut dyn LoraHook,
    ) -> Result<Tensor> {
        let logits = self.forward_batch(&[tokens], std::slice::from_mut(cache), hook)?;
        Ok(logits.squeeze(0)?)
    }

    /// Several sequences in one pass: `tokens[s]` is appended to `caches[s]` (prompts of
    /// any lengths, or one token each while decoding). The projections and the hook see
    /// every sequence's rows together, so a batch of sequences costs one matrix product
    /// (and, in secure mode, one request) per site. Returns the logits after each
    /// sequence's last token, `[sequences, vocab]` f32.
    pub fn forward_batch(
        &self,
        tokens: &[&[u32]],
        caches: &mut [KvCache],
        hook: &mut dyn LoraHook,
    ) -> Result<Tensor> {
        let hidden = self.layers(tokens, caches, hook)?;
        // Only each sequence's last position is needed to go on: skip the rest of the head.
        let mut last = Vec::with_capacity(tokens.len());
        let mut end = 0;
        for t in tokens {
            end += t.len();
            last.push((end - 1) as u32);
        }
        let rows = match last.as_slice() {
            // One sequence (every `forward`): a view, no index upload per token.
            &[row] => hidden.narrow(0, row as usize, 1)?,
            _ => hidden.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?,
        };
        self.logits(&rows)
    }

    /// As [`forward`](Self::forward), with the logits after every token, `[tokens, vocab]`.
    pub fn forward_all(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        hook: &mut dyn LoraHook,
    ) -> Result<Tensor> {
        let hidden = self.layers(&[tokens], std::slice::from_mut(cache), hook)?;
        self.logits(&hidden)
    }

    /// Hidden states after the last layer, every sequence's rows in order,
    /// `[Σ tokens, hidden]`, before the final norm. Every check runs before any cache is
    /// written, and the caches advance only when every layer has run.
    fn layers(
        &self,
        tokens: &[&[u32]],
        caches: &mut [KvCache],
        hook: &mut dyn LoraHook,
    ) -> Result<Tensor> {
        let c = self.config();
        if tokens.len() != caches.len() {
            bail!(
                "{} sequences of tokens for {} caches",
                tokens.len(),
                caches.len()
            );
        }
        if tokens.is_empty() || tokens.iter().any(|t| t.is_empty()) {
            bail!("no tokens to run the model on");
        }
        let all: Vec<u32> = tokens.concat();
        if let Some(&bad) = all.iter().find(|&&t| t as usize >= c.vocab_size) {
            bail!(
                "token id {bad} is outside the vocabulary of {}",
                c.vocab_size
            );
        }
        let group = c.num_heads / c.num_kv_heads;
        let mut segments = Vec::with_capacity(tokens.len());
        for (t, cache) in tokens.iter().zip(caches.iter()) {
            if !cache.fits(c) {
                bail!("the key/value cache was made for a model of another shape");
            }
            let end = cache.len() + t.len();
            if end > c.max_positions {
                bail!(
                    "the sequence would reach {end} positions, the model accepts {}",
                    c.max_positions
                );
            }
            segments.push(Segment {
                rows: t.len(),
                mask: attention::causal_mask(group, t.len(), cache.len(), &self.device)?,
            });
        }
        let ids = Tensor::new(all.as_slice(), &self.device)?;
        // Activations are f32 whatever the weights' dtype (a no-op for f32 weights).
        let mut x = self.embedding.index_select(&ids, 0)?.to_dtype(DType::F32)?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer
                .forward(i, &x, &segments, caches, hook, &self.shared)
                .with_context(|| format!("layer {i}"))?;
        }
        for (t, cache) in tokens.iter().zip(caches.iter_mut()) {
            cache.advance(t.len());
        }
        Ok(x)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = candle_nn::ops::rms_norm(hidden, &self.final_norm, self.config().rms_eps as f32)?;
        self.output.forward(&h)
    }
}
