//! PEFT adapters and the secure roles, on a small Llama-shaped configuration: adapter files
//! written here, factors against the PEFT formula, secure deltas against the plaintext
//! hook (f64-bounded), and bad adapters and requests refused with clear errors.

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use helora::pll::{ClientId, PllSettings};
use helora_engine::adapter::LoraAdapter;
use helora_engine::model::{Architecture, InputSite, LoraHook, ModelConfig};
use helora_engine::plain_lora::PlainLoraHook;
use helora_engine::secure::{self, Request, SecureClient, SecureHook, SecureServer};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn config() -> ModelConfig {
    ModelConfig {
        arch: Architecture::Llama,
        vocab_size: 64,
        hidden_size: 96,
        intermediate_size: 160,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 24,
        rotary_dim: 24,
        rope_theta: 10000.0,
        rms_eps: 1e-5,
        max_positions: 128,
        tie_embeddings: true,
        qkv_bias: false,
    }
}

/// A fresh empty directory under the system temp dir.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "helora-secure-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const Q: &str = "q_proj";
const V: &str = "v_proj";
const ATTENTION: &[&str] = &["q_proj", "k_proj", "v_proj"];

/// Writes a PEFT adapter (r, alpha, q_proj and v_proj of every layer) with random factors
/// and returns the directory and the raw PEFT tensors by name.
fn write_adapter(
    rank: usize,
    alpha: f64,
    extra_config: &str,
    rng: &mut impl Rng,
) -> (PathBuf, HashMap<String, Tensor>) {
    let cfg = config();
    let dir = temp_dir("adapter");
    let mut tensors = HashMap::new();
    for layer in 0..cfg.num_layers {
        for (module, d_out) in [(Q, cfg.q_dim()), (V, cfg.kv_dim())] {
            let prefix = format!("base_model.model.model.layers.{layer}.self_attn.{module}");
            let a: Vec<f32> = (0..rank * cfg.hidden_size)
                .map(|_| rng.random_range(-0.2..0.2))
                .collect();
            let b: Vec<f32> = (0..d_out * rank)
                .map(|_| rng.random_range(-0.05..0.05))
                .collect();
            let a = Tensor::from_vec(a, (rank, cfg.hidden_size), &Device::Cpu).expect("A");
            let b = Tensor::from_vec(b, (d_out, rank), &Device::Cpu).expect("B");
            tensors.insert(format!("{prefix}.lora_A.weight"), a);
            tensors.insert(format!("{prefix}.lora_B.weight"), b);
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("adapter_model.safetensors"))
        .expect("writing the adapter");
    std::fs::write(
        dir.join("adapter_config.json"),
        format!(
            r#"{{"peft_type": "LORA", "r": {rank}, "lora_alpha": {alpha},
               "target_modules": ["q_proj", "v_proj"], "fan_in_fan_out": false,
               "bias": "none"{extra_config}}}"#
        ),
    )
    .expect("writing the adapter config");
    (dir, tensors)
}

fn random_input(tokens: usize, rng: &mut impl Rng) -> Tensor {
    let x: Vec<f32> = (0..tokens * config().hidden_size)
        .map(|_| rng.random_range(-2.0..2.0))
        .collect();
    Tensor::from_vec(x, (tokens, config().hidden_size), &Device::Cpu).expect("x")
}

fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    t.to_dtype(DType::F64)
        .and_then(|t| t.to_vec2())
        .expect("a matrix")
}

fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
    let (g, w) = (rows(got), rows(want));
    let (mut e, mut n) = (0.0, 0.0);
    for (gr, wr) in g.iter().zip(&w) {
        for (a, b) in gr.iter().zip(wr) {
            e += (a - b).powi(2);
            n += b * b;
        }
    }
    (e / n).sqrt()
}

