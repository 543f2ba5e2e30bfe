//! The real model end to end: SmolLM2-135M-Instruct (the default model, fetched into the
//! cache on first use; a failed fetch fails these tests) against Hugging Face transformers'
//! logits and greedy runs (engine/tests/data/smollm2, made by
//! scripts/reference/make_reference.py), and `generate` in its three modes with the demo
//! adapter (lora mode against PEFT): secure decoding with the PLL off gives exactly the lora tokens, and with the
//! PLL on its effect is measured.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use helora_engine::adapter::LoraAdapter;
use helora_engine::demo;
use helora_engine::device::DeviceChoice;
use helora_engine::generate::{self, GenerateOptions, Mode};
use helora_engine::model::{fetch, load_model, KvCache, LoraHook, Model, NoHook};
use helora_engine::plain_lora::PlainLoraHook;
use std::path::PathBuf;
use std::sync::Mutex;

/// The 135M model is loaded by several tests; one at a time keeps memory and the two
/// cores for the test that runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/smollm2")
        .join(name)
}

fn reference() -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(data("reference.json"))?;
    Ok(serde_json::from_str(&text)?)
}

fn ids(value: &serde_json::Value) -> Vec<u32> {
    value
        .as_array()
        .expect("an id list")
        .iter()
        .map(|v| v.as_u64().expect("an id") as u32)
        .collect()
}

fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut e, mut n) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        e += f64::from(g - w).powi(2);
        n += f64::from(w).powi(2);
    }
    (e / n).sqrt()
}

#[test]
fn smollm2_matches_transformers() -> Result<()> {
    let _guard = ONE_AT_A_TIME.lock();
    let reference = reference()?;
    let logits = candle_core::safetensors::load(data("reference.safetensors"), &Device::Cpu)?;
    let path = fetch::default_model_path(false)?;
    let loaded = load_model(&path, &Device::Cpu, false)?;
    let chat = loaded
        .chat
        .as_ref()
        .context("SmolLM2 has a chat template")?;
    let tokenizer = loaded.tokenizer;
    let model = Model::new(loaded.weights)?;
    let prompts = reference["prompts"].as_array().context("prompts")?;
    assert!(prompts.len() >= 3);
    for case in prompts {
        let prompt = case["prompt"].as_str().context("prompt")?;
        let text = chat.render(
            &[helora_engine::model::ChatMessage::new("user", prompt)],
            true,
        )?;
        assert_eq!(text, case["chat_text"].as_str().context("chat_text")?);
        let prompt_ids = tokenizer.encode_chat(&text)?;
        assert_eq!(prompt_ids, ids(&case["token_ids"]), "{prompt}");

        let mut cache = model.new_cache();
        let got = model.forward(&prompt_ids, &mut cache, &mut NoHook)?;
        let name = case["last_logits_tensor"].as_str().context("tensor name")?;
        let want: Vec<f32> = logits[name].to_vec1()?;
        let err = relative_error(&got.to_vec1()?, &want);
        assert!(err < 1e-3, "{prompt}: relative logit error {err}");

        // Greedy continuation with the KV cache, token for token.
        let want_ids = ids(&case["greedy_ids"]);
        let generated = greedy(&model, &mut cache, got, want_ids.len(), &mut NoHook)?;
        assert_eq!(generated, want_ids, "{prompt}");
        assert_eq!(
            tokenizer.decode(&generated)?.trim_end_matches("<|im_end|>"),
            case["greedy_text"]
                .as_str()
                .context("greedy_text")?
                .trim_end_matches("<|im_end|>")
        );
    }
    Ok(())
}

#[test]
fn lora_mode_matches_peft() -> Result<()> {
    let _guard = ONE_AT_A_TIME.lock();
    let text = std::fs::read_to_string(data("lora_reference.json"))?;
    let reference: serde_json::Value = serde_json::from_str(&text)?;
    let logits = candle_core::safetensors::load(data("lora_reference.safetensors"), &Device::Cpu)?;
    let loaded = load_model(&fetch::default_model_path(false)?, &Device::Cpu, false)?;
    let model = Model::new(loaded.weights)?;
    let adapter_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../adapters/smollm2-nimbus");
    let adapter = LoraAdapter::load(&adapter_dir, model.config())?;
    let mut hook = PlainLoraHook::new(&adapter, &Device::Cpu)?;
    let prompts = reference["prompts"].as_array().context("prompts")?;
    assert!(!prompts.is_empty());
    for case in prompts {
        let prompt_ids = ids(&case["token_ids"]);
        let mut cache = model.new_cache();
        let got = model.forward(&prompt_ids, &mut cache, &mut hook)?;
        for (tensor, adapted) in [
            ("last_logits_tensor", true),
            ("base_last_logits_tensor", false),
        ] {
            let want: Vec<f32> = logits[case[tensor].as_str().context("tensor")?].to_vec1()?;
            let err = relative_error(&got.to_vec1()?, &want);
            if adapted {
                assert!(err < 1e-3, "adapted logits: relative error {err}");
            } else {
                // The adapter really moves the logits (the check has teeth).
                assert!(err > 1e-2, "adapted vs base logits differ by only {err}");
            }
        }
        let want_ids = ids(&case["greedy_ids"]);
        let generated = greedy(&model, &mut cache, got, want_ids.len(), &mut hook)?;
        assert_eq!(generated, want_ids);
    }
    Ok(())
}

