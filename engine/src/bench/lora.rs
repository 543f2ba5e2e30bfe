//! `helora bench lora`: one LoRA plan applied to encrypted inputs on the CPU, as a client
//! and a server in one process, with random factors shaped like real LoRA (A Kaiming-
//! uniform, B ~ N(0, 0.02²)) and unit-variance inputs. Reports operation counts, the
//! median time of one apply (one thread), the batch throughput over T tokens, the
//! accuracy of the decrypted reply and the bytes each way per token. The set-up and the
//! report are one generic [`Session`], which the device run (`device_lora.rs`) shares:
//! only the timing differs.

use super::clock::TimedBackend;
use super::keys;
use super::machine;
use super::ops::params_for;
use super::provenance::Provenance;
use super::random_model::{self, gib};
use super::thread_pool;
use super::timing::{measure, Iterations, Timing};
use anyhow::{bail, Context, Result};
use helora::backend::{keep_workers_awake, Backend, CpuBackend};
use helora::ckks::{
    Ciphertext, CompactCiphertext, Decryptor, Encoder, Evaluator, Params, SeededCiphertext,
    Serializable, SymmetricEncryptor,
};
use helora::linear::{
    random_lora_factors, reply_widths, InputLayout, LoraGroup, LoraPlan, Matrix, OutputLayout,
};
use helora::math::sampling;
use serde::Serialize;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct LoraOptions {
    pub d_in: usize,
    pub d_out: usize,
    pub rank: usize,
    pub n: usize,
    pub tokens: usize,
    pub iters: Option<usize>,
    pub threads: usize,
    /// Memory the run may use instead of what the system reports available (for tests).
    pub memory_limit: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LoraReport {
    pub n: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub rank: usize,
    pub tokens: usize,
    pub input_ciphertexts: usize,
    pub output_ciphertexts: usize,
    pub keyswitches: usize,
    pub hoisted_keyswitches: usize,
    pub decompositions: usize,
    pub pt_muls: usize,
    pub depth: usize,
    pub rotation_keys: usize,
    /// Median of one token's apply on the `threads`-thread pool.
    pub ms_per_apply: f64,
    pub apply_iterations: usize,
    /// Wall time of the T-token batch over `threads` threads (after one untimed batch),
    /// divided by T.
    pub ms_per_token_batch: f64,
    pub tokens_per_s: f64,
    pub threads: usize,
    /// ‖ŷ − y‖₂ / ‖y‖₂ of the decrypted compact reply against f64, over all tokens.
    pub relative_error: f64,
    pub upload_bytes: usize,
    pub download_bytes: usize,
    pub reply_bits: [u32; 2],
    pub keygen_ms: f64,
    pub plan_build_ms: f64,
    pub cpu: String,
    pub simd: String,
    pub run: Provenance,
}

/// The CPU run: a single apply spread over the `threads`-thread pool, then the batch of
/// `tokens` tokens over the same pool, on the host's clock.
pub fn run(options: &LoraOptions) -> Result<LoraReport> {
    let LoraOptions {
        d_in,
        d_out,
        rank,
        tokens,
        ..
    } = *options;
    if d_in == 0 || d_out == 0 || rank == 0 || tokens == 0 {
        bail!("--d-in, --d-out, --r and --tokens must be positive");
    }
    let params = params_for(options.n)?;
    let available = options.memory_limit.or_else(random_model::memory_available);
    check_memory(&params, options, available)?;
    let backend = CpuBackend::new(params.ring().clone(), params.alpha());
    let session = Session::open(&params, options, tokens, backend)?;
    let server = &session.server;
    let plan = &session.plan;
    // The server's view: bytes in, ciphertexts out.
    let inputs = session.expanded_inputs()?;

    let iters = options
        .iters
        .map_or(Iterations::DEFAULT_ADAPTIVE, Iterations::Fixed);
    // Both figures on one pool of --threads (at most the cores): a single apply spreads
    // its key switches over it, a batch its tokens.
    let threads = options.threads.min(rayon::current_num_threads()).max(1);
    let pool = thread_pool(threads)?;
    // A token's apply keeps the pool's idle workers awake, as the server does.
    let single = pool.install(|| {
        measure(iters, || {
            keep_workers_awake(|| plan.apply(server, &inputs[0]))
        })
    })?;
    let group = LoraGroup::new(vec![plan])?;
    // One untimed batch first: fresh worker threads fault in their heaps on first use.
    pool.install(|| group.apply_batch(server, &inputs))?;
    let start = Instant::now();
    let outputs = pool.install(|| group.apply_batch(server, &inputs))?;
    let batch_seconds = start.elapsed().as_secs_f64();

    let replies: Vec<&[_]> = outputs.iter().map(|out| out[0].as_slice()).collect();
    let speed = Speed {
        apply: single,
        ms_per_token_batch: batch_seconds * 1e3 / tokens as f64,
        tokens_per_s: tokens as f64 / batch_seconds,
        threads,
    };
    session.report(speed, &replies)
}

/// What both runs of the benchmark (the CPU's here, the device's in `device_lora.rs`) set
/// up and check the same way: random factors shaped like real LoRA, the plan on a server
/// over backend B, the client's keys, and its seeded uploads of random inputs.
pub(super) struct Session<B: Backend> {
    pub params: Params,
    factors: (Matrix, Matrix),
    encoder: Encoder,
    pub server: Evaluator<B>,
    pub plan: LoraPlan<B>,
    plan_build_ms: f64,
    pub rotation_keys: usize,
    keygen_ms: f64,
    decryptor: Decryptor,
    /// The tokens' inputs in f64, and per token one serialized seeded upload per chunk.
    xs: Vec<Vec<f64>>,
    pub uploads: Vec<Vec<Vec<u8>>>,
    upload_bytes: usize,
}

/// How fast one run applied the plan.
pub(super) struct Speed {
    /// One token's apply.
    pub apply: Timing,
    pub ms_per_token_batch: f64,
    pub tokens_per_s: f64,
    pub threads: usize,
}

impl<B: TimedBackend> Session<B> {
    /// Builds the plan for `options`' shape on `backend` and encrypts `tokens` inputs.
    pub fn open(params: &Params, options: &LoraOptions, tokens: usize, backend: B) -> Result<Self> {
        let mut rng = sampling::os_rng()?;
        let (a, b) = random_lora_factors(options.d_in, options.d_out, options.rank, &mut rng)?;
        let encoder = Encoder::new(params.n())?;
        let mut server = Evaluator::with_backend(params, backend)?;
        let start = Instant::now();
        let plan = LoraPlan::new(&server, &encoder, &a, &b, 2).context("building the LoRA plan")?;
        // A device only queued the plaintexts' uploads.
        server.backend().wait()?;
        let plan_build_ms = start.elapsed().as_secs_f64() * 1e3;
        let steps = plan.rotation_steps();
        let keys = keys::generate(params, &steps)?;
        let loading = format!(
            "loading the evaluation keys onto the {} backend",
            server.backend().name()
        );
        server.set_keys(&keys.eval).context(loading)?;

        // Client: seeded uploads, one per input chunk and token.
        let mut encryptor = SymmetricEncryptor::new(params, &keys.secret)?;
        let decryptor = Decryptor::new(params, &keys.secret)?;
        let xs = random_inputs(options.d_in, tokens, &mut rng);
        let (uploads, upload_bytes) = encrypt_inputs(params, &plan, &encoder, &mut encryptor, &xs)?;
        Ok(Self {
            params: params.clone(),
            factors: (a, b),
            encoder,
            server,
            plan,
            plan_build_ms,
            rotation_keys: steps.len(),
            keygen_ms: keys.elapsed.as_secs_f64() * 1e3,
            decryptor,
            xs,
            uploads,
            upload_bytes,
        })
    }

    /// Every token's upload as the server receives it: parsed, c1 regenerated from the seed.
    pub fn expanded_inputs(&self) -> Result<Vec<Vec<Ciphertext>>> {
        self.uploads
            .iter()
            .map(|token| {
                token
                    .iter()
                    .map(|bytes| expand(&self.params, bytes))
                    .collect()
            })
            .collect()
    }

    /// The report of a run at `speed` whose tokens' replies are `replies` (decrypted and
    /// checked here).
    pub fn report(&self, speed: Speed, replies: &[&[Ciphertext<B::Poly>]]) -> Result<LoraReport> {
        let (a, b) = &self.factors;
        let check = check_replies(
            &self.server,
            &self.plan,
            &self.decryptor,
            &self.encoder,
            (a, b),
            &self.xs,
            replies,
        )?;
        let params = &self.params;
        let plan = &self.plan;
        let counts = plan.op_counts();
        Ok(LoraReport {
            n: params.n(),
            d_in: a.rows(),
            d_out: b.cols(),
            rank: a.cols(),
            tokens: self.xs.len(),
            input_ciphertexts: plan.input_layout().chunks,
            output_ciphertexts: plan.output_layout().chunks,
            keyswitches: counts.keyswitches,
            hoisted_keyswitches: counts.hoisted_keyswitches,
            decompositions: counts.decompositions,
            pt_muls: counts.pt_muls,
            depth: counts.depth,
            rotation_keys: self.rotation_keys,
            ms_per_apply: speed.apply.micros() / 1e3,
            apply_iterations: speed.apply.iters,
            ms_per_token_batch: speed.ms_per_token_batch,
            tokens_per_s: speed.tokens_per_s,
            threads: speed.threads,
            relative_error: check.relative_error,
            upload_bytes: self.upload_bytes,
            download_bytes: check.download_bytes,
            reply_bits: check.reply_bits,
            keygen_ms: self.keygen_ms,
            plan_build_ms: self.plan_build_ms,
            cpu: machine::cpu_model(),
            run: Provenance::now(),
            simd: machine::ntt_kernels(params.ring()),
        })
    }
}

/// Bytes the run holds at once: the plan's plaintexts (the A diagonals over Q_2 ∪ P, the B
/// diagonals over Q_1 ∪ P, r' per chunk) and per token its uploads, their expansion and
/// the replies; refused up front when above `available` rather than killed half-way.
fn check_memory(params: &Params, options: &LoraOptions, available: Option<u64>) -> Result<()> {
    let slots = params.slots();
    let rank_padded = options.rank.next_power_of_two();
    let chunks_in = InputLayout::new(options.d_in, rank_padded, slots)?.chunks as u64;
    let chunks_out = OutputLayout::new(options.d_out, slots)?.chunks as u64;
    let limb = (params.n() * std::mem::size_of::<u64>()) as u64;
    let special = params.p_primes().len() as u64;
    let plan = rank_padded as u64 * limb * (chunks_in * (3 + special) + chunks_out * (2 + special));
    // Per token: a seeded upload (one limb set) and its expansion (two), at level 2; the
    // replies at level 0 (two limbs) and their compact bytes.
    let per_token = limb * (chunks_in * 3 * 3 + chunks_out * 2 * 2);
    let need = plan + per_token * options.tokens as u64;
    match available {
        Some(available) if need > available => bail!(
            "d_in {} × d_out {} at rank {} needs about {:.1} GiB ({:.1} GiB of plan plaintexts \
             plus {} tokens), but only {:.1} GiB of memory is available: use smaller \
             dimensions, rank or --tokens",
            options.d_in,
            options.d_out,
            options.rank,
            gib(need),
            gib(plan),
            options.tokens,
            gib(available)
        ),
        _ => Ok(()),
    }
}

/// `tokens` unit-variance activations of width `d_in`.
pub(super) fn random_inputs(
    d_in: usize,
    tokens: usize,
    rng: &mut impl rand_core::RngCore,
) -> Vec<Vec<f64>> {
    (0..tokens)
        .map(|_| (0..d_in).map(|_| sampling::standard_normal(rng)).collect())
        .collect()
}

/// The client's uploads: per token, one serialized seeded ciphertext per input chunk at the
/// plan's input level; and the bytes one token uploads.
pub(super) fn encrypt_inputs<B: Backend>(
    params: &Params,
    plan: &LoraPlan<B>,
    encoder: &Encoder,
    encryptor: &mut SymmetricEncryptor,
    xs: &[Vec<f64>],
) -> Result<(Vec<Vec<Vec<u8>>>, usize)> {
    let level = plan.input_level();
    let mut upload_bytes = 0;
    let mut uploads = Vec::with_capacity(xs.len());
    for x in xs {
        let mut token = Vec::new();
        for slots in plan.input_layout().pack(x)? {
            let pt = encoder.encode_at(params, &slots, level, params.default_scale())?;
            let seeded = encryptor.encrypt_seeded(&pt)?;
            token.push(seeded.to_bytes(params)?);
        }
        upload_bytes = token.iter().map(Vec::len).sum();
        uploads.push(token);
    }
    Ok((uploads, upload_bytes))
}

/// The server's receipt of one upload: parse, then regenerate c1 from the seed.
pub(super) fn expand(params: &Params, bytes: &[u8]) -> Result<Ciphertext> {
    Ok(helora::ckks::expand_seeded(
        params,
        &SeededCiphertext::from_bytes(params, bytes)?,
    )?)
}

/// How the replies decrypted.
pub(super) struct ReplyCheck {
    /// ‖ŷ − y‖₂ / ‖y‖₂ over all tokens.
    pub relative_error: f64,
    /// Compact reply bytes of one token.
    pub download_bytes: usize,
    pub reply_bits: [u32; 2],
}

/// Compacts, serializes and decrypts each token's reply as the client would, and compares
/// it with x·A·B in f64.
pub(super) fn check_replies<B: Backend>(
    server: &Evaluator<B>,
    plan: &LoraPlan<B>,
    decryptor: &Decryptor,
    encoder: &Encoder,
    (a, b): (&Matrix, &Matrix),
    xs: &[Vec<f64>],
    replies: &[&[Ciphertext<B::Poly>]],
) -> Result<ReplyCheck> {
    let params = server.params();
    let (c0_bits, c1_bits) = reply_widths(params);
    let (mut err2, mut norm2, mut download_bytes) = (0.0, 0.0, 0);
    for (x, out) in xs.iter().zip(replies) {
        let mut decoded = Vec::new();
        let mut bytes_this_token = 0;
        for ct in out.iter() {
            let bytes = server.compact(ct, c0_bits, c1_bits)?.to_bytes(params)?;
            bytes_this_token += bytes.len();
            let pt = decryptor.decrypt_compact(&CompactCiphertext::from_bytes(params, &bytes)?)?;
            decoded.push(encoder.decode(params.ring(), &pt.poly, pt.scale)?);
        }
        download_bytes = bytes_this_token;
        let got = plan.output_layout().unpack(&decoded)?;
        let want = b.left_multiply(&a.left_multiply(x));
        err2 += got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).powi(2))
            .sum::<f64>();
        norm2 += want.iter().map(|w| w * w).sum::<f64>();
    }
    Ok(ReplyCheck {
        relative_error: (err2 / norm2.max(f64::MIN_POSITIVE)).sqrt(),
        download_bytes,
        reply_bits: [c0_bits, c1_bits],
    })
}