#[test]
fn adapter_factors_follow_the_peft_formula() -> Result<()> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, raw) = write_adapter(4, 8.0, "", &mut rng);
    let adapter = LoraAdapter::load(&dir, &config())?;
    assert_eq!(adapter.rank, 4);
    assert_eq!(adapter.scaling, 2.0);
    assert_eq!(adapter.projection_count(), 4);
    let x = random_input(3, &mut rng);
    let mut hook = PlainLoraHook::new(&adapter, &Device::Cpu)?;
    let site = InputSite {
        layer: 1,
        modules: ATTENTION,
    };
    assert!(hook.wants(site));
    let deltas = hook.deltas(site, &x)?;
    assert!(deltas[1].is_none(), "k_proj is not adapted");
    for (k, module) in [(0, Q), (2, V)] {
        let prefix = format!("base_model.model.model.layers.1.self_attn.{module}");
        let a = rows(&raw[&format!("{prefix}.lora_A.weight")]);
        let b = rows(&raw[&format!("{prefix}.lora_B.weight")]);
        // PEFT: delta = scaling · B·(A·x) for each token x.
        let want: Vec<f32> = rows(&x)
            .iter()
            .flat_map(|x| {
                let ax: Vec<f64> = a
                    .iter()
                    .map(|row| row.iter().zip(x).map(|(p, q)| p * q).sum())
                    .collect();
                b.iter()
                    .map(|row| 2.0 * row.iter().zip(&ax).map(|(p, q)| p * q).sum::<f64>())
                    .map(|v| v as f32)
                    .collect::<Vec<_>>()
            })
            .collect();
        let want = Tensor::from_vec(want, (3, b.len()), &Device::Cpu)?;
        let got = deltas[k].as_ref().expect("adapted");
        assert!(relative_error(got, &want) < 1e-5, "{module}");
    }
    Ok(())
}

/// Server and client for the adapter in `dir`, registered.
fn roles(dir: &Path, settings: PllSettings) -> Result<(SecureClient, SecureServer)> {
    let adapter = LoraAdapter::load(dir, &config())?;
    let params = secure::parameters()?;
    let mut server = SecureServer::new(&params, &adapter, settings)?;
    let (client, keys) = SecureClient::new(&params, server.manifest().clone())?;
    server.register_client(ClientId(7), &keys.eval_keys, &keys.public_key)?;
    Ok((client, server))
}

/// Largest relative error of the secure deltas against the plaintext hook over both
/// layers, for a 2-token input.
fn secure_error(settings: PllSettings) -> Result<f64> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, _) = write_adapter(8, 16.0, "", &mut rng);
    let (mut client, mut server) = roles(&dir, settings)?;
    let adapter = LoraAdapter::load(&dir, &config())?;
    let mut plain = PlainLoraHook::new(&adapter, &Device::Cpu)?;
    let mut hook = SecureHook::new(&mut client, &mut server, ClientId(7));
    let mut worst: f64 = 0.0;
    for layer in 0..2 {
        let site = InputSite {
            layer,
            modules: ATTENTION,
        };
        let x = random_input(2, &mut rng);
        let want = plain.deltas(site, &x)?;
        let got = hook.deltas(site, &x)?;
        assert_eq!(got.len(), 3);
        assert!(got[1].is_none());
        for k in [0, 2] {
            let (g, w) = (
                got[k].as_ref().expect("q/v"),
                want[k].as_ref().expect("q/v"),
            );
            assert_eq!(g.dims(), w.dims());
            worst = worst.max(relative_error(g, w));
        }
    }
    // Two layers × two tokens, one request each carrying q and v.
    assert_eq!(hook.stats.requests, 4);
    assert_eq!(hook.stats.applications, 8);
    assert!(hook.stats.upload_bytes > 0 && hook.stats.download_bytes > 0);
    Ok(worst)
}

#[test]
fn secure_deltas_match_plaintext_without_pll() -> Result<()> {
    let err = secure_error(PllSettings::off())?;
    // CKKS at scale 2^40 with a compact reply: a relative error around 1e-5.
    assert!(err < 1e-3, "relative error {err}");
    Ok(())
}

#[test]
fn secure_deltas_carry_the_pll_noise() -> Result<()> {
    let settings = PllSettings::default();
    let err = secure_error(settings.clone())?;
    // The PLL perturbs B by σ·rms(B) per query: a relative error of order σ = 0.1.
    assert!(
        err > settings.noise / 10.0 && err < settings.noise * 5.0,
        "relative error {err} with σ = {}",
        settings.noise
    );
    Ok(())
}

