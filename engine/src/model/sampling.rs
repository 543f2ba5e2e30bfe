//! Picking the next token from logits: greedy, or nucleus (top-p) sampling at a
//! temperature from a seeded ChaCha20 stream, so a seed replays the same text.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use helora::math::sampling::{seeded_rng, uniform_unit, ChaCha20Rng};

pub struct Sampler {
    mode: Mode,
}

enum Mode {
    Greedy,
    TopP {
        top_p: f64,
        temperature: f64,
        // Boxed: the stream's state dwarfs the greedy variant.
        rng: Box<ChaCha20Rng>,
    },
}

impl Sampler {
    /// Always the most likely token (the first one on a tie).
    pub fn greedy() -> Self {
        Self { mode: Mode::Greedy }
    }

    /// Draws from softmax(logits / temperature) restricted to the most likely tokens whose
    /// probabilities add up to at least `top_p`.
    pub fn top_p(top_p: f64, temperature: f64, seed: u64) -> Result<Self> {
        // `{:?}` writes 1e300 as such, where `{}` writes all 301 digits.
        if !(top_p > 0.0 && top_p <= 1.0) {
            bail!("top-p {top_p:?} is not in (0, 1]");
        }
        if !(temperature.is_finite() && temperature > 0.0) {
            bail!("temperature {temperature:?} is not a positive number");
        }
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        Ok(Self {
            mode: Mode::TopP {
                top_p,
                temperature,
                rng: Box::new(seeded_rng(bytes)),
            },
        })
    }

    /// The next token for `logits`, `[vocab]`.
    pub fn sample(&mut self, logits: &Tensor) -> Result<u32> {
        let logits: Vec<f32> = logits
            .to_dtype(DType::F32)?
            .to_vec1()
            .context("logits must be one vector [vocab]")?;
        if logits.is_empty() {
            bail!("no logits to sample from");
        }
        if let Some(i) = logits.iter().position(|l| !l.is_finite()) {
            bail!("logit {i} is {}", logits[i]);
        }
        let token = match &mut self.mode {
            Mode::Greedy => first_max(&logits),
            Mode::TopP {
                top_p,
                temperature,
                rng,
            } => nucleus(&logits, *top_p, *temperature, uniform_unit(rng.as_mut())),
        };
        u32::try_from(token).context("vocabulary larger than u32")
    }
}

fn first_max(logits: &[f32]) -> usize {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best
}

/// The token that `u`, uniform in [0, 1), picks in the nucleus.
fn nucleus(logits: &[f32], top_p: f64, temperature: f64, u: f64) -> usize {
    let max = logits[first_max(logits)] as f64;
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - max) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Stable: equal probabilities keep vocabulary order, so a one-token nucleus is greedy's.
    order.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
    let mut kept = 0;
    let mut mass = 0.0;
    for &i in &order {
        mass += weights[i];
        kept += 1;
        if mass >= top_p * total {
            break;
        }
    }
    let target = u * mass;
    let mut acc = 0.0;
    for &i in &order[..kept] {
        acc += weights[i];
        if target < acc {
            return i;
        }
    }
    order[kept - 1]
}
