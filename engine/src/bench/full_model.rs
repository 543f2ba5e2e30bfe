//! `helora bench token` with the base model: a random model at a preset's shapes runs a
//! prefill of fixed random prompts (one per sequence of the batch), then N greedy decode
//! steps of every sequence together, in one mode (plain: no hook; lora: the adapter in
//! plaintext; secure: the in-process client and server with the PLL). Every step is
//! timed, and the time inside the hook is split from the base forward so the breakdown
//! adds up to the step.

use super::hardware::{Hardware, Probe};
use crate::adapter::LoraAdapter;
use crate::generate::Mode;
use crate::model::{InputSite, LoraHook, Model, NoHook, Sampler};
use crate::plain_lora::PlainLoraHook;
use crate::secure::{HeStats, SecureSession};
use crate::stats::ms;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use std::time::{Duration, Instant};

/// One mode's decode, as measured.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    pub prefill_ms: f64,
    /// Wall time of each decode step: sampling every sequence's token, then one forward
    /// pass over all of them.
    pub step_ms: Vec<f64>,
    /// Over all decode steps: time inside `Model::forward`, and the part of it spent in
    /// the hook.
    pub forward: Duration,
    pub hook: Duration,
    /// HE counters over the decode steps only (secure mode).
    pub he: HeStats,
    pub setup_ms: f64,
    pub key_upload_bytes: usize,
    pub hardware: Option<Hardware>,
}

/// Prefill of `prompts` (one sequence each, all in one forward pass) and `tokens` decode
/// steps of every sequence of `model` in `mode` (`adapter` is needed for lora and
/// secure). With `probe`, the GPU's energy counter brackets the decode.
pub fn run(
    model: &Model,
    adapter: Option<&LoraAdapter>,
    mode: Mode,
    pll: bool,
    prompts: &[Vec<u32>],
    tokens: usize,
    probe: Option<&mut Probe>,
) -> Result<Trace> {
    if prompts.is_empty() {
        bail!("--batch must be positive");
    }
    if prompts.iter().any(Vec::is_empty) || tokens == 0 {
        bail!("--prompt-tokens and --tokens must be positive");
    }
    let adapter = || match adapter {
        Some(a) => Ok(a),
        None => bail!("{mode:?} mode needs an adapter"),
    };
    match mode {
        Mode::Plain => decode(
            model,
            NoHook,
            |_| HeStats::default(),
            prompts,
            tokens,
            probe,
        ),
        Mode::Lora => {
            let hook = PlainLoraHook::new(adapter()?, model.device())?;
            decode(model, hook, |_| HeStats::default(), prompts, tokens, probe)
        }
        Mode::Secure => {
            let mut session = SecureSession::start_on(adapter()?, pll, model.device())?;
            let (setup_ms, key_upload_bytes) = (ms(session.setup), session.key_upload_bytes);
            let trace = decode(model, session.hook(), |h| h.stats, prompts, tokens, probe)?;
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

    /// Passed on, so that the secure hook copies the input before the base projection is
    /// queued (the overlap on a GPU). Not counted in `spent`: on a GPU the copy waits for
    /// the base model's earlier work, which is base-forward time.
    fn stage(&mut self, site: InputSite, x: &Tensor) -> Result<()> {
        self.inner.stage(site, x)
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
    prompts: &[Vec<u32>],
    tokens: usize,
    mut probe: Option<&mut Probe>,
) -> Result<Trace> {
    let mut hook = Timed {
        inner: hook,
        spent: Duration::ZERO,
    };
    let mut sampler = Sampler::greedy();
    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
    let prompts: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let start = Instant::now();
    let mut logits = model.forward_batch(&prompts, &mut caches, &mut hook)?;
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
    // Every sequence's greedy token, from one copy of the logits to the host.
    let sample_all = |sampler: &mut Sampler, logits: &Tensor| {
        let logits = logits.to_device(&Device::Cpu)?;
        (0..prompts.len())
            .map(|s| Ok([sampler.sample(&logits.get(s)?)?]))
            .collect::<Result<Vec<_>>>()
    };
    for _ in 0..tokens {
        let step = Instant::now();
        let next = sample_all(&mut sampler, &logits)?;
        let next: Vec<&[u32]> = next.iter().map(|t| t.as_slice()).collect();
        let forward = Instant::now();
        logits = model.forward_batch(&next, &mut caches, &mut hook)?;
        // On a GPU the pass has only been queued: wait for it, so the forward time is the
        // base model's and not the next step's sampling's (no cost: sampling waits anyway).
        model.device().synchronize()?;
        trace.forward += forward.elapsed();
        trace.step_ms.push(ms(step.elapsed()));
    }
    trace.hardware = probe.and_then(|p| p.finish(tokens * prompts.len()));
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
    prompt_of(0, len, vocab)
}

/// The fixed prompts of a batch of `batch` sequences: `batch` different ones, the first
/// [`prompt`].
pub fn prompts(batch: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..batch as u64)
        .map(|s| prompt_of(s, len, vocab))
        .collect()
}

fn prompt_of(sequence: u64, len: usize, vocab: usize) -> Vec<u32> {
    (0..len as u64)
        .map(|i| {
            let i = i + sequence * 7_919;
            ((i * 2_654_435_761 + 12_345) % vocab.max(1) as u64) as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records which calls reach it.
    #[derive(Default)]
    struct Calls(Vec<&'static str>);

    impl LoraHook for Calls {
        fn wants(&self, _site: InputSite) -> bool {
            true
        }
        fn stage(&mut self, _site: InputSite, _x: &Tensor) -> Result<()> {
            self.0.push("stage");
            Ok(())
        }
        fn deltas(&mut self, site: InputSite, _x: &Tensor) -> Result<Vec<Option<Tensor>>> {
            self.0.push("deltas");
            Ok(vec![None; site.modules.len()])
        }
    }

    #[test]
    fn the_timed_hook_passes_every_call_on() -> Result<()> {
        let mut hook = Timed {
            inner: Calls::default(),
            spent: Duration::ZERO,
        };
        let site = InputSite {
            layer: 0,
            modules: &["q_proj"],
        };
        let x = Tensor::zeros((1, 4), candle_core::DType::F32, &Device::Cpu)?;
        hook.stage(site, &x)?;
        hook.deltas(site, &x)?;
        assert_eq!(hook.inner.0, ["stage", "deltas"]);
        Ok(())
    }

    #[test]
    fn prompts_are_fixed_and_in_the_vocabulary() {
        let p = prompt(16, 1000);
        assert_eq!(p, prompt(16, 1000));
        assert!(p.iter().all(|&t| t < 1000));
        assert!(p.windows(2).all(|w| w[0] != w[1]));
        let batch = prompts(3, 16, 1000);
        assert_eq!(batch[0], p);
        assert!(batch[1] != batch[0] && batch[2] != batch[1] && batch[2] != batch[0]);
    }
}
