//! `helora bench token`: per-token latency of decoding at a preset's exact shapes with a
//! random rank-R adapter, in plain, lora or secure mode.
//!
//! With the base model (the default), a model with random weights is built in place
//! ([`super::random_model`]) and decodes greedily ([`super::full_model`]); secure mode is
//! also run in lora mode so that the overhead of privacy is the ratio of the two. The
//! memory the f32 model needs is checked first: the 6–8 B presets do not fit a small
//! machine, and `--he-only` is then the way to measure them.
//!
//! `--he-only` runs the HE path of secure decoding without the base model: per token and
//! per adapted input site, the client encrypts a fresh activation, the server applies the
//! rank-R LoRA plan with the PLL, the client decrypts. Random factors shaped like a
//! trained adapter, random unit-variance activations. Its `lora` comparison is the same
//! adapter applied in plaintext (x·A·B on the CPU), so the overhead ratio is that of
//! privacy for the adapter's share of a token.

use super::full_model::{self, Trace};
use super::hardware::{self, Hardware, Probe};
use super::machine;
use super::provenance::Provenance;
use super::published::PAPER_MS_PER_TOKEN;
use super::random_model;
use crate::adapter::LoraAdapter;
use crate::device::{self, model_device, DeviceChoice};
use crate::generate::Mode;
use crate::model::presets::{default_targets, preset};
use crate::model::{InputSite, LoraHook, Model, ModelConfig};
use crate::plain_lora::PlainLoraHook;
use crate::secure::SecureSession;
use crate::stats::{ms, percentile};
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
    /// The mode of the full-model path (`--he-only` is always secure).
    pub mode: Mode,
    pub he_only: bool,
    /// Memory the full model may use; `None`: what /proc/meminfo says is available (on a
    /// GPU: what NVML says is free).
    pub memory_limit: Option<u64>,
    /// Where the base model runs (the full-model path), and in secure mode the HE server.
    pub device: DeviceChoice,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Breakdown {
    pub base_forward: f64,
    pub encrypt: f64,
    pub he_eval: f64,
    pub decrypt: f64,
    /// The adapter in plaintext (lora mode).
    pub lora: f64,
    /// Host-side copies of activations and deltas (tensor ↔ vectors) and the hook's
    /// bookkeeping; serialization is inside encrypt, evaluate and decrypt.
    pub copies: f64,
    /// The rest of the step: sampling the token, the loop itself.
    pub idle: f64,
}

impl Breakdown {
    /// The stages that do work (all but idle), as they were timed, side by side or not.
    pub fn stages(&self) -> f64 {
        self.base_forward + self.lora + self.encrypt + self.he_eval + self.decrypt + self.copies
    }

