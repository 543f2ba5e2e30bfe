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
use super::scaling::{projection_bound_log2, InputScaling};
use crate::adapter::LoraAdapter;
use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use helora::ckks::{
    expand_seeded, Backend, CpuBackend, EvaluationKeys, Evaluator, Params, PublicKey,
    SeededCiphertext, Serializable,
};
use helora::linear::reply_widths;
use helora::pll::{AdapterId, ClientId, PllError, PllServer, PllSettings};
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

/// What the in-process roles need of a server, whichever backend evaluates: lets
/// `generate` and `bench token` pick the backend at run time (`--device`).
pub trait Serve {
    fn manifest(&self) -> &Manifest;
    fn settings(&self) -> &PllSettings;
    /// The HE backend's name (`cpu`, `cuda`).
    fn backend(&self) -> &'static str;
    fn register_client(&mut self, id: ClientId, eval_keys: &[u8], public_key: &[u8]) -> Result<()>;
    fn apply_batch(&mut self, client: ClientId, requests: &[Request]) -> Result<Vec<Reply>>;
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
        let manifest = Manifest {
            params_id: params.id(),
            rotation_steps: pll.rotation_steps(),
            projections,
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

    /// Admits a client with its serialized evaluation and public keys.
    pub fn register_client(
        &mut self,
        id: ClientId,
        eval_keys: &[u8],
        public_key: &[u8],
    ) -> Result<()> {
        // The checks that need no decoding first: decoding costs memory and time in
        // proportion to the bytes, which a client chooses. The wire form is never more
        // than twice the keys' size in memory, which is what the limit counts.
        self.pll.check_admission(id)?;
        let settings = self.pll.settings();
        if eval_keys.len() / 2 > settings.max_key_bytes {
            return Err(PllError::KeysTooLarge {
                bytes: eval_keys.len(),
                max: settings.max_key_bytes,
            }
            .into());
        }
        let keys = EvaluationKeys::from_bytes(&self.params, eval_keys)
            .context("client evaluation keys")?;
        let pk = PublicKey::from_bytes(&self.params, public_key).context("client public key")?;
        self.pll.register_client(id, &keys, pk)?;
        Ok(())
    }

    /// Applies the requested projections to one token's input.
    pub fn apply(&mut self, client: ClientId, request: &Request) -> Result<Reply> {
        self.apply_batch(client, std::slice::from_ref(request))?
            .pop()
            .ok_or_else(|| anyhow!("no reply"))
    }

    /// Several tokens' requests to the same projections (a prompt), one task per token on
    /// the worker pool. Replies keep the requests' order.
    pub fn apply_batch(&mut self, client: ClientId, requests: &[Request]) -> Result<Vec<Reply>> {
        let first = requests.first().ok_or_else(|| anyhow!("no request"))?;
        if requests
            .iter()
            .any(|r| r.layer != first.layer || r.modules != first.modules)
        {
            bail!("a batch must ask every token for the same projections");
        }
        let ids = first
            .modules
            .iter()
            .map(|m| {
                self.ids
                    .get(&(first.layer, m.clone()))
                    .copied()
                    .ok_or_else(|| anyhow!("no adapter for layer {} {m}", first.layer))
            })
            .collect::<Result<Vec<_>>>()?;
        // Before any input is decoded (the costly part, sized by the client): the client must
        // be registered and within its budget for every projection, and every request must
        // carry one ciphertext per input chunk.
        self.pll
            .check_queries(client, &ids, requests.len() as u64)?;
        if let Some(shape) = first
            .modules
            .first()
            .and_then(|m| self.manifest.find(first.layer, m))
        {
            let chunks = shape.input_layout(self.params.slots())?.chunks;
            if let Some(r) = requests.iter().find(|r| r.inputs.len() != chunks) {
                bail!(
                    "a request for layer {} carries {} input ciphertexts, the projection takes {chunks}",
                    r.layer,
                    r.inputs.len()
                );
            }
        }
        // Decoding uploads and compacting replies are independent per ciphertext: both run
        // on every core (the evaluation itself is parallel inside the PLL server).
        let tokens = requests
            .par_iter()
            .map(|request| {
                if request.inputs.is_empty() {
                    bail!("request for layer {} has no input", request.layer);
                }
                request
                    .inputs
                    .par_iter()
                    .map(|bytes| {
                        let seeded = SeededCiphertext::from_bytes(&self.params, bytes)
                            .context("input ciphertext")?;
                        Ok(expand_seeded(&self.params, &seeded)?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = self.pll.apply_group_batch(client, &ids, &tokens)?;
        let (c0_bits, c1_bits) = self.reply_bits;
        outputs
            .par_iter()
            .map(|token| {
                let outputs = token
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
            })
            .collect()
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
