//! The summary of a `generate` run: one JSON object with `--json`, aligned lines otherwise.

use super::{GenerateOptions, Mode};
use crate::secure::{HeStats, NetworkStats};
use crate::stats::{ms, percentile};
use helora::pll::PllSettings;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The model drew an end-of-sequence token.
    Eos,
    /// `--max-tokens` were generated.
    MaxTokens,
    /// The sequence filled the model's context (max_position_embeddings or the sliding
    /// window).
    Context,
}

impl Stop {
    pub fn name(self) -> &'static str {
        match self {
            Stop::Eos => "eos",
            Stop::MaxTokens => "max_tokens",
            Stop::Context => "context",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GenerateReport {
    pub text: String,
    /// Generated token ids, the final end-of-sequence token included when one was drawn.
    pub tokens: Vec<u32>,
    /// Why generation ended: `eos`, `max_tokens` or `context`.
    pub stop: Stop,
    pub mode: Mode,
    pub device: crate::device::DeviceChoice,
    pub model: String,
    pub adapter: Option<String>,
    pub prompt: String,
    pub prompt_tokens: usize,
    /// The prompt's token ids as the model read them (chat template applied), to compare
    /// with another implementation.
    pub prompt_token_ids: Vec<u32>,
    pub sampling: String,
    pub load_ms: f64,
    /// The prompt's forward pass (in `secure` mode, HE for every prompt token included),
    /// which yields the first generated token.
    pub prefill_ms: f64,
    /// Mean wall time of one decode step (one forward pass for one token after the
    /// first); null when only one token was generated.
    pub ms_per_token: Option<f64>,
    pub median_ms_per_token: Option<f64>,
    pub decode_steps: usize,
    /// `secure` only: per decode step, the time the client spent encrypting, the server
    /// evaluating and the client decrypting, and the bytes each way.
    pub he_encrypt_ms: Option<f64>,
    pub he_eval_ms: Option<f64>,
    pub he_decrypt_ms: Option<f64>,
    pub upload_bytes_per_token: Option<f64>,
    pub download_bytes_per_token: Option<f64>,
    /// Share of a decode step spent on HE (encrypt + evaluate + decrypt).
    pub he_share: Option<f64>,
    pub he: Option<HeReport>,
    /// `--check`: the secure run against the plaintext `lora` reference.
    pub check: Option<CheckReport>,
    /// `--top-logits K`: per generated token, the K most likely ids and their logits
    /// (highest first), from the logits the token was drawn from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logits: Option<Vec<Vec<TopLogit>>>,
}

/// One entry of a step's top-k.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TopLogit {
    pub id: u32,
    pub logit: f32,
}

/// The `k` largest of a step's logits, highest first (ties by lower id).
pub fn top_k(logits: &candle_core::Tensor, k: usize) -> anyhow::Result<Vec<TopLogit>> {
    let values: Vec<f32> = logits.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    Ok(order
        .into_iter()
        .take(k)
        .map(|i| TopLogit {
            id: i as u32,
            logit: values[i],
        })
        .collect())
}

/// The secure run in more detail.
#[derive(Clone, Debug, Serialize)]
pub struct HeReport {
    pub adapted_projections: usize,
    pub requests_per_token: f64,
    pub prefill_he_ms: f64,
    pub setup_ms: f64,
    pub key_upload_bytes: usize,
    pub pll_noise: f64,
    pub pll_flooding: bool,
    pub pll_budget: u64,
    /// Against a remote server: the network's share of each decoded token's round trips
    /// (round trip less the server's own time), in ms; None in-process.
    pub network_ms_per_token: Option<f64>,
    /// Requests re-sent after a broken connection.
    pub retries: Option<u64>,
    #[serde(skip)]
    decode: PerStep,
}

#[derive(Clone, Copy, Debug, Default)]
struct PerStep {
    encrypt_ms: f64,
    eval_ms: f64,
    decrypt_ms: f64,
    upload: f64,
    download: f64,
}

impl HeReport {
    pub fn new(
        total: HeStats,
        prefill: HeStats,
        steps: usize,
        key_upload_bytes: usize,
        setup_ms: f64,
        adapted_projections: usize,
        settings: &PllSettings,
    ) -> Self {
        let per = |a: Duration, b: Duration| ms(a.saturating_sub(b)) / steps.max(1) as f64;
        let decode = PerStep {
            encrypt_ms: per(total.encrypt, prefill.encrypt),
            eval_ms: per(total.eval, prefill.eval),
            decrypt_ms: per(total.decrypt, prefill.decrypt),
            upload: (total.upload_bytes - prefill.upload_bytes) as f64 / steps.max(1) as f64,
            download: (total.download_bytes - prefill.download_bytes) as f64 / steps.max(1) as f64,
        };
        Self {
            adapted_projections,
            requests_per_token: (total.requests - prefill.requests) as f64 / steps.max(1) as f64,
            prefill_he_ms: ms(prefill.total()),
            setup_ms,
            key_upload_bytes,
            pll_noise: settings.noise,
            pll_flooding: settings.flooding,
            pll_budget: settings.budget,
            network_ms_per_token: None,
            retries: None,
            decode,
        }
    }
}

impl HeReport {
    /// Adds a remote server's network figures over a run of `tokens` generated tokens.
    pub fn with_network(mut self, network: Option<NetworkStats>, tokens: usize) -> Self {
        self.network_ms_per_token = network.map(|n| ms(n.network()) / tokens.max(1) as f64);
        self.retries = network.map(|n| n.retries);
        self
    }
}

/// Secure logits against the `lora` reference, teacher-forced on the secure tokens.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub steps: usize,
    /// Steps where both pick the same most likely token.
    pub argmax_agreement: usize,
    /// Every step agreed: greedy `lora` decoding gives exactly the secure tokens.
    pub tokens_match: bool,
    pub first_divergence: Option<usize>,
    pub max_abs_logit_diff: f64,
    /// Mean over steps of ‖secure − reference‖₂ / ‖reference‖₂.
    pub mean_relative_logit_error: f64,
}