    /// Stage time per wall time of a step of `mean_ms`: above 1 where stages ran at the
    /// same time, 1 where they ran one after another with nothing else, below 1 by the
    /// idle share.
    pub fn overlap(&self, mean_ms: f64) -> f64 {
        self.stages() / mean_ms.max(f64::MIN_POSITIVE)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TokenReport {
    pub preset: String,
    pub rank: usize,
    pub targets: Vec<String>,
    pub mode: &'static str,
    /// Where the base model ran (`cpu` with `--he-only`).
    pub device: &'static str,
    /// The base model's matrices: f32 on the CPU, bf16 on a GPU (absent with `--he-only`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_dtype: Option<&'static str>,
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
    /// Mean over decode steps: what the breakdown adds up to.
    pub mean_ms_per_token: f64,
    pub prefill_ms: f64,
    /// Mean ms per decode step by stage.
    pub breakdown: Breakdown,
    /// The breakdown's stages (all but idle) summed, over `mean_ms_per_token`: how much of
    /// the stages' time ran side by side (> 1 where they overlap, ≈ 1 where they run one
    /// after another).
    pub overlap: f64,
    pub upload_bytes_per_token: f64,
    pub download_bytes_per_token: f64,
    /// The same tokens with the adapter in plaintext (median ms per decode step).
    pub lora_ms_per_token: f64,
    /// What `lora_ms_per_token` measured.
    pub lora_reference: &'static str,
    /// `ms_per_token / lora_ms_per_token`.
    pub overhead_ratio: f64,
    pub pll: bool,
    pub setup_ms: f64,
    pub key_upload_bytes: usize,
    /// The published scheme's figure for ChatGLM2-6B, rank 8, for comparison.
    pub paper_ms_per_token: f64,
    pub cpu: String,
    /// GPU 0 through NVML; absent where NVML is not there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hardware: Option<Hardware>,
    /// `--plot`: ms/token at every point of the sweep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<super::series::Sweep>,
    /// `--plot`: the PNG written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plot: Option<String>,
    pub run: Provenance,
}

/// `lora_reference` of `--he-only` runs.
pub const HE_ONLY_LORA: &str = "the adapter alone in plaintext (x·A·B at these shapes)";
/// `lora_reference` of full-model runs.
pub const FULL_LORA: &str = "the full model with the adapter in plaintext";

/// Seed of the random weights, adapter and prompt of the full-model path.
pub const SEED: u64 = 0x6865_6c6f_7261;

pub fn run_he_only(options: &TokenOptions) -> Result<TokenReport> {
    if options.tokens == 0 || options.prompt_tokens == 0 || options.batch == 0 {
        bail!("--tokens, --prompt-tokens and --batch must be positive");
    }
    if options.pll {
        check_budget(options.tokens + options.prompt_tokens, options.batch)?;
    }
    let mut rng = sampling::os_rng()?;
    let RandomAdapter {
        config,
        targets,
        adapter,
        sites,
    } = random_adapter(
        &options.preset,
        options.targets.as_deref(),
        options.rank,
        &mut rng,
    )?;

    let mut session = SecureSession::start(&adapter, options.pll)?;
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
    let mut probe = Probe::open();
    if let Some(p) = probe.as_mut() {
        p.start();
    }
    let before = hook.stats;
    let mut copies = Duration::ZERO;
    for _ in 0..options.tokens {
        let start = Instant::now();
        copies += run_token(&mut hook, &sites, options.batch, &mut rng)?;
        times.push(ms(start.elapsed()));
    }
    let after = hook.stats;
    let hardware = probe.and_then(|p| p.finish(options.tokens * options.batch));

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
        ..Breakdown::default()
    };
    let breakdown = Breakdown {
        idle: (total_ms - breakdown.stages()).max(0.0),
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
        weight_dtype: None,
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
        mean_ms_per_token: total_ms,
        prefill_ms,
        overlap: breakdown.overlap(total_ms),
        breakdown,
        upload_bytes_per_token: (after.upload_bytes - before.upload_bytes) as f64
            / (options.tokens * options.batch) as f64,
        download_bytes_per_token: (after.download_bytes - before.download_bytes) as f64
            / (options.tokens * options.batch) as f64,
        lora_ms_per_token: lora_ms,
        lora_reference: HE_ONLY_LORA,
        overhead_ratio: median / lora_ms.max(f64::MIN_POSITIVE),
        pll: options.pll,
        setup_ms,
        key_upload_bytes,
        paper_ms_per_token: PAPER_MS_PER_TOKEN,
        cpu: machine::cpu_model(),
        run: Provenance::now(),
        hardware,
        sweep: None,
        plot: None,
    })
}

/// The run the options ask for: `--he-only`, or the full model.
pub fn run(options: &TokenOptions) -> Result<TokenReport> {
    if options.he_only {
        run_he_only(options)
    } else {
        run_full(options)
    }
}

/// The full model at the preset's shapes: checked against the memory, built, run.
pub fn run_full(options: &TokenOptions) -> Result<TokenReport> {
    let config = check_full(options)?;
    let model = build_model(options, &config)?;
    full_report(&model, options)
}

/// Refuses a run whose queries per adapted projection, `per_sequence` for each of `batch`
/// sequences (all the same client's), exceed the PLL's per-client budget.
fn check_budget(per_sequence: usize, batch: usize) -> Result<()> {
    let budget = PllSettings::default().budget;
    let queries = per_sequence as u64 * batch as u64;
    if queries > budget {
        bail!(
            "{queries} tokens per adapted projection exceed the PLL's per-client budget of \
             {budget}: lower --tokens, --prompt-tokens or --batch"
        );
    }
    Ok(())
}

/// The random model of a checked full-model run, on the options' device.
pub fn build_model(options: &TokenOptions, config: &ModelConfig) -> Result<Model> {
    let device = model_device(options.device)?;
    random_model::build(config, SEED, &device)
}