/// Greedy decoding with the KV cache from the prompt's `logits`: at most `max` tokens,
/// stopping after SmolLM2's end-of-sequence token (id 2, `<|im_end|>`).
fn greedy(
    model: &Model,
    cache: &mut KvCache,
    mut logits: Tensor,
    max: usize,
    hook: &mut dyn LoraHook,
) -> Result<Vec<u32>> {
    let mut generated = Vec::new();
    for _ in 0..max {
        let next = argmax(&logits)?;
        generated.push(next);
        if next == 2 {
            break;
        }
        logits = model.forward(&[next], cache, hook)?;
    }
    Ok(generated)
}

fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(0)?.to_scalar::<u32>()?)
}

fn options(mode: Mode, pll: bool, check: bool, max_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        prompt: None,
        model: None,
        adapter: None,
        mode,
        max_tokens,
        seed: None,
        top_p: 0.9,
        temperature: 0.7,
        pll,
        device: DeviceChoice::Cpu,
        stream: false,
        check,
        top_logits: 0,
        remote: None,
    }
}

#[test]
fn the_demo_adapter_changes_the_answer_and_secure_decoding_equals_lora() -> Result<()> {
    let _guard = ONE_AT_A_TIME.lock();
    let tokens = 24;
    let plain = generate::run(&options(Mode::Plain, false, false, tokens))?;
    let lora = generate::run(&options(Mode::Lora, false, false, tokens))?;
    let secure = generate::run(&options(Mode::Secure, false, true, tokens))?;

    // The adapter knows the domain; the base model does not.
    assert_ne!(plain.tokens, lora.tokens);
    assert!(lora.text.contains("E4"), "adapted answer: {}", lora.text);
    // With the PLL off the encrypted path reproduces the plaintext adapter exactly, token
    // for token, with logits within CKKS precision.
    assert_eq!(secure.tokens, lora.tokens);
    assert_eq!(secure.text, lora.text);
    let check = secure.check.as_ref().context("--check report")?;
    assert!(check.tokens_match);
    assert_eq!(check.steps, secure.tokens.len());
    assert!(
        check.mean_relative_logit_error < 1e-4,
        "{}",
        check.mean_relative_logit_error
    );

    // The report: HE share and bytes per token of the 30 q/v input sites.
    let he = secure.he.as_ref().context("HE report")?;
    assert_eq!(he.adapted_projections, 60);
    assert_eq!(he.requests_per_token, 30.0);
    assert!(secure.he_eval_ms.is_some_and(|v| v > 0.0));
    assert!(secure.upload_bytes_per_token.is_some_and(|v| v > 0.0));
    assert!(secure.download_bytes_per_token.is_some_and(|v| v > 0.0));
    assert!(plain.he.is_none() && lora.he.is_none());
    Ok(())
}

#[test]
fn the_pll_effect_on_logits_is_reported() -> Result<()> {
    let _guard = ONE_AT_A_TIME.lock();
    let secure = generate::run(&options(Mode::Secure, true, true, 8))?;
    let check = secure.check.as_ref().context("--check report")?;
    let he = secure.he.as_ref().context("HE report")?;
    assert!(he.pll_noise > 0.0 && he.pll_flooding);
    assert_eq!(check.steps, secure.tokens.len());
    // The noise on B moves the logits (more than CKKS alone does) but leaves them usable.
    assert!(
        check.max_abs_logit_diff > 1e-3,
        "{}",
        check.max_abs_logit_diff
    );
    assert!(check.mean_relative_logit_error < 0.2);
    Ok(())
}

/// The demo adapter with its lora_alpha replaced, in a fresh directory.
fn demo_adapter_with_alpha(alpha: &str) -> Result<PathBuf> {
    let demo = demo::adapter_dir()?;
    let dir = std::env::temp_dir().join(format!(
        "helora-generate-alpha-{alpha}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(
        demo.join("adapter_model.safetensors"),
        dir.join("adapter_model.safetensors"),
    )?;
    let config = std::fs::read_to_string(demo.join("adapter_config.json"))?;
    let mut value: serde_json::Value = serde_json::from_str(&config)?;
    value["lora_alpha"] = serde_json::from_str(alpha)?;
    std::fs::write(dir.join("adapter_config.json"), value.to_string())?;
    Ok(dir)
}

/// The lora path with, at every adapted site, the secure deltas computed beside the
/// plaintext ones: the worst relative error of the secure deltas is kept.
struct CompareDeltas<'a> {
    secure: helora_engine::secure::SecureHook<'a>,
    plain: PlainLoraHook,
    worst: f64,
}

