//! `helora generate`: a prompt answered by the base model, with the LoRA adapter applied
//! not at all (`plain`), in plaintext (`lora`) or on encrypted inputs by a separate server
//! role (`secure`). Streams the text and ends with a timing summary.

pub mod report;

use crate::adapter::LoraAdapter;
use crate::demo;
use crate::device::DeviceChoice;
use crate::model::{fetch, load_model, ChatMessage, LoadedModel, LoraHook, Model, NoHook, Sampler};
use crate::plain_lora::PlainLoraHook;
use crate::progress::Progress;
use crate::secure::{self, SecureHook, SecureSession};
use crate::serve::remote::RemoteOptions;
use crate::stats::ms;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use report::{CheckReport, GenerateReport, HeReport, Stop, TopLogit};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The base model alone.
    Plain,
    /// The adapter applied in plaintext (the reference).
    Lora,
    /// The adapter applied by the server on encrypted inputs, with the PLL.
    Secure,
}

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub prompt: Option<String>,
    pub model: Option<PathBuf>,
    pub adapter: Option<PathBuf>,
    pub mode: Mode,
    pub max_tokens: usize,
    /// Seeded top-p sampling; greedy without it.
    pub seed: Option<u64>,
    pub top_p: f64,
    pub temperature: f64,
    pub pll: bool,
    pub device: DeviceChoice,
    /// Stream the answer to stdout while it is generated.
    pub stream: bool,
    /// After a `secure` run, compare its logits and tokens with the `lora` reference.
    pub check: bool,
    /// Report the K most likely tokens and their logits at every step (0: none).
    pub top_logits: usize,
    /// Secure mode against a `helora serve` server, which holds the adapter.
    pub remote: Option<RemoteOptions>,
}

