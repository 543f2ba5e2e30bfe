//! The model owner's side: the adapter's factors, the PLL, and per client its evaluation
//! keys. It only ever handles serialized evaluation keys, a public key, seeded input
//! ciphertexts and the compact replies it sends back.
//!
//! The server's path for one batch of requests, hop by hop (docs/architecture.md):
//! 1. here, [`SecureServer::apply_batch`]: the projections named, the client's budget and
//!    the inputs' count checked before anything is decoded; the seeded uploads expanded;
//! 2. `helora::pll::PllServer::apply_group_batch` (src/pll/server.rs): the budget checked
//!    again and charged once the answers exist; one task per token on the worker pool, each
//!    with its own generator forked from the server's stream;
//! 3. `apply_protected` (src/pll/evaluate.rs): (step 1 of the plan ‖ B + E), then
//!    (steps 2–3 ‖ Enc_pk(flood)), then output + mask;
//! 4. `helora::linear::LoraGroup::{step1, finish}` (src/linear/lora.rs): the hoisted
//!    diagonal products and the fold, on `helora::ckks::Evaluator`;
//!
//! then back here: every output switched to its compact form and serialized.

use super::manifest::{Manifest, ProjectionShape};
use super::scaling::{balanced, projection_bound_log2, InputScaling};
use crate::adapter::LoraAdapter;
use crate::progress::Progress;
use anyhow::{anyhow, Context, Result};
use helora::ckks::{
    expand_seeded, keep_workers_awake, Backend, Ciphertext, CpuBackend, EvaluationKeys, Evaluator,
    KeySeed, Params, PublicKey, SeededCiphertext, Serializable,
};
use helora::linear::reply_widths;
use helora::pll::{
    AdapterId, ClientId, NoiseRng, PllError, PllServer, PllSettings, PreparedClient,
};
use rand_core::SeedableRng;
use rayon::prelude::*;
use std::collections::HashMap;

/// One adapted input site of one token: the projections of `layer` named in `modules`
/// (which read the same input), and that input's seeded ciphertexts.
pub struct Request {
    pub layer: usize,
    pub modules: Vec<String>,
    pub inputs: Vec<Vec<u8>>,
    /// The client's normalisation of this input: kept by the client, never sent.
    pub scaling: InputScaling,
}

/// Per requested module, its output's compact ciphertexts.
pub struct Reply {
    pub outputs: Vec<Vec<Vec<u8>>>,
}

impl Request {
    pub fn bytes(&self) -> usize {
        self.inputs.iter().map(Vec::len).sum()
    }
}

impl Reply {
    pub fn bytes(&self) -> usize {
        self.outputs.iter().flatten().map(Vec::len).sum()
    }
}

/// A request the server refuses because of what the client sent (malformed, the wrong
/// shape, an unknown projection): the client's fault, not the server's. The network server
/// answers it with INVALID_ARGUMENT and goes on serving.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(why: impl Into<String>) -> anyhow::Error {
    BadRequest(why.into()).into()
}

/// One token of one client in a batch that may mix clients and layers: the network
/// server's unit of work, its inputs parsed already (once, where they arrived). Its PLL
/// randomness comes from `noise_seed`, so the same job gets the same answer.
pub struct Job<'a> {
    pub client: ClientId,
    pub layer: usize,
    pub modules: &'a [String],
    pub inputs: &'a [SeededCiphertext],
    pub noise_seed: [u8; 32],
}

/// Seeded input ciphertexts from a client's bytes, each checked against `params`.
pub fn parse_inputs(params: &Params, inputs: &[Vec<u8>]) -> Result<Vec<SeededCiphertext>> {
    inputs
        .par_iter()
        .enumerate()
        .map(|(k, bytes)| {
            SeededCiphertext::from_bytes(params, bytes)
                .map_err(|e| bad(format!("input ciphertext {k}: {e}")))
        })
        .collect()
}

/// The full ciphertexts of parsed seeded inputs (their `a` regenerated from the seeds).
fn expand_inputs(params: &Params, inputs: &[SeededCiphertext]) -> Result<Vec<Ciphertext>> {
    inputs
        .par_iter()
        .map(|seeded| {
            expand_seeded(params, seeded).map_err(|e| bad(format!("input ciphertext: {e}")))
        })
        .collect()
}

fn chunk_count_error(layer: usize, got: usize, expected: usize) -> anyhow::Error {
    bad(format!(
        "a request for layer {layer} carries {got} input ciphertexts, the projection takes {expected}"
    ))
}