/// Validates a full-model run and returns the preset's configuration; fails before
/// anything large is allocated.
pub fn check_full(options: &TokenOptions) -> Result<ModelConfig> {
    if options.tokens == 0 || options.prompt_tokens == 0 || options.batch == 0 {
        bail!("--tokens, --prompt-tokens and --batch must be positive");
    }
    let config = preset(&options.preset)?;
    // The prompt, the decoded tokens, and the last sampled one.
    let positions = options.prompt_tokens + options.tokens + 1;
    if positions > config.max_positions {
        bail!(
            "{positions} positions exceed the {} the model accepts",
            config.max_positions
        );
    }
    if options.mode == Mode::Secure && options.pll {
        check_budget(positions, options.batch)?;
    }
    match options.device {
        DeviceChoice::Cpu => {
            let available = options.memory_limit.or_else(random_model::memory_available);
            random_model::check_memory(
                &options.preset,
                &config,
                positions,
                options.batch,
                available,
            )?;
        }
        DeviceChoice::Cuda => {
            // The host holds one tensor at a time; the GPU holds the model.
            let free = options.memory_limit.or_else(hardware::gpu_memory_free);
            random_model::check_gpu_memory(
                &options.preset,
                &config,
                positions,
                options.batch,
                free,
            )?;
        }
    }
    Ok(config)
}

/// One full-model run in the options' mode on `model`, plus the lora comparison.
pub fn full_report(model: &Model, options: &TokenOptions) -> Result<TokenReport> {
    let config = model.config().clone();
    let targets = options
        .targets
        .clone()
        .unwrap_or_else(|| default_targets(&config));
    let mut rng = sampling::seeded_rng(seed_bytes(SEED ^ options.rank as u64));
    let adapter = LoraAdapter::random(&config, &targets, options.rank, &mut rng)?;
    let sites = adapted_sites(&config, &adapter);
    let prompts = full_model::prompts(options.batch, options.prompt_tokens, config.vocab_size);

    let mut probe = Probe::open();
    let trace = full_model::run(
        model,
        Some(&adapter),
        options.mode,
        options.pll,
        &prompts,
        options.tokens,
        probe.as_mut(),
    )?;
    let lora = match options.mode {
        Mode::Lora => None,
        _ => Some(full_model::run(
            model,
            Some(&adapter),
            Mode::Lora,
            false,
            &prompts,
            options.tokens,
            None,
        )?),
    };
    let lora_ms = percentile(&lora.as_ref().unwrap_or(&trace).step_ms, 0.5);
    let (median, p90) = (
        percentile(&trace.step_ms, 0.5),
        percentile(&trace.step_ms, 0.9),
    );
    let steps = trace.step_ms.len().max(1) as f64;
    let mean = trace.step_ms.iter().sum::<f64>() / steps;
    let breakdown = full_breakdown(&trace, options.mode, mean);
    // A step decodes one token of every sequence.
    let per_token = |bytes: u64| bytes as f64 / (steps * options.batch as f64);
    Ok(TokenReport {
        preset: options.preset.clone(),
        rank: options.rank,
        targets,
        mode: mode_name(options.mode),
        device: device::name(model.device()),
        weight_dtype: Some(model.weight_dtype().as_str()),
        batch: options.batch,
        tokens_per_s: options.batch as f64 * 1e3 / median.max(f64::MIN_POSITIVE),
        he_only: false,
        tokens: options.tokens,
        prompt_tokens: options.prompt_tokens,
        layers: config.num_layers,
        adapted_projections_per_token: adapter.projection_count(),
        requests_per_token: sites.len(),
        ms_per_token: median,
        p90_ms_per_token: p90,
        mean_ms_per_token: mean,
        prefill_ms: trace.prefill_ms,
        overlap: breakdown.overlap(mean),
        breakdown,
        upload_bytes_per_token: per_token(trace.he.upload_bytes),
        download_bytes_per_token: per_token(trace.he.download_bytes),
        lora_ms_per_token: lora_ms,
        lora_reference: FULL_LORA,
        overhead_ratio: median / lora_ms.max(f64::MIN_POSITIVE),
        pll: options.pll && options.mode == Mode::Secure,
        setup_ms: trace.setup_ms,
        key_upload_bytes: trace.key_upload_bytes,
        paper_ms_per_token: PAPER_MS_PER_TOKEN,
        cpu: machine::cpu_model(),
        run: Provenance::now(),
        hardware: trace.hardware,
        sweep: None,
        plot: None,
    })
}

