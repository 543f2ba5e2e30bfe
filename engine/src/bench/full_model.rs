//! `helora bench token` with the base model: a random model at a preset's shapes runs a
//! prefill of a fixed random prompt, then N greedy decode steps, in one mode (plain: no
//! hook; lora: the adapter in plaintext; secure: the in-process client and server with
//! the PLL). Every step is timed, and the time inside the hook is split from the base
//! forward so the breakdown adds up to the step.

use super::hardware::{Hardware, Probe};
use super::timing::ms;
use crate::adapter::LoraAdapter;
use crate::generate::Mode;
use crate::model::{InputSite, LoraHook, Model, NoHook, Sampler};
use crate::plain_lora::PlainLoraHook;
use crate::secure::{HeStats, InProcess};
use anyhow::{bail, Result};
use candle_core::Tensor;
use std::time::{Duration, Instant};

/// One mode's decode, as measured.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub prefill_ms: f64,
    /// Wall time of each decode step: sampling the token, then the forward pass on it.
    pub step_ms: Vec<f64>,
    /// Over all decode steps: time inside `Model::forward`, and the part of it spent in
    /// the hook.
    pub forward: Duration,
    pub hook: Duration,
    /// HE counters over the decode steps only (secure mode).
    pub he: HeStats,
    pub setup_ms: f64,
    pub key_upload_bytes: usize,
    /// The greedy tokens (the last one sampled after the last step).
    pub generated: Vec<u32>,
    pub hardware: Option<Hardware>,
}

/// Prefill of `prompt` and `tokens` decode steps of `model` in `mode` (`adapter` is
/// needed for lora and secure). With `probe`, the GPU's energy counter brackets the
/// decode.
pub fn run(
    model: &Model,
    adapter: Option<&LoraAdapter>,
    mode: Mode,
    pll: bool,
    prompt: &[u32],
    tokens: usize,
    probe: Option<&mut Probe>,
) -> Result<Trace> {
    if prompt.is_empty() || tokens == 0 {
        bail!("--prompt-tokens and --tokens must be positive");
    }
    let adapter = || match adapter {
        Some(a) => Ok(a),
        None => bail!("{mode:?} mode needs an adapter"),
    };
    match mode {
        Mode::Plain => decode(model, NoHook, |_| HeStats::default(), prompt, tokens, probe),
        Mode::Lora => {
            let hook = PlainLoraHook::new(adapter()?, model.device())?;
            decode(model, hook, |_| HeStats::default(), prompt, tokens, probe)
        }
        Mode::Secure => {
            let mut session = InProcess::start_on(adapter()?, pll, model.device())?;
            let (setup_ms, key_upload_bytes) = (ms(session.setup), session.key_upload_bytes);
            let trace = decode(model, session.hook(), |h| h.stats, prompt, tokens, probe)?;
            Ok(Trace {
                setup_ms,
                key_upload_bytes,
                ..trace
            })
        }
    }
}

/// The hook of the mode, with the time spent in it counted.
struct Timed<H> {
    inner: H,
    spent: Duration,
}

impl<H: LoraHook> LoraHook for Timed<H> {
    fn wants(&self, site: InputSite) -> bool {
        self.inner.wants(site)
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let start = Instant::now();
        let out = self.inner.deltas(site, x);
        self.spent += start.elapsed();
        out
    }
}

fn decode<H: LoraHook>(
    model: &Model,
    hook: H,
    stats: impl Fn(&H) -> HeStats,
    prompt: &[u32],
    tokens: usize,
    mut probe: Option<&mut Probe>,
) -> Result<Trace> {
    let mut hook = Timed {
        inner: hook,
        spent: Duration::ZERO,
    };
    let mut sampler = Sampler::greedy();
    let mut cache = model.new_cache();
    let start = Instant::now();
    let mut logits = model.forward(prompt, &mut cache, &mut hook)?;
    let prefill_ms = ms(start.elapsed());

    let before = stats(&hook.inner);
    hook.spent = Duration::ZERO;
    if let Some(p) = probe.as_deref_mut() {
        p.start();
    }
    let mut trace = Trace {
        prefill_ms,
        ..Trace::default()
    };
    for _ in 0..tokens {
        let step = Instant::now();
        let next = sampler.sample(&logits)?;
        trace.generated.push(next);
        let forward = Instant::now();
        logits = model.forward(&[next], &mut cache, &mut hook)?;
        trace.forward += forward.elapsed();
        trace.step_ms.push(ms(step.elapsed()));
    }
    trace.hardware = probe.and_then(|p| p.finish(tokens));
    trace.generated.push(sampler.sample(&logits)?);
    trace.hook = hook.spent;
    let after = stats(&hook.inner);
    trace.he = HeStats {
        encrypt: after.encrypt - before.encrypt,
        eval: after.eval - before.eval,
        decrypt: after.decrypt - before.decrypt,
        upload_bytes: after.upload_bytes - before.upload_bytes,
        download_bytes: after.download_bytes - before.download_bytes,
        requests: after.requests - before.requests,
        applications: after.applications - before.applications,
    };
    Ok(trace)
}

/// A fixed prompt of `len` token ids spread over the vocabulary (a multiplicative
/// sequence, so it is the same on every run without a generator).
pub fn prompt(len: usize, vocab: usize) -> Vec<u32> {
    (0..len as u64)
        .map(|i| ((i * 2_654_435_761 + 12_345) % vocab.max(1) as u64) as u32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_are_fixed_and_in_the_vocabulary() {
        let p = prompt(16, 1000);
        assert_eq!(p, prompt(16, 1000));
        assert!(p.iter().all(|&t| t < 1000));
        assert!(p.windows(2).all(|w| w[0] != w[1]));
    }
}