/// Time on the network, as a remote client saw it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetworkStats {
    /// Round trips of site requests, from send to reply.
    pub round_trip: std::time::Duration,
    /// Of that, what the server reported spending (queueing and evaluation).
    pub server: std::time::Duration,
    pub requests: u64,
    /// Requests re-sent after a broken connection.
    pub retries: u64,
}

impl NetworkStats {
    /// Round trips less the server's own time: the network's and the protocol's share.
    pub fn network(&self) -> std::time::Duration {
        self.round_trip.saturating_sub(self.server)
    }
}

/// What the in-process roles need of a server, whichever backend evaluates: lets
/// `generate` and `bench token` pick the backend at run time (`--device`).
pub trait Serve {
    fn manifest(&self) -> &Manifest;
    fn settings(&self) -> &PllSettings;
    /// The HE backend's name (`cpu`, `cuda`).
    fn backend(&self) -> &'static str;
    fn register_client(&mut self, id: ClientId, eval_keys: &[u8], public_key: &[u8]) -> Result<()>;
    fn apply_batch(&mut self, client: ClientId, requests: &[Request]) -> Result<Vec<Reply>>;
    /// The network's share of the time, for a server across one.
    fn network(&self) -> Option<NetworkStats> {
        None
    }
}

/// The server on HE backend `B`. Its PLL's outputs come back to the host (the PLL
/// downloads them), so replies are compacted and serialized on the CPU whatever `B` is.
pub struct SecureServer<B: Backend = CpuBackend> {
    params: Params,
    pll: PllServer<B>,
    ids: HashMap<(usize, String), AdapterId>,
    manifest: Manifest,
    /// Keyless: switches replies to their compact form.
    compactor: Evaluator,
    reply_bits: (u32, u32),
}

impl SecureServer<CpuBackend> {
    /// A server on the CPU backend; see [`with_pll`](SecureServer::with_pll).
    pub fn new(params: &Params, adapter: &LoraAdapter, settings: PllSettings) -> Result<Self> {
        let pll = PllServer::cpu(params, settings).context("starting the PLL server")?;
        Self::with_pll(adapter, pll)
    }
}