pub fn run(options: &GenerateOptions) -> Result<GenerateReport> {
    // On a GPU the weights stay f32, as on the CPU: the two give the same tokens (up to
    // the order of the sums), and the default model is small.
    let device = crate::device::model_device(options.device)?;
    if options.max_tokens == 0 {
        bail!("--max-tokens must be at least 1");
    }
    // Everything the flags alone can refuse is refused before the model loads.
    if options.check && options.mode != Mode::Secure {
        bail!("--check compares a secure run with the lora reference: use --mode secure");
    }
    if options.remote.is_some() {
        if options.mode != Mode::Secure {
            bail!("--server runs secure mode (the server holds the adapter): drop --mode");
        }
        if options.adapter.is_some() {
            bail!("--server holds the adapter: drop --adapter (name the server's with --adapter-name)");
        }
        if options.check {
            bail!("--check needs the adapter in plaintext, which only the server holds: drop it with --server");
        }
    }
    match (options.mode, &options.adapter, &options.model) {
        (Mode::Plain, Some(_), _) => bail!(
            "--mode plain runs the base model alone and would ignore --adapter: drop it or \
             use --mode lora or secure"
        ),
        (Mode::Lora | Mode::Secure, None, Some(_)) if options.remote.is_none() => bail!(
            "--mode {} needs --adapter DIR (a PEFT adapter) for a model other than the \
             default (or --mode plain for the base model alone)",
            mode_name(options.mode)
        ),
        _ => {}
    }
    // The sampling values are checked even where greedy decoding ignores them.
    let top_p = Sampler::top_p(
        options.top_p,
        options.temperature,
        options.seed.unwrap_or(0),
    )?;
    let sampler = match options.seed {
        Some(_) => top_p,
        None => Sampler::greedy(),
    };
    if let Some(dir) = &options.adapter {
        if dir.is_file() {
            bail!(
                "--adapter {} is a file: expected a PEFT adapter directory (with \
                 adapter_config.json and adapter_model.safetensors)",
                dir.display()
            );
        }
        if !dir.is_dir() {
            match dir.exists() {
                true => bail!("--adapter {} is not a directory", dir.display()),
                false => bail!("--adapter {}: no such directory", dir.display()),
            }
        }
    }

    // A server that is down, or refuses the token, is known before the model loads.
    let mut session = match &options.remote {
        Some(remote) => Some(connect(remote)?),
        None => None,
    };
    let model_path = match &options.model {
        Some(path) => path.clone(),
        None => fetch::default_model_path(true)?,
    };
    let start = Instant::now();
    let LoadedModel {
        weights,
        tokenizer,
        chat,
        source,
    } = load_model(&model_path, &device, true)?;
    let model = Model::new(weights).with_context(|| format!("model {}", source.display()))?;
    let load_ms = ms(start.elapsed());

    let adapter = match options.mode {
        Mode::Plain => None,
        Mode::Secure if options.remote.is_some() => None,
        Mode::Lora | Mode::Secure => {
            let dir = match &options.adapter {
                Some(dir) => dir.clone(),
                None => demo::adapter_dir()?,
            };
            Some(LoraAdapter::load(&dir, model.config())?)
        }
    };

    let prompt = options
        .prompt
        .clone()
        .unwrap_or_else(|| demo::PROMPT.to_string());
    // A rendered template carries its own special tokens; a raw prompt gets the model's.
    let prompt_ids = match &chat {
        Some(template) => {
            tokenizer.encode_chat(&template.render(&[ChatMessage::new("user", &prompt)], true)?)?
        }
        None => tokenizer.encode(&prompt)?,
    };
    if prompt_ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let context = model.config().max_positions;
    if prompt_ids.len() > context {
        bail!(
            "the prompt's {} tokens exceed the model's context of {context} positions",
            prompt_ids.len()
        );
    }

    let mut plain_hook = None;
    if let Some(adapter) = &adapter {
        match options.mode {
            Mode::Secure => session = Some(SecureSession::start_on(adapter, options.pll, &device)?),
            _ => plain_hook = Some(PlainLoraHook::new(adapter, &device)?),
        }
    }

    let mut decoder = tokenizer.stream();
    let mut out = std::io::stdout().lock();
    let mut emit = |piece: &str| -> Result<()> {
        if options.stream {
            out.write_all(piece.as_bytes())
                .and_then(|_| out.flush())
                .context("writing the answer")?;
        }
        Ok(())
    };

    let mut cache = model.new_cache();
    let mut sampler = sampler;
    let mut tokens: Vec<u32> = Vec::new();
    let mut step_logits: Vec<Tensor> = Vec::new();
    let mut top_logits: Vec<Vec<TopLogit>> = Vec::new();
    let mut decode_times: Vec<Duration> = Vec::new();
    let mut he_prefill = None;
    let mut text_out = String::new();
    let prefill_ms;
    let he;
    let stop;
    {
        let mut secure_hook = session.as_mut().map(SecureSession::hook);
        let mut no_hook = NoHook;

        // An encrypted prefill takes seconds to minutes: show it move, site by site.
        if let Some(hook) = secure_hook.as_mut() {
            let config = model.config();
            let sites = hook.adapted_sites(config.arch, config.num_layers);
            hook.set_progress(Progress::start_long(
                &format!("encrypted prefill of {} prompt tokens", prompt_ids.len()),
                sites as u64,
                "adapted sites",
            ));
        }
        let start = Instant::now();
        let mut logits = model.forward(
            &prompt_ids,
            &mut cache,
            active_hook(&mut secure_hook, &mut plain_hook, &mut no_hook),
        )?;
        prefill_ms = ms(start.elapsed());
        if let Some(progress) = secure_hook.as_mut().and_then(SecureHook::take_progress) {
            progress.finish();
        }
        loop {
            let next = sampler.sample(&logits)?;
            if options.check {
                step_logits.push(logits.clone());
            }
            if options.top_logits > 0 {
                top_logits.push(report::top_k(&logits, options.top_logits)?);
            }
            if tokenizer.eos_ids().contains(&next) {
                tokens.push(next);
                stop = Stop::Eos;
                break;
            }
            tokens.push(next);
            let piece = decoder.push(next)?;
            text_out.push_str(&piece);
            emit(&piece)?;
            if tokens.len() >= options.max_tokens {
                stop = Stop::MaxTokens;
                break;
            }
            // Like transformers at max_length: the token just drawn has no position left to
            // be read at, so the answer ends here.
            if cache.len() >= context {
                stop = Stop::Context;
                break;
            }
            if he_prefill.is_none() {
                he_prefill = Some(stats_of(&secure_hook));
            }
            let start = Instant::now();
            logits = model.forward(
                &[next],
                &mut cache,
                active_hook(&mut secure_hook, &mut plain_hook, &mut no_hook),
            )?;
            decode_times.push(start.elapsed());
        }
        let rest = decoder.flush()?;
        text_out.push_str(&rest);
        emit(&rest)?;
        if options.stream {
            emit("\n")?;
        }
        he = secure_hook.map(|h| (h.stats, he_prefill.unwrap_or_default()));
    }

    let check = match (options.check, options.mode, &adapter) {
        (true, Mode::Secure, Some(adapter)) => Some(check_against_lora(
            &model,
            adapter,
            &device,
            &prompt_ids,
            &tokens,
            &step_logits,
        )?),
        (true, _, _) => {
            bail!("--check compares a secure run with the lora reference: use --mode secure")
        }
        _ => None,
    };

    let he = match (he, &session) {
        (Some((total, prefill)), Some(session)) => Some(
            HeReport::new(
                total,
                prefill,
                decode_times.len(),
                session.key_upload_bytes,
                ms(session.setup),
                session.client.manifest().projections.len(),
                session.server.settings(),
            )
            .with_network(session.server.network(), tokens.len()),
        ),
        _ => None,
    };
    Ok(GenerateReport::new(
        options,
        &source,
        adapter.as_ref().map(|a| a.source.clone()),
        prompt,
        prompt_ids,
        text_out,
        tokens,
        load_ms,
        prefill_ms,
        &decode_times,
        he,
        check,
        stop,
        (options.top_logits > 0).then_some(top_logits),
    ))
}

