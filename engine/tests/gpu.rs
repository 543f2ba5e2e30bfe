//! The base model on CUDA (feature `gpu`) against the same model on the CPU, through the
//! library: tiny-llama's weights (tests/data, so the test needs no download) with a random
//! adapter, in lora mode (the adapter on the device) and in secure mode (the projection's
//! input copied to the host for encryption, the decrypted delta added on the device; the
//! HE server on the CPU, or on the GPU beside the model).
//! Teacher-forced, so both devices see the same tokens: the prompt, then the CPU's greedy
//! choices one by one through the key/value cache; also several sequences in one batched
//! pass on the GPU against each alone on the CPU.
//!
//! Without a GPU each test checks that asking for the device is a clean error, prints
//! "skipped: <reason>" and passes, unless HELORA_REQUIRE_GPU=1.

mod common;

use anyhow::Result;
use candle_core::{Device, Tensor};
use helora::math::sampling;
use helora_engine::adapter::LoraAdapter;
use helora_engine::device::model_device;
use helora_engine::device::DeviceChoice;
use helora_engine::model::{hf, LoraHook, Model};
use helora_engine::plain_lora::PlainLoraHook;
use helora_engine::secure::SecureSession;
use std::path::PathBuf;

/// f32 on both devices: only the order of the sums differs.
const SAME_MODEL_TOLERANCE: f64 = 1e-4;
/// CKKS with the PLL off: the decrypted delta carries the scheme's noise (about 1e-5 on
/// the CPU), on top of the devices' order of sums.
const SECURE_TOLERANCE: f64 = 1e-3;

/// CUDA device 0, or None after checking the error is clean and printing why the test is
/// skipped (a failure under HELORA_REQUIRE_GPU=1).
fn cuda() -> Option<Device> {
    match model_device(DeviceChoice::Cuda) {
        Ok(device) => Some(device),
        Err(e) => {
            let reason = format!("{e:#}");
            assert!(reason.contains("CUDA"), "{reason}");
            common::skip_gpu(&reason);
            None
        }
    }
}

/// The engine's directory: cargo's, or HELORA_ENGINE_DIR where the test binary was copied
/// to another machine with the repository (scripts/gpu-run.sh).
fn engine_dir() -> PathBuf {
    std::env::var_os("HELORA_ENGINE_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn tiny_llama(device: &Device) -> Result<Model> {
    let dir = engine_dir().join("tests/data/tiny-llama");
    Model::new(hf::load_weights(&dir, device, false)?)
}

fn adapter(model: &Model) -> Result<LoraAdapter> {
    let targets = ["q_proj", "v_proj", "down_proj"].map(String::from);
    let mut rng = sampling::seeded_rng([7; 32]);
    LoraAdapter::random(model.config(), &targets, 4, &mut rng)
}

/// The logits after the prompt, then after each of `steps` greedy tokens (chosen by
/// `choose` from the logits so far), each `[vocab]` on the host.
fn decode(
    model: &Model,
    hook: &mut dyn LoraHook,
    prompt: &[u32],
    steps: usize,
    mut choose: impl FnMut(usize, &[f32]) -> u32,
) -> Result<Vec<Vec<f32>>> {
    let mut cache = model.new_cache();
    let mut logits: Vec<f32> = model.forward(prompt, &mut cache, hook)?.to_vec1()?;
    let mut all = vec![logits.clone()];
    for step in 0..steps {
        let next = choose(step, &logits);
        logits = model.forward(&[next], &mut cache, hook)?.to_vec1()?;
        all.push(logits.clone());
    }
    Ok(all)
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}

/// The CPU's logits in lora mode and its greedy tokens.
fn cpu_reference(prompt: &[u32], steps: usize) -> Result<(Vec<Vec<f32>>, Vec<u32>)> {
    let model = tiny_llama(&Device::Cpu)?;
    let mut hook = PlainLoraHook::new(&adapter(&model)?, &Device::Cpu)?;
    let mut tokens = Vec::new();
    let logits = decode(&model, &mut hook, prompt, steps, |_, l| {
        tokens.push(argmax(l));
        argmax(l)
    })?;
    Ok((logits, tokens))
}

const PROMPT: [u32; 6] = [1, 17, 42, 99, 128, 5];
const STEPS: usize = 8;

#[test]
fn lora_mode_on_the_gpu_matches_the_cpu() -> Result<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    let (want, tokens) = cpu_reference(&PROMPT, STEPS)?;
    let model = tiny_llama(&gpu)?;
    assert!(model.device().is_cuda());
    let mut hook = PlainLoraHook::new(&adapter(&model)?, &gpu)?;
    let mut greedy = Vec::new();
    let got = decode(&model, &mut hook, &PROMPT, STEPS, |step, l| {
        greedy.push(argmax(l));
        tokens[step]
    })?;
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        let err = relative_error(g, w);
        assert!(
            err < SAME_MODEL_TOLERANCE,
            "step {step}: relative error {err}"
        );
    }
    assert_eq!(greedy, tokens, "greedy tokens on the GPU and on the CPU");
    assert_adapter_moves_logits(&want[0], SAME_MODEL_TOLERANCE)
}