impl CheckReport {
    pub fn add_step(&mut self, reference: &[f32], secure: &[f32]) {
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
                    if x > best.1 {
                        (i, x)
                    } else {
                        best
                    }
                })
                .0
        };
        if argmax(reference) == argmax(secure) {
            self.argmax_agreement += 1;
        } else if self.first_divergence.is_none() {
            self.first_divergence = Some(self.steps);
        }
        let (mut diff2, mut norm2) = (0.0f64, 0.0f64);
        for (&r, &s) in reference.iter().zip(secure) {
            let d = f64::from(s - r);
            self.max_abs_logit_diff = self.max_abs_logit_diff.max(d.abs());
            diff2 += d * d;
            norm2 += f64::from(r) * f64::from(r);
        }
        let rel = (diff2 / norm2.max(f64::MIN_POSITIVE)).sqrt();
        self.mean_relative_logit_error =
            (self.mean_relative_logit_error * self.steps as f64 + rel) / (self.steps + 1) as f64;
        self.steps += 1;
        self.tokens_match = self.argmax_agreement == self.steps;
    }
}

impl GenerateReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        options: &GenerateOptions,
        model: &Path,
        adapter: Option<PathBuf>,
        prompt: String,
        prompt_token_ids: Vec<u32>,
        text: String,
        tokens: Vec<u32>,
        load_ms: f64,
        prefill_ms: f64,
        decode_times: &[Duration],
        he: Option<HeReport>,
        check: Option<CheckReport>,
        stop: Stop,
        top_logits: Option<Vec<Vec<TopLogit>>>,
    ) -> Self {
        let steps: Vec<f64> = decode_times.iter().map(|&d| ms(d)).collect();
        let mean = (!steps.is_empty()).then(|| steps.iter().sum::<f64>() / steps.len() as f64);
        let median = (!steps.is_empty()).then(|| percentile(&steps, 0.5));
        let decode = he.as_ref().map(|h| h.decode);
        let he_share = match (decode, mean) {
            (Some(d), Some(m)) if m > 0.0 => Some((d.encrypt_ms + d.eval_ms + d.decrypt_ms) / m),
            _ => None,
        };
        let sampling = match options.seed {
            Some(seed) => format!(
                "top-p {} temperature {} seed {seed}",
                options.top_p, options.temperature
            ),
            None => "greedy".to_string(),
        };
        Self {
            text,
            tokens,
            stop,
            mode: options.mode,
            device: options.device,
            model: model.display().to_string(),
            adapter: adapter.map(|a| a.display().to_string()),
            prompt,
            prompt_tokens: prompt_token_ids.len(),
            prompt_token_ids,
            sampling,
            load_ms,
            prefill_ms,
            ms_per_token: mean,
            median_ms_per_token: median,
            decode_steps: decode_times.len(),
            he_encrypt_ms: decode.map(|d| d.encrypt_ms),
            he_eval_ms: decode.map(|d| d.eval_ms),
            he_decrypt_ms: decode.map(|d| d.decrypt_ms),
            upload_bytes_per_token: decode.map(|d| d.upload),
            download_bytes_per_token: decode.map(|d| d.download),
            he_share,
            he,
            check,
            top_logits,
        }
    }

    /// Aligned `name  value` lines for people (the answer itself was streamed already).
    pub fn table(&self) -> String {
        let opt =
            |v: Option<f64>, unit: &str| v.map_or("-".to_string(), |v| format!("{v:.1}{unit}"));
        let bytes = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        let mut rows: Vec<(&str, String)> = vec![
            ("mode", format!("{:?}", self.mode).to_lowercase()),
            ("model", self.model.clone()),
            (
                "adapter",
                self.adapter.clone().unwrap_or_else(|| "-".into()),
            ),
            ("sampling", self.sampling.clone()),
            (
                "tokens",
                format!(
                    "{} prompt, {} generated (stop: {})",
                    self.prompt_tokens,
                    self.tokens.len(),
                    self.stop.name()
                ),
            ),
            ("load", format!("{:.0} ms", self.load_ms)),
            ("prefill", format!("{:.1} ms", self.prefill_ms)),
            (
                "decode",
                format!(
                    "{} per token (median {}, {} steps)",
                    opt(self.ms_per_token, " ms"),
                    opt(self.median_ms_per_token, " ms"),
                    self.decode_steps
                ),
            ),
        ];
        if let Some(he) = &self.he {
            rows.push((
                "HE per token",
                format!(
                    "encrypt {} + evaluate {} + decrypt {} ({} of the step)",
                    opt(self.he_encrypt_ms, " ms"),
                    opt(self.he_eval_ms, " ms"),
                    opt(self.he_decrypt_ms, " ms"),
                    self.he_share
                        .map_or("-".into(), |s| format!("{:.0} %", s * 100.0))
                ),
            ));
            rows.push((
                "bytes per token",
                format!(
                    "{} up, {} down ({} requests, {} projections)",
                    bytes(self.upload_bytes_per_token),
                    bytes(self.download_bytes_per_token),
                    he.requests_per_token,
                    he.adapted_projections
                ),
            ));
            rows.push((
                "PLL",
                if he.pll_noise == 0.0 && !he.pll_flooding {
                    "off".to_string()
                } else {
                    format!(
                        "noise σ {} · rms(B), flooding {}, budget {} queries",
                        he.pll_noise, he.pll_flooding, he.pll_budget
                    )
                },
            ));
            rows.push((
                "HE setup",
                format!(
                    "{:.0} ms, {} bytes of keys uploaded",
                    he.setup_ms, he.key_upload_bytes
                ),
            ));
        }
        if let Some(c) = &self.check {
            rows.push((
                "check vs lora",
                format!(
                    "{} of {} steps agree{}; max |Δlogit| {:.2e}, mean relative {:.2e}",
                    c.argmax_agreement,
                    c.steps,
                    c.first_divergence.map_or(String::new(), |s| format!(
                        " (first divergence at step {s})"
                    )),
                    c.max_abs_logit_diff,
                    c.mean_relative_logit_error
                ),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}