/// Mean ms per decode step by stage: the hook's time is the adapter's (HE stages and the
/// copies around them in secure mode, the plaintext product in lora mode), the rest of
/// the forward pass is the base model's, the rest of the step is idle.
fn full_breakdown(trace: &Trace, mode: Mode, mean_ms: f64) -> Breakdown {
    let steps = trace.step_ms.len().max(1) as f64;
    let per = |d: Duration| ms(d) / steps;
    let hook = per(trace.hook);
    let he = per(trace.he.total());
    let mut b = Breakdown {
        base_forward: per(trace.forward.saturating_sub(trace.hook)),
        ..Breakdown::default()
    };
    match mode {
        Mode::Plain => {}
        Mode::Lora => b.lora = hook,
        Mode::Secure => {
            b.encrypt = per(trace.he.encrypt);
            b.he_eval = per(trace.he.eval);
            b.decrypt = per(trace.he.decrypt);
            b.copies = (hook - he).max(0.0);
        }
    }
    b.idle = (mean_ms - b.stages()).max(0.0);
    b
}

pub fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Plain => "plain",
        Mode::Lora => "lora",
        Mode::Secure => "secure",
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

/// A random adapter at a preset's shapes (the HE-only benches' workload).
pub(crate) struct RandomAdapter {
    pub config: ModelConfig,
    /// The adapted projections: the ones asked for, or PEFT's default for the preset.
    pub targets: Vec<String>,
    pub adapter: LoraAdapter,
    /// Its input sites with their d_in, in forward order.
    pub sites: Vec<(InputSite, usize)>,
}

/// A random rank-`rank` adapter on `targets` (default: PEFT's for the architecture) at the
/// shapes of preset `name`.
pub(crate) fn random_adapter(
    name: &str,
    targets: Option<&[String]>,
    rank: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<RandomAdapter> {
    let config = preset(name)?;
    let targets = targets.map_or_else(|| default_targets(&config), <[String]>::to_vec);
    let adapter = LoraAdapter::random(&config, &targets, rank, rng)?;
    let sites = adapted_sites(&config, &adapter);
    Ok(RandomAdapter {
        config,
        targets,
        adapter,
        sites,
    })
}

/// The input sites of every layer where the adapter adapts something, in forward order.
pub(crate) fn adapted_sites(
    config: &ModelConfig,
    adapter: &LoraAdapter,
) -> Vec<(InputSite, usize)> {
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
pub(crate) fn run_token(
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
        let path = if self.he_only {
            "HE only"
        } else {
            "full model, random weights"
        };
        let pll = if self.mode == "secure" {
            format!(", PLL {}", if self.pll { "on" } else { "off" })
        } else {
            String::new()
        };
        let b = &self.breakdown;
        let mut rows: Vec<(&str, String)> = vec![
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
                    "{} on {}{}, {path}, batch {}{pll}",
                    self.mode,
                    self.device,
                    self.weight_dtype
                        .map(|d| format!(" ({d} weights)"))
                        .unwrap_or_default(),
                    self.batch
                ),
            ),
            (
                "per token",
                format!(
                    "{} projections, {} requests{}",
                    self.adapted_projections_per_token,
                    self.requests_per_token,
                    if self.mode == "plain" {
                        " (in the lora reference; plain runs none)"
                    } else {
                        ""
                    }
                ),
            ),
            (
                "decode ms/token",
                format!(
                    "{:.1} median, {:.1} p90, {:.1} mean ({} steps; {:.1} tokens/s over {} \
                     sequences)",
                    self.ms_per_token,
                    self.p90_ms_per_token,
                    self.mean_ms_per_token,
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
                    "base forward {:.1}, lora {:.2}, encrypt {:.1}, evaluate {:.1}, decrypt \
                     {:.1}, copies {:.2}, idle {:.2}",
                    b.base_forward, b.lora, b.encrypt, b.he_eval, b.decrypt, b.copies, b.idle
                ),
            ),
            (
                "overlap",
                format!(
                    "{:.2} (stages {:.1} ms / step {:.1} ms)",
                    self.overlap,
                    b.stages(),
                    self.mean_ms_per_token
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
                "lora",
                format!(
                    "{:.3} ms/token ({}); overhead {:.1}×",
                    self.lora_ms_per_token, self.lora_reference, self.overhead_ratio
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
        ];
        if self.mode == "secure" {
            rows.push((
                "setup",
                format!(
                    "{:.0} ms, {} bytes of keys uploaded",
                    self.setup_ms, self.key_upload_bytes
                ),
            ));
        }
        rows.push(("cpu", self.cpu.clone()));
        rows.push(("gpu", hardware::describe(self.hardware.as_ref())));
        rows.push(("build", self.run.summary()));
        if let Some(plot) = &self.plot {
            rows.push(("plot", plot.clone()));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out: String = rows
            .iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect();
        if let Some(sweep) = &self.sweep {
            out.push('\n');
            out.push_str(&sweep.table());
        }
        out
    }
}