/// The adapter moves the prompt's logits (`adapted`) by more than ten times `tolerance`
/// (about 0.09 for this adapter), so a comparison at that tolerance has teeth.
fn assert_adapter_moves_logits(adapted: &[f32], tolerance: f64) -> Result<()> {
    let base = tiny_llama(&Device::Cpu)?;
    let mut no_adapter = helora_engine::model::NoHook;
    let plain = decode(&base, &mut no_adapter, &PROMPT, 0, |_, _| 0)?;
    let effect = relative_error(&plain[0], adapted);
    assert!(
        effect > 10.0 * tolerance,
        "the adapter moves the logits by only {effect}"
    );
    Ok(())
}

#[test]
fn secure_mode_on_the_gpu_matches_lora_on_the_cpu() -> Result<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    let (want, tokens) = cpu_reference(&PROMPT, STEPS)?;
    let model = tiny_llama(&gpu)?;
    let adapter = adapter(&model)?;
    let mut session = SecureSession::start(&adapter, false)?;
    let mut hook = session.hook();
    let got = decode(&model, &mut hook, &PROMPT, STEPS, |step, _| tokens[step])?;
    assert!(hook.stats.requests > 0, "the server was asked");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        let err = relative_error(g, w);
        assert!(err < SECURE_TOLERANCE, "step {step}: relative error {err}");
    }
    assert_adapter_moves_logits(&want[0], SECURE_TOLERANCE)
}

/// The HE server on the GPU too (the CUDA backend on its own stream of candle's context)
/// against secure mode entirely on the CPU. The two HE backends are bit-identical and the
/// PLL is off, so the runs differ only by the base model's devices and each encryption's
/// fresh noise.
#[test]
fn secure_mode_with_the_he_server_on_the_gpu_matches_the_cpu() -> Result<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    let cpu_model = tiny_llama(&Device::Cpu)?;
    let adapter = adapter(&cpu_model)?;
    let mut cpu_session = SecureSession::start(&adapter, false)?;
    assert_eq!(cpu_session.server.backend(), "cpu");
    let mut tokens = Vec::new();
    let want = decode(
        &cpu_model,
        &mut cpu_session.hook(),
        &PROMPT,
        STEPS,
        |_, l| {
            tokens.push(argmax(l));
            argmax(l)
        },
    )?;

    let model = tiny_llama(&gpu)?;
    let mut session = SecureSession::start_on(&adapter, false, &gpu)?;
    assert_eq!(
        session.server.backend(),
        "cuda",
        "the HE server is on the GPU"
    );
    let mut hook = session.hook();
    let mut greedy = Vec::new();
    let got = decode(&model, &mut hook, &PROMPT, STEPS, |step, l| {
        greedy.push(argmax(l));
        tokens[step]
    })?;
    assert!(hook.stats.requests > 0, "the server was asked");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        let err = relative_error(g, w);
        assert!(err < SECURE_TOLERANCE, "step {step}: relative error {err}");
    }
    assert_eq!(
        greedy, tokens,
        "greedy tokens of secure mode on the GPU and the CPU"
    );
    assert_adapter_moves_logits(&want[0], SECURE_TOLERANCE)
}

#[test]
fn the_model_stays_on_the_device() -> Result<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    let model = tiny_llama(&gpu)?;
    let mut cache = model.new_cache();
    let logits: Tensor = model.forward(&PROMPT, &mut cache, &mut helora_engine::model::NoHook)?;
    assert!(logits.device().is_cuda());
    assert_eq!(cache.len(), PROMPT.len());
    Ok(())
}

/// Three sequences of different prompt lengths decoded together on the GPU (lora mode, the
/// batched forward pass: per-sequence caches, one hook call per site for all rows) against
/// each sequence alone on the CPU.
#[test]
fn a_batch_on_the_gpu_matches_each_sequence_on_the_cpu() -> Result<()> {
    let Some(gpu) = cuda() else { return Ok(()) };
    let prompts: [&[u32]; 3] = [&PROMPT, &PROMPT[2..3], &[9, 8, 7, 6, 5, 4, 3, 2]];
    let mut want = Vec::new();
    let mut tokens = Vec::new();
    for prompt in prompts {
        let (logits, greedy) = cpu_reference(prompt, 3)?;
        want.push(logits);
        tokens.push(greedy);
    }
    let model = tiny_llama(&gpu)?;
    let mut hook = PlainLoraHook::new(&adapter(&model)?, &gpu)?;
    let mut caches: Vec<_> = prompts.iter().map(|_| model.new_cache()).collect();
    let mut logits = model.forward_batch(&prompts, &mut caches, &mut hook)?;
    for step in 0..=3 {
        assert!(logits.device().is_cuda());
        let rows: Vec<Vec<f32>> = logits.to_vec2()?;
        for (s, row) in rows.iter().enumerate() {
            let err = relative_error(row, &want[s][step]);
            assert!(
                err < SAME_MODEL_TOLERANCE,
                "sequence {s} step {step}: relative error {err}"
            );
        }
        if step == 3 {
            break;
        }
        // Teacher-forced with each sequence's CPU greedy tokens.
        let next: Vec<[u32; 1]> = tokens.iter().map(|t| [t[step]]).collect();
        let next: Vec<&[u32]> = next.iter().map(|t| t.as_slice()).collect();
        logits = model.forward_batch(&next, &mut caches, &mut hook)?;
    }
    Ok(())
}