/// The secure session of a remote server: keys made (or found) and registered.
fn connect(remote: &RemoteOptions) -> Result<SecureSession> {
    let start = Instant::now();
    let connected = crate::serve::remote::connect(remote, &secure::parameters()?)?;
    Ok(SecureSession {
        client: connected.client,
        server: Box::new(connected.server),
        // The server knows the client by its token and key set, not by this id.
        id: helora::pll::ClientId(0),
        key_upload_bytes: connected.key_upload_bytes,
        setup: start.elapsed(),
    })
}

fn mode_name(mode: Mode) -> String {
    format!("{mode:?}").to_lowercase()
}

/// The hook of the run's mode.
fn active_hook<'a>(
    secure: &'a mut Option<SecureHook<'_>>,
    plain: &'a mut Option<PlainLoraHook>,
    none: &'a mut NoHook,
) -> &'a mut dyn LoraHook {
    match (secure, plain) {
        (Some(h), _) => h,
        (None, Some(h)) => h,
        (None, None) => none,
    }
}

/// The HE counters so far (the prefill's share, taken before the first decode step).
fn stats_of(hook: &Option<SecureHook>) -> secure::HeStats {
    hook.as_ref().map(|h| h.stats).unwrap_or_default()
}

/// Teacher-forces the `lora` reference over the secure run's tokens and compares logits
/// and greedy choices step by step.
fn check_against_lora(
    model: &Model,
    adapter: &LoraAdapter,
    device: &Device,
    prompt: &[u32],
    tokens: &[u32],
    secure_logits: &[Tensor],
) -> Result<CheckReport> {
    let mut hook = PlainLoraHook::new(adapter, device)?;
    let mut sequence = prompt.to_vec();
    sequence.extend(&tokens[..tokens.len().saturating_sub(1)]);
    let mut cache = model.new_cache();
    let all = model.forward_all(&sequence, &mut cache, &mut hook)?;
    let mut report = CheckReport::default();
    for (step, secure) in secure_logits.iter().enumerate() {
        let reference = all.get(prompt.len() - 1 + step)?;
        report.add_step(&reference.to_vec1::<f32>()?, &secure.to_vec1::<f32>()?);
    }
    Ok(report)
}