/// Relative error of the secure q and v deltas against the plaintext hook for an adapter
/// with `alpha` and 2 tokens of activations uniform in ±`amplitude`.
fn edge_error(alpha: f64, amplitude: f32, settings: PllSettings) -> Result<f64> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, _) = write_adapter(8, alpha, "", &mut rng);
    let (mut client, mut server) = roles(&dir, settings)?;
    let adapter = LoraAdapter::load(&dir, &config())?;
    let mut plain = PlainLoraHook::new(&adapter, &Device::Cpu)?;
    let mut hook = SecureHook::new(&mut client, &mut server, ClientId(7));
    let site = InputSite {
        layer: 1,
        modules: ATTENTION,
    };
    let x = (random_input(2, &mut rng) * f64::from(amplitude / 2.0))?;
    let (want, got) = (plain.deltas(site, &x)?, hook.deltas(site, &x)?);
    let mut worst: f64 = 0.0;
    for k in [0, 2] {
        let (g, w) = (
            got[k].as_ref().expect("q/v"),
            want[k].as_ref().expect("q/v"),
        );
        worst = worst.max(relative_error(g, w));
    }
    Ok(worst)
}

#[test]
fn secure_deltas_stay_exact_at_the_edges_of_the_admissible_range() -> Result<()> {
    // lora_alpha up to its bound (1e6) and activations up to 1e4: far beyond the 2^9 the
    // reply's modulus holds without the client's normalisation.
    for (alpha, amplitude) in [(16.0, 1e4), (16000.0, 2.0), (16000.0, 1e4), (1e6, 1e4)] {
        let err = edge_error(alpha, amplitude, PllSettings::off())?;
        assert!(
            err < 1e-3,
            "α {alpha}, |x| ≤ {amplitude}: relative error {err}"
        );
    }
    let settings = PllSettings::default();
    let err = edge_error(1e6, 1e4, settings.clone())?;
    assert!(
        err < settings.noise * 5.0,
        "α 1e6, |x| ≤ 1e4 with the PLL: relative error {err}"
    );
    Ok(())
}

#[test]
fn a_wrapped_reply_is_refused_not_returned() -> Result<()> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, _) = write_adapter(8, 1e6, "", &mut rng);
    let adapter = LoraAdapter::load(&dir, &config())?;
    let params = secure::parameters()?;
    let mut server = SecureServer::new(&params, &adapter, PllSettings::off())?;
    // A server that understates its bound: the client's normalisation falls short.
    let mut manifest = server.manifest().clone();
    for p in &mut manifest.projections {
        p.bound_log2 -= 40;
    }
    let (mut client, keys) = SecureClient::new(&params, manifest)?;
    server.register_client(ClientId(7), &keys.eval_keys, &keys.public_key)?;
    let x = vec![1e4f32; config().hidden_size];
    let request = client.encrypt(0, &[Q], &x)?;
    let reply = server.apply(ClientId(7), &request)?;
    let e = format!(
        "{:#}",
        client.decrypt(&request, &reply).expect_err("wrapped")
    );
    assert!(e.contains("wrapped") && e.contains("layer 0 q_proj"), "{e}");
    Ok(())
}