impl LoraReport {
    /// Aligned `name  value` lines for people.
    pub fn table(&self) -> String {
        let apply = match self.threads {
            1 => "ms per apply (1 thread)".to_string(),
            k => format!("ms per apply ({k} threads)"),
        };
        let rows: Vec<(&str, String)> = vec![
            (
                "shape",
                format!(
                    "x[{}] · A[{}×{}] · B[{}×{}], N = {}",
                    self.d_in, self.d_in, self.rank, self.rank, self.d_out, self.n
                ),
            ),
            (
                "ciphertexts in / out",
                format!("{} / {}", self.input_ciphertexts, self.output_ciphertexts),
            ),
            (
                "key switches (hoisted)",
                format!("{} ({})", self.keyswitches, self.hoisted_keyswitches),
            ),
            ("decompositions", self.decompositions.to_string()),
            ("plaintext products", self.pt_muls.to_string()),
            ("depth", self.depth.to_string()),
            (
                &apply,
                format!(
                    "{:.2} (median of {})",
                    self.ms_per_apply, self.apply_iterations
                ),
            ),
            (
                "ms per token, batch",
                format!(
                    "{:.2} ({} tokens, {} threads, {:.1} tokens/s)",
                    self.ms_per_token_batch, self.tokens, self.threads, self.tokens_per_s
                ),
            ),
            ("relative error", format!("{:.2e}", self.relative_error)),
            ("upload bytes / token", self.upload_bytes.to_string()),
            (
                "download bytes / token",
                format!(
                    "{} (c0 {} bits, c1 {} bits)",
                    self.download_bytes, self.reply_bits[0], self.reply_bits[1]
                ),
            ),
            (
                "key generation",
                format!(
                    "{:.1} ms, {} rotation keys",
                    self.keygen_ms, self.rotation_keys
                ),
            ),
            ("plan build", format!("{:.1} ms", self.plan_build_ms)),
            ("cpu / NTT kernel", format!("{} / {}", self.cpu, self.simd)),
            ("build", self.run.summary()),
        ];
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}