impl LoraHook for CompareDeltas<'_> {
    fn wants(&self, site: helora_engine::model::InputSite) -> bool {
        self.plain.wants(site)
    }

    fn deltas(
        &mut self,
        site: helora_engine::model::InputSite,
        x: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let secure = self.secure.deltas(site, x)?;
        let plain = self.plain.deltas(site, x)?;
        for (s, p) in secure.iter().zip(&plain) {
            if let (Some(s), Some(p)) = (s, p) {
                let (s, p): (Vec<f32>, Vec<f32>) =
                    (s.flatten_all()?.to_vec1()?, p.flatten_all()?.to_vec1()?);
                self.worst = self.worst.max(relative_error(&s, &p));
            }
        }
        Ok(plain)
    }
}

#[test]
fn secure_deltas_stay_exact_where_activations_outgrow_the_modulus() -> Result<()> {
    let _guard = ONE_AT_A_TIME.lock();
    // α = 16000 (1000× the demo's; the case, where --check found 1 of 12 steps
    // agreeing). At this α the model itself is chaotic: in plaintext, α × (1 + 1e-6)
    // changes the first token, so no approximate path can agree token for token, and the
    // disagreement is not a wrap (on this prompt the deltas stay inside the modulus).
    // What the encrypted path owes is exact deltas: compared at every site of the prompt
    // (measured 3.9e-5 relative; the input scaling costs precision only where the bound
    // asks for a shift).
    let loaded = load_model(&fetch::default_model_path(false)?, &Device::Cpu, false)?;
    let model = Model::new(loaded.weights)?;
    let dir = demo_adapter_with_alpha("16000")?;
    let adapter = LoraAdapter::load(&dir, model.config())?;
    let mut session = helora_engine::secure::SecureSession::start(&adapter, false)?;
    let mut hook = CompareDeltas {
        secure: session.hook(),
        plain: PlainLoraHook::new(&adapter, &Device::Cpu)?,
        worst: 0.0,
    };
    let chat = loaded
        .chat
        .as_ref()
        .context("SmolLM2 has a chat template")?;
    let text = chat.render(
        &[helora_engine::model::ChatMessage::new("user", demo::PROMPT)],
        true,
    )?;
    let prompt = loaded.tokenizer.encode_chat(&text)?;
    let mut cache = model.new_cache();
    model.forward(&prompt, &mut cache, &mut hook)?;
    let applications = hook.secure.stats.applications;
    assert_eq!(applications, prompt.len() as u64 * 60);
    assert!(
        hook.worst < 1e-3,
        "secure deltas: relative error {}",
        hook.worst
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn bad_model_and_adapter_paths_are_clear_errors() {
    let _guard = ONE_AT_A_TIME.lock();
    let mut o = options(Mode::Plain, false, false, 2);
    o.model = Some(PathBuf::from("/nonexistent/model.gguf"));
    let e = format!("{:#}", generate::run(&o).expect_err("refused"));
    assert!(e.contains("/nonexistent/model.gguf"), "{e}");

    // Another model needs its own adapter.
    let mut o = options(Mode::Lora, false, false, 2);
    o.model = fetch::default_model_path(false).ok();
    let e = format!("{:#}", generate::run(&o).expect_err("refused"));
    assert!(e.contains("--adapter"), "{e}");

    let mut o = options(Mode::Secure, false, false, 2);
    o.adapter = Some(PathBuf::from("/nonexistent/adapter"));
    let e = format!("{:#}", generate::run(&o).expect_err("refused"));
    assert!(e.contains("/nonexistent/adapter"), "{e}");

    let o = GenerateOptions {
        max_tokens: 0,
        ..options(Mode::Plain, false, false, 1)
    };
    assert!(generate::run(&o).is_err());

    // Conflicting or bad flags are refused before the model is looked for (the missing
    // model would be the error otherwise).
    for (o, expect) in [
        (options(Mode::Plain, false, true, 2), "--check"),
        (
            GenerateOptions {
                top_p: 5.0,
                ..options(Mode::Plain, false, false, 2)
            },
            "top-p",
        ),
        (
            GenerateOptions {
                adapter: Some(PathBuf::from("/nonexistent/adapter")),
                ..options(Mode::Lora, false, false, 2)
            },
            "/nonexistent/adapter",
        ),
    ] {
        let o = GenerateOptions {
            model: Some(PathBuf::from("/nonexistent/model.gguf")),
            ..o
        };
        let e = format!("{:#}", generate::run(&o).expect_err("refused"));
        assert!(e.contains(expect) && !e.contains("model.gguf"), "{e}");
    }
}