fn load_error(dir: &Path) -> String {
    match LoraAdapter::load(dir, &config()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_adapters_are_refused_with_the_file_named() {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let missing = temp_dir("missing");
    let e = load_error(&missing);
    assert!(e.contains("adapter_config.json"), "{e}");

    for (extra, expect) in [
        (r#", "use_dora": true"#, "DoRA"),
        (r#", "modules_to_save": ["lm_head"]"#, "modules_to_save"),
    ] {
        let (dir, _) = write_adapter(4, 8.0, extra, &mut rng);
        let e = load_error(&dir);
        assert!(
            e.contains(expect) && e.contains("adapter_config.json"),
            "{e}"
        );
    }

    // Wrong rank in the config: the tensors' shapes no longer fit.
    let (dir, _) = write_adapter(4, 8.0, "", &mut rng);
    let text = std::fs::read_to_string(dir.join("adapter_config.json")).expect("config");
    std::fs::write(
        dir.join("adapter_config.json"),
        text.replace(r#""r": 4"#, r#""r": 2"#),
    )
    .expect("config");
    let e = load_error(&dir);
    assert!(
        e.contains("adapter_model.safetensors") && e.contains("shape"),
        "{e}"
    );

    // A scaling so large that the deltas would overflow to NaN.
    std::fs::write(
        dir.join("adapter_config.json"),
        text.replace(r#""lora_alpha": 8"#, r#""lora_alpha": 1e308"#),
    )
    .expect("config");
    let e = load_error(&dir);
    assert!(
        e.contains("lora_alpha") && e.contains("adapter_config.json"),
        "{e}"
    );

    // A target module this architecture does not have.
    std::fs::write(
        dir.join("adapter_config.json"),
        text.replace("v_proj\"]", "query_key_value\"]"),
    )
    .expect("config");
    let e = load_error(&dir);
    assert!(e.contains("query_key_value"), "{e}");

    // Truncated weights and malformed JSON.
    let (dir, _) = write_adapter(4, 8.0, "", &mut rng);
    let weights = dir.join("adapter_model.safetensors");
    let bytes = std::fs::read(&weights).expect("weights");
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).expect("weights");
    let e = load_error(&dir);
    assert!(e.contains("adapter_model.safetensors"), "{e}");
    std::fs::write(dir.join("adapter_config.json"), "{\"r\": ").expect("config");
    let e = load_error(&dir);
    assert!(e.contains("adapter_config.json"), "{e}");

    // A NaN in one factor: the file, the layer, the module and the entry are named.
    let (dir, mut raw) = write_adapter(4, 8.0, "", &mut rng);
    let name = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";
    let b = raw.get(name).expect("lora_B");
    let mut values: Vec<f32> = b.flatten_all().and_then(|t| t.to_vec1()).expect("values");
    values[5] = f32::NAN;
    let nan = Tensor::from_vec(values, b.dims(), &Device::Cpu).expect("tensor");
    raw.insert(name.to_string(), nan);
    candle_core::safetensors::save(&raw, dir.join("adapter_model.safetensors")).expect("save");
    let e = load_error(&dir);
    assert!(
        e.contains("adapter_model.safetensors")
            && e.contains("layer 1 v_proj lora_B")
            && e.contains("entry (1, 1) is NaN"),
        "{e}"
    );

    // Weights that are a FIFO: refused, not opened (opening would block).
    std::fs::remove_file(dir.join("adapter_model.safetensors")).expect("rm");
    let status = std::process::Command::new("mkfifo")
        .arg(dir.join("adapter_model.safetensors"))
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let e = load_error(&dir);
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn the_server_refuses_bad_requests() -> Result<()> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, _) = write_adapter(4, 8.0, "", &mut rng);
    let (mut client, mut server) = roles(&dir, PllSettings::off())?;
    let x: Vec<f32> = (0..config().hidden_size)
        .map(|i| i as f32 / 100.0)
        .collect();
    let good = client.encrypt(0, &[Q, V], &x)?;

    // Unknown client, unadapted module, missing input, garbage bytes.
    assert!(server.apply(ClientId(99), &good).is_err());
    let unadapted = Request {
        layer: 0,
        modules: vec!["k_proj".into()],
        inputs: good.inputs.clone(),
        scaling: Default::default(),
    };
    let e = format!(
        "{:#}",
        server
            .apply(ClientId(7), &unadapted)
            .err()
            .expect("refused")
    );
    assert!(e.contains("k_proj"), "{e}");
    let empty = Request {
        layer: 0,
        modules: vec![Q.into()],
        inputs: vec![],
        scaling: Default::default(),
    };
    assert!(server.apply(ClientId(7), &empty).is_err());
    let mut garbage = good.inputs[0].clone();
    garbage.truncate(garbage.len() / 3);
    let truncated = Request {
        layer: 0,
        modules: vec![Q.into()],
        inputs: vec![garbage],
        scaling: Default::default(),
    };
    assert!(server.apply(ClientId(7), &truncated).is_err());
    // The client refuses to encrypt for what the server does not adapt.
    assert!(client.encrypt(5, &[Q], &x).is_err());
    assert!(client.encrypt(0, &[Q], &x[..10]).is_err());
    // One ciphertext too many for the projection's one input chunk.
    let two = Request {
        layer: 0,
        modules: vec![Q.into()],
        inputs: vec![good.inputs[0].clone(), good.inputs[0].clone()],
        scaling: Default::default(),
    };
    let e = format!(
        "{:#}",
        server.apply(ClientId(7), &two).err().expect("refused")
    );
    assert!(e.contains("carries 2 input ciphertexts"), "{e}");
    // And the good request still works afterwards.
    let reply = server.apply(ClientId(7), &good)?;
    let ys = client.decrypt(&good, &reply)?;
    assert_eq!(ys.len(), 2);
    assert_eq!(ys[0].len(), config().q_dim());
    assert_eq!(ys[1].len(), config().kv_dim());
    Ok(())
}

/// A server that loses the last reply of every batch.
struct Lossy(SecureServer);

impl secure::Serve for Lossy {
    fn manifest(&self) -> &secure::Manifest {
        self.0.manifest()
    }
    fn settings(&self) -> &PllSettings {
        self.0.settings()
    }
    fn backend(&self) -> &'static str {
        "lossy"
    }
    fn register_client(&mut self, id: ClientId, eval_keys: &[u8], public_key: &[u8]) -> Result<()> {
        self.0.register_client(id, eval_keys, public_key)
    }
    fn apply_batch(
        &mut self,
        client: ClientId,
        requests: &[Request],
    ) -> Result<Vec<secure::Reply>> {
        let mut replies = self.0.apply_batch(client, requests)?;
        replies.pop();
        Ok(replies)
    }
}

#[test]
fn a_missing_reply_is_an_error() -> Result<()> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, _) = write_adapter(4, 8.0, "", &mut rng);
    let (mut client, server) = roles(&dir, PllSettings::off())?;
    let mut server = Lossy(server);
    let mut hook = SecureHook::new(&mut client, &mut server, ClientId(7));
    let site = InputSite {
        layer: 0,
        modules: ATTENTION,
    };
    let err = hook
        .deltas(site, &random_input(3, &mut rng))
        .expect_err("2 replies for 3 requests");
    assert!(
        err.to_string().contains("answered 2 of 3 requests"),
        "{err}"
    );
    Ok(())
}

/// What needs no decoding is checked before anything is decoded: refusals name the limit,
/// not a decoding failure, even for garbage bytes.
#[test]
fn limits_are_checked_before_decoding() -> Result<()> {
    let mut rng = rand_chacha::ChaCha20Rng::from_os_rng();
    let (dir, _) = write_adapter(4, 8.0, "", &mut rng);
    let settings = PllSettings {
        budget: 2,
        ..PllSettings::off()
    };
    let (_, mut server) = roles(&dir, settings)?;
    let mut small = SecureServer::new(
        &secure::parameters()?,
        &LoraAdapter::load(&dir, &config())?,
        PllSettings {
            max_key_bytes: 1000,
            ..PllSettings::off()
        },
    )?;
    let garbage = vec![0xA5u8; 4000];
    let e = format!(
        "{:#}",
        server
            .register_client(ClientId(7), &garbage, &garbage)
            .expect_err("duplicate")
    );
    assert!(e.contains("7") && !e.contains("evaluation keys"), "{e}");
    let e = format!(
        "{:#}",
        small
            .register_client(ClientId(8), &garbage, &garbage)
            .expect_err("too large")
    );
    assert!(e.contains("exceed the limit of 1000 bytes"), "{e}");
    let request = || Request {
        layer: 0,
        modules: vec![Q.into()],
        inputs: vec![garbage.clone()],
        scaling: Default::default(),
    };
    let e = match server.apply_batch(ClientId(7), &[request(), request(), request()]) {
        Err(e) => format!("{e:#}"),
        Ok(_) => panic!("three garbage requests over a budget of two were applied"),
    };
    assert!(e.contains("budget exhausted"), "{e}");
    Ok(())
}
