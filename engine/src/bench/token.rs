//! `helora bench token --he-only`: the HE path of secure decoding at a preset's exact
//! shapes (ChatGLM2-6B by default in the paper), without the base model: per token and per
//! adapted input site, the client encrypts a fresh activation, the server applies the
//! rank-R LoRA plan with the PLL, the client decrypts. Random factors shaped like a
//! trained adapter, random unit-variance activations.
//!
//! The `lora` comparison is the same adapter applied in plaintext (x·A·B on the CPU), so
//! the overhead ratio is that of privacy for the adapter's share of a token.

use super::machine;
use super::timing::{ms, percentile};
use crate::adapter::LoraAdapter;
use crate::model::presets::{default_targets, preset};
use crate::model::{InputSite, LoraHook, ModelConfig};
use crate::plain_lora::PlainLoraHook;
use crate::secure::InProcess;
use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use helora::math::sampling;
use helora::pll::PllSettings;
use serde::Serialize;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct TokenOptions {
    pub preset: String,
    pub rank: usize,
    pub targets: Option<Vec<String>>,
    pub tokens: usize,
    pub prompt_tokens: usize,
    /// Sequences of one client in flight: each decode step carries one token of each, and
    /// the server spreads them over the cores.
    pub batch: usize,
    pub pll: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Breakdown {
    pub base_forward: f64,
    pub encrypt: f64,
    pub he_eval: f64,
    pub decrypt: f64,
    /// Host-side copies of activations and deltas (tensor ↔ vectors).
    pub copies: f64,
    pub idle: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenReport {
    pub preset: String,
    pub rank: usize,
    pub targets: Vec<String>,
    pub mode: &'static str,
    pub device: &'static str,
    pub batch: usize,
    /// Tokens per second over all sequences in flight.
    pub tokens_per_s: f64,
    pub he_only: bool,
    pub tokens: usize,
    pub prompt_tokens: usize,
    pub layers: usize,
    pub adapted_projections_per_token: usize,
    pub requests_per_token: usize,
    /// Median over decode steps (each step gives every sequence in flight one token).
    pub ms_per_token: f64,
    pub p90_ms_per_token: f64,
    pub prefill_ms: f64,
    /// Mean ms per decode step by stage.
    pub breakdown: Breakdown,
    pub upload_bytes_per_token: f64,
    pub download_bytes_per_token: f64,
    /// The same tokens with the adapter in plaintext.
    pub lora_ms_per_token: f64,
    pub overhead_ratio: f64,
    pub pll: bool,
    pub setup_ms: f64,
    pub key_upload_bytes: usize,
    /// The published scheme's figure for ChatGLM2-6B, rank 8, for comparison.
    pub paper_ms_per_token: f64,
    pub cpu: String,
}

pub const PAPER_MS_PER_TOKEN: f64 = 1610.0;

pub fn run_he_only(options: &TokenOptions) -> Result<TokenReport> {
    if options.tokens == 0 || options.prompt_tokens == 0 || options.batch == 0 {
        bail!("--tokens, --prompt-tokens and --batch must be positive");
    }
    let queries = (options.tokens + options.prompt_tokens) as u64 * options.batch as u64;
    let budget = PllSettings::default().budget;
    if options.pll && queries > budget {
        bail!(
            "{queries} tokens per adapted projection exceed the PLL's per-client budget of \
             {budget}: lower --tokens, --prompt-tokens or --batch"
        );
    }
    let config = preset(&options.preset)?;
    let targets = options
        .targets
        .clone()
        .unwrap_or_else(|| default_targets(&config));
    let mut rng = sampling::os_rng()?;
    let adapter = LoraAdapter::random(&config, &targets, options.rank, &mut rng)?;
    let sites = adapted_sites(&config, &adapter);

    let mut session = InProcess::start(&adapter, options.pll)?;
    let setup_ms = ms(session.setup);
    let key_upload_bytes = session.key_upload_bytes;
    let mut hook = session.hook();

    // Prefill: every prompt token through every adapted site, as one batch per site.
    let start = Instant::now();
    run_token(
        &mut hook,
        &sites,
        options.prompt_tokens * options.batch,
        &mut rng,
    )?;
    let prefill_ms = ms(start.elapsed());

    let mut times = Vec::with_capacity(options.tokens);
    let before = hook.stats;
    let mut copies = Duration::ZERO;
    for _ in 0..options.tokens {
        let start = Instant::now();
        copies += run_token(&mut hook, &sites, options.batch, &mut rng)?;
        times.push(ms(start.elapsed()));
    }
    let after = hook.stats;

    let mut plain = PlainLoraHook::new(&adapter, &Device::Cpu)?;
    let mut lora_times = Vec::with_capacity(options.tokens);
    for _ in 0..options.tokens {
        let start = Instant::now();
        run_token(&mut plain, &sites, options.batch, &mut rng)?;
        lora_times.push(ms(start.elapsed()));
    }

    let per = |d: Duration| ms(d) / options.tokens as f64;
    let total_ms: f64 = times.iter().sum::<f64>() / options.tokens as f64;
    let breakdown = Breakdown {
        base_forward: 0.0,
        encrypt: per(after.encrypt - before.encrypt),
        he_eval: per(after.eval - before.eval),
        decrypt: per(after.decrypt - before.decrypt),
        copies: per(copies),
        idle: 0.0,
    };
    let accounted = breakdown.encrypt + breakdown.he_eval + breakdown.decrypt + breakdown.copies;
    let breakdown = Breakdown {
        idle: (total_ms - accounted).max(0.0),
        ..breakdown
    };
    let (median, p90) = (percentile(&times, 0.5), percentile(&times, 0.9));
    let lora_ms = percentile(&lora_times, 0.5);
    Ok(TokenReport {
        preset: options.preset.clone(),
        rank: options.rank,
        targets,
        mode: "secure",
        device: "cpu",
        batch: options.batch,
        tokens_per_s: options.batch as f64 * 1e3 / median.max(f64::MIN_POSITIVE),
        he_only: true,
        tokens: options.tokens,
        prompt_tokens: options.prompt_tokens,
        layers: config.num_layers,
        adapted_projections_per_token: adapter.projection_count(),
        requests_per_token: sites.len(),
        ms_per_token: median,
        p90_ms_per_token: p90,
        prefill_ms,
        breakdown,
        upload_bytes_per_token: (after.upload_bytes - before.upload_bytes) as f64
            / (options.tokens * options.batch) as f64,
        download_bytes_per_token: (after.download_bytes - before.download_bytes) as f64
            / (options.tokens * options.batch) as f64,
        lora_ms_per_token: lora_ms,
        overhead_ratio: median / lora_ms.max(f64::MIN_POSITIVE),
        pll: options.pll,
        setup_ms,
        key_upload_bytes,
        paper_ms_per_token: PAPER_MS_PER_TOKEN,
        cpu: machine::cpu_model(),
    })
}

/// The input sites of every layer where the adapter adapts something, in forward order.
fn adapted_sites(config: &ModelConfig, adapter: &LoraAdapter) -> Vec<(InputSite, usize)> {
    let mut sites = Vec::new();
    for layer in 0..config.num_layers {
        for site in crate::model::input_sites(config.arch, layer) {
            let d_in = config
                .projections()
                .iter()
                .find(|p| p.0 == site.modules[0])
                .map_or(0, |p| p.1);
            if site.modules.iter().any(|m| adapter.get(layer, m).is_some()) {
                sites.push((site, d_in));
            }
        }
    }
    sites
}

/// One forward's worth of adapter work for `tokens` positions: returns the time spent
/// making and reading tensors (the "copies").
fn run_token(
    hook: &mut dyn LoraHook,
    sites: &[(InputSite, usize)],
    tokens: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<Duration> {
    let mut copies = Duration::ZERO;
    for &(site, d_in) in sites {
        let start = Instant::now();
        let x: Vec<f32> = (0..tokens * d_in)
            .map(|_| sampling::standard_normal(rng) as f32)
            .collect();
        let x = Tensor::from_vec(x, (tokens, d_in), &Device::Cpu)?;
        copies += start.elapsed();
        let deltas = hook.deltas(site, &x)?;
        let start = Instant::now();
        for d in deltas.into_iter().flatten() {
            std::hint::black_box(d.to_vec2::<f32>()?);
        }
        copies += start.elapsed();
    }
    Ok(copies)
}

impl TokenReport {
    pub fn table(&self) -> String {
        let rows: Vec<(&str, String)> = vec![
            (
                "preset",
                format!(
                    "{} ({} layers), rank {} on {}",
                    self.preset,
                    self.layers,
                    self.rank,
                    self.targets.join(", ")
                ),
            ),
            (
                "mode",
                format!(
                    "{} on {}, HE only, batch {}, PLL {}",
                    self.mode,
                    self.device,
                    self.batch,
                    if self.pll { "on" } else { "off" }
                ),
            ),
            (
                "per token",
                format!(
                    "{} projections, {} requests",
                    self.adapted_projections_per_token, self.requests_per_token
                ),
            ),
            (
                "decode ms/token",
                format!(
                    "{:.1} median, {:.1} p90 ({} steps; {:.1} tokens/s over {} sequences)",
                    self.ms_per_token,
                    self.p90_ms_per_token,
                    self.tokens,
                    self.tokens_per_s,
                    self.batch
                ),
            ),
            (
                "prefill",
                format!(
                    "{:.1} ms ({} tokens × {} sequences)",
                    self.prefill_ms, self.prompt_tokens, self.batch
                ),
            ),
            (
                "breakdown ms/step",
                format!(
                    "encrypt {:.1}, evaluate {:.1}, decrypt {:.1}, copies {:.2}, other {:.1}",
                    self.breakdown.encrypt,
                    self.breakdown.he_eval,
                    self.breakdown.decrypt,
                    self.breakdown.copies,
                    self.breakdown.idle
                ),
            ),
            (
                "bytes per token",
                format!(
                    "{:.0} up, {:.0} down",
                    self.upload_bytes_per_token, self.download_bytes_per_token
                ),
            ),
            (
                "lora (plaintext)",
                format!(
                    "{:.3} ms/token; privacy overhead {:.0}×",
                    self.lora_ms_per_token, self.overhead_ratio
                ),
            ),
            (
                "published scheme",
                format!(
                    "{:.0} ms/token (ChatGLM2-6B, rank 8, CPU): {:.1}× this run",
                    self.paper_ms_per_token,
                    self.paper_ms_per_token / self.ms_per_token
                ),
            ),
            (
                "setup",
                format!(
                    "{:.0} ms, {} bytes of keys uploaded",
                    self.setup_ms, self.key_upload_bytes
                ),
            ),
            ("cpu", self.cpu.clone()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}