impl<B: Backend> SecureServer<B> {
    /// Encodes every adapted projection of `adapter` into `pll`, a fresh PLL server on the
    /// backend of choice (once, not per token). The parameters are the PLL's.
    pub fn with_pll(adapter: &LoraAdapter, mut pll: PllServer<B>) -> Result<Self> {
        let params = &pll.params().clone();
        let level = params.max_level();
        let progress = Progress::start(
            "encoding the adapter for the server",
            adapter.projection_count() as u64,
        );
        let mut ids = HashMap::new();
        let mut projections = Vec::new();
        for ((layer, module), factors) in &adapter.layers {
            let (a, b) = factors.to_matrices()?;
            let (a, b) = balanced(&a, &b)?;
            let id = pll
                .add_adapter(&a, &b, level)
                .with_context(|| format!("encoding layer {layer} {module}"))?;
            let registered = pll.adapter(id)?;
            let plan = registered.plan();
            let bound_log2 =
                projection_bound_log2(&a, &b, registered.noise_std(), plan.rank_padded())
                    .with_context(|| format!("layer {layer} {module}"))?;
            projections.push(ProjectionShape {
                layer: *layer,
                module: module.clone(),
                d_in: a.rows(),
                d_out: b.cols(),
                rank_padded: plan.rank_padded(),
                level,
                bound_log2,
            });
            ids.insert((*layer, module.clone()), id);
            progress.advance();
        }
        progress.finish();
        // In process every client gets this server's one seed; a network server hands
        // each identity its own (`serve`).
        let manifest = Manifest {
            params_id: params.id(),
            rotation_steps: pll.rotation_steps(),
            projections,
            key_seed: KeySeed::random()?,
        };
        Ok(Self {
            params: params.clone(),
            pll,
            ids,
            manifest,
            compactor: Evaluator::cpu(params),
            reply_bits: reply_widths(params),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn settings(&self) -> &PllSettings {
        self.pll.settings()
    }

    /// The largest relative noise σ among the projections (they differ when the settings
    /// aim at an extraction error).
    pub fn noise(&self) -> f64 {
        self.ids
            .values()
            .filter_map(|&id| self.pll.adapter(id).ok())
            .map(|adapter| adapter.noise())
            .fold(0.0, f64::max)
    }

    /// Checks a client's serialized keys against every adapter and against `key_seed`, the
    /// seed handed to that client for the keys' `a` halves, and readies its evaluator,
    /// with `&self`: a server shared among threads admits it later, briefly, with
    /// [`insert_client`](Self::insert_client).
    pub fn prepare_client(
        &self,
        eval_keys: &[u8],
        public_key: &[u8],
        key_seed: &KeySeed,
    ) -> Result<PreparedClient<B>> {
        // The checks that need no decoding first: decoding costs memory and time in
        // proportion to the bytes, which a client chooses. The wire form is never more
        // than twice the keys' size in memory, which is what the limit counts.
        let settings = self.pll.settings();
        if eval_keys.len() / 2 > settings.max_key_bytes {
            return Err(PllError::KeysTooLarge {
                bytes: eval_keys.len(),
                max: settings.max_key_bytes,
            }
            .into());
        }
        let keys = EvaluationKeys::from_bytes(&self.params, eval_keys)
            .map_err(|e| bad(format!("client evaluation keys: {e}")))?;
        let pk = PublicKey::from_bytes(&self.params, public_key)
            .map_err(|e| bad(format!("client public key: {e}")))?;
        Ok(self.pll.prepare_client(&keys, pk, key_seed)?)
    }

    pub fn insert_client(&mut self, id: ClientId, client: PreparedClient<B>) -> Result<()> {
        Ok(self.pll.insert_client(id, client)?)
    }

    pub fn has_client(&self, id: ClientId) -> bool {
        self.pll.has_client(id)
    }

    /// Drops a client's keys; false if it was not held.
    pub fn remove_client(&mut self, id: ClientId) -> bool {
        self.pll.remove_client(id)
    }

    /// Admits a client with its serialized evaluation and public keys, made from the key
    /// seed of [`manifest`](Self::manifest).
    pub fn register_client(
        &mut self,
        id: ClientId,
        eval_keys: &[u8],
        public_key: &[u8],
    ) -> Result<()> {
        self.pll.check_admission(id)?;
        let client = self.prepare_client(eval_keys, public_key, &self.manifest.key_seed)?;
        self.insert_client(id, client)
    }

    /// Applies the requested projections to one token's input.
    pub fn apply(&mut self, client: ClientId, request: &Request) -> Result<Reply> {
        self.apply_batch(client, std::slice::from_ref(request))?
            .pop()
            .ok_or_else(|| anyhow!("no reply"))
    }

    /// The PLL adapters behind `modules` of `layer`, and a check that `requests` all ask
    /// for them and carry one ciphertext per input chunk: what can be refused before
    /// anything is decoded.
    pub fn projections_for(&self, requests: &[&Request]) -> Result<Vec<AdapterId>> {
        let first = requests.first().ok_or_else(|| bad("no request"))?;
        if requests
            .iter()
            .any(|r| r.layer != first.layer || r.modules != first.modules)
        {
            return Err(bad("a batch must ask every token for the same projections"));
        }
        let (ids, expected) = self.projection_ids(first.layer, &first.modules)?;
        if let Some(r) = requests.iter().find(|r| r.inputs.len() != expected) {
            return Err(chunk_count_error(r.layer, r.inputs.len(), expected));
        }
        Ok(ids)
    }

    /// The PLL adapters behind `modules` of `layer` (each named once, all sharing one input
    /// layout), and that layout's number of input ciphertexts.
    fn projection_ids(&self, layer: usize, modules: &[String]) -> Result<(Vec<AdapterId>, usize)> {
        let Some(first) = modules.first() else {
            return Err(bad(format!(
                "a request for layer {layer} names no projection"
            )));
        };
        let ids = modules
            .iter()
            .map(|m| {
                self.ids
                    .get(&(layer, m.clone()))
                    .copied()
                    .ok_or_else(|| bad(format!("no adapter for layer {layer} {m}")))
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(k) = (1..modules.len()).find(|&k| modules[..k].contains(&modules[k])) {
            return Err(bad(format!("projection {} requested twice", modules[k])));
        }
        let chunks = |m: &String| -> Result<usize> {
            let shape = self
                .manifest
                .find(layer, m)
                .ok_or_else(|| bad(format!("no adapter for layer {layer} {m}")))?;
            Ok(shape.input_layout(self.params.slots())?.chunks)
        };
        let expected = chunks(first)?;
        for m in &modules[1..] {
            if chunks(m)? != expected {
                return Err(bad(format!(
                    "layer {layer}: {first} and {m} do not share an input layout"
                )));
            }
        }
        Ok((ids, expected))
    }

    /// A request's seeded uploads, expanded; the client's bytes are checked here.
    fn decode_inputs(&self, request: &Request) -> Result<Vec<Ciphertext>> {
        expand_inputs(&self.params, &parse_inputs(&self.params, &request.inputs)?)
    }

    /// Every output switched to its compact form and serialized.
    fn encode_reply(&self, outputs: &[Vec<Ciphertext>]) -> Result<Reply> {
        let (c0_bits, c1_bits) = self.reply_bits;
        let outputs = outputs
            .par_iter()
            .map(|cts| {
                cts.par_iter()
                    .map(|ct| {
                        Ok(self
                            .compactor
                            .compact(ct, c0_bits, c1_bits)?
                            .to_bytes(&self.params)?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Reply { outputs })
    }

    /// Several tokens' requests to the same projections (a prompt), one task per token on
    /// the worker pool. Replies keep the requests' order.
    pub fn apply_batch(&mut self, client: ClientId, requests: &[Request]) -> Result<Vec<Reply>> {
        let refs: Vec<&Request> = requests.iter().collect();
        let ids = self.projections_for(&refs)?;
        // Before any input is decoded (the costly part, sized by the client): the client must
        // be registered and within its budget for every projection.
        self.pll
            .check_queries(client, &ids, requests.len() as u64)?;
        on_host_workers(self.pll.backend().host_parallel(), || {
            // Decoding uploads and compacting replies are independent per ciphertext: both
            // run on every core (the evaluation itself is parallel inside the PLL server).
            let tokens = requests
                .par_iter()
                .map(|request| self.decode_inputs(request))
                .collect::<Result<Vec<_>>>()?;
            let outputs = self.pll.apply_group_batch(client, &ids, &tokens)?;
            outputs
                .par_iter()
                .map(|token| self.encode_reply(token))
                .collect()
        })
    }

    /// A batch of tokens that may come from several clients and ask for different
    /// projections (other layers), evaluated with `&self` on the worker pool, one task per
    /// token. **No budget is checked or charged here**: the network server meters each job
    /// in its durable ledger before the reply leaves. One job's bad input fails that job
    /// only.
    pub fn evaluate_jobs(&self, jobs: &[Job<'_>]) -> Vec<Result<Reply>> {
        on_host_workers(self.pll.backend().host_parallel(), || {
            self.evaluate_each(jobs)
        })
    }

    fn evaluate_each(&self, jobs: &[Job<'_>]) -> Vec<Result<Reply>> {
        jobs.par_iter()
            .map(|job| {
                let (ids, chunks) = self.projection_ids(job.layer, job.modules)?;
                if job.inputs.len() != chunks {
                    return Err(chunk_count_error(job.layer, job.inputs.len(), chunks));
                }
                let inputs = expand_inputs(&self.params, job.inputs)?;
                let mut rng = NoiseRng::from_seed(job.noise_seed);
                let outputs = self
                    .pll
                    .evaluate_group(job.client, &ids, &inputs, &mut rng)
                    .map_err(|e| match e {
                        PllError::Malformed(why) => bad(why),
                        other => other.into(),
                    })?;
                self.encode_reply(&outputs)
            })
            .collect()
    }
}

/// `f` with the pool's idle workers kept awake where the backend computes on the host (a
/// token's apply is a chain of short parallel steps there); just `f` on a device.
fn on_host_workers<R: Send>(host_parallel: bool, f: impl FnOnce() -> R + Send) -> R {
    if host_parallel {
        keep_workers_awake(f)
    } else {
        f()
    }
}

impl<B: Backend> Serve for SecureServer<B> {
    fn manifest(&self) -> &Manifest {
        SecureServer::manifest(self)
    }

    fn settings(&self) -> &PllSettings {
        SecureServer::settings(self)
    }

    fn backend(&self) -> &'static str {
        self.pll.backend().name()
    }

    fn register_client(&mut self, id: ClientId, eval_keys: &[u8], public_key: &[u8]) -> Result<()> {
        SecureServer::register_client(self, id, eval_keys, public_key)
    }

    fn apply_batch(&mut self, client: ClientId, requests: &[Request]) -> Result<Vec<Reply>> {
        SecureServer::apply_batch(self, client, requests)
    }
}
