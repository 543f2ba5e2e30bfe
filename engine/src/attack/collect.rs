//! The attacker's queries, through the real protocol: a [`SecureServer`] holding the
//! adapter with the PLL settings it would serve with, and K registered clients, each with
//! its own keys and its own budget (Sybil identities pooling theirs). Every query is
//! encrypted, evaluated and decrypted as in `generate`; the attacker keeps its inputs and
//! the decrypted replies, site by site.

use super::sites::Site;
use crate::adapter::LoraAdapter;
use crate::model::{InputSite, LoraHook, Model};
use crate::progress::Progress;
use crate::secure::{self, SecureClient, SecureHook, SecureServer};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use helora::pll::{ClientId, PllSettings};
use std::time::{Duration, Instant};

/// Requests sent to the server in one batch (it evaluates a batch's tokens in parallel).
const BATCH: usize = 64;

/// What the attacker sent to one site.
pub enum Inputs {
    /// Query q was `magnitude`·e_(q mod d_in).
    Basis { magnitude: f64 },
    /// The hidden states, one row of d_in values per token, back to back.
    Recorded(Vec<f32>),
}

/// Everything one site answered, in query order.
pub struct Observations {
    pub site: Site,
    pub inputs: Inputs,
    /// Per module of the site, the decrypted replies (queries × d_out) back to back.
    pub replies: Vec<Vec<f32>>,
    pub queries: usize,
}

impl Observations {
    fn new(site: &Site, inputs: Inputs) -> Self {
        Self {
            site: site.clone(),
            inputs,
            replies: vec![Vec::new(); site.modules.len()],
            queries: 0,
        }
    }

    fn push_replies(&mut self, deltas: Vec<Vec<f32>>) -> Result<()> {
        if deltas.len() != self.replies.len() {
            bail!(
                "{} replies for {} projections",
                deltas.len(),
                self.replies.len()
            );
        }
        for (acc, delta) in self.replies.iter_mut().zip(deltas) {
            acc.extend(delta);
        }
        Ok(())
    }
}

pub struct Attacker {
    server: SecureServer,
    clients: Vec<(SecureClient, ClientId)>,
    /// Queries each client id made to each projection.
    pub queries_per_client: Vec<u64>,
    /// Time in the protocol: encryption, the server, decryption.
    pub protocol: Duration,
}

impl Attacker {
    /// A server for `adapter` with `settings`, and `clients` registered clients.
    pub fn start(adapter: &LoraAdapter, settings: PllSettings, clients: usize) -> Result<Self> {
        let params = secure::parameters()?;
        let mut server = SecureServer::new(&params, adapter, settings)?;
        let clients = (1..=clients as u64)
            .map(|id| {
                let id = ClientId(id);
                let (client, _) = secure::register_new_client(&params, &mut server, id)
                    .with_context(|| format!("registering client {}", id.0))?;
                Ok((client, id))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            server,
            queries_per_client: vec![0; clients.len()],
            clients,
            protocol: Duration::ZERO,
        })
    }

    fn hook(&mut self, client: usize) -> SecureHook<'_> {
        let (secure_client, id) = &mut self.clients[client];
        SecureHook::new(secure_client, &mut self.server, *id)
    }

    /// `queries` basis vectors of norm scale·√d_in (a hidden state's at 1) sent to every
    /// site, cycling through e_0 … e_(d_in − 1); the queries are split in K equal runs,
    /// one per client.
    pub fn basis(
        &mut self,
        sites: &[Site],
        queries: usize,
        scale: f64,
    ) -> Result<Vec<Observations>> {
        let start = Instant::now();
        let progress = Progress::start_long(
            "basis queries",
            (queries * sites.len()) as u64,
            "site queries",
        );
        let k = self.clients.len();
        let mut all = Vec::with_capacity(sites.len());
        for site in sites {
            let magnitude = scale * (site.d_in as f64).sqrt();
            let mut observed = Observations::new(site, Inputs::Basis { magnitude });
            for client in 0..k {
                let run = queries * client / k..queries * (client + 1) / k;
                for chunk_start in run.clone().step_by(BATCH) {
                    let chunk = chunk_start..(chunk_start + BATCH).min(run.end);
                    let rows: Vec<Vec<f32>> = chunk
                        .clone()
                        .map(|q| {
                            let mut x = vec![0.0f32; site.d_in];
                            x[q % site.d_in] = magnitude as f32;
                            x
                        })
                        .collect();
                    let deltas = self
                        .hook(client)
                        .encrypted_deltas(site.layer, &site.modules, &rows)
                        .with_context(|| {
                            format!("client {} at layer {}", client + 1, site.layer)
                        })?;
                    observed.push_replies(deltas)?;
                    observed.queries += rows.len();
                    progress.advance_noting(rows.len() as u64, "");
                }
            }
            all.push(observed);
        }
        // Each client sent its run to every projection.
        for client in 0..k {
            self.queries_per_client[client] +=
                (queries * (client + 1) / k - queries * client / k) as u64;
        }
        progress.finish();
        self.protocol += start.elapsed();
        Ok(all)
    }

    /// Each prompt (token ids) run through the model as a client would, the server
    /// applying the adapter at every adapted site; prompt p is sent by client p mod K.
    /// Every site's inputs and decrypted replies are recorded.
    pub fn text(
        &mut self,
        model: &Model,
        sites: &[Site],
        prompts: &[Vec<u32>],
    ) -> Result<Vec<Observations>> {
        let start = Instant::now();
        let tokens: usize = prompts.iter().map(Vec::len).sum();
        let progress = Progress::start_long("text queries", tokens as u64, "tokens");
        let mut observed: Vec<Observations> = sites
            .iter()
            .map(|s| Observations::new(s, Inputs::Recorded(Vec::new())))
            .collect();
        let k = self.clients.len();
        for (p, prompt) in prompts.iter().enumerate() {
            let client = p % k;
            let mut hook = RecordingHook {
                inner: self.hook(client),
                observed: &mut observed,
            };
            let mut cache = model.new_cache();
            model
                .forward(prompt, &mut cache, &mut hook)
                .with_context(|| format!("text query {} (client {})", p + 1, client + 1))?;
            self.queries_per_client[client] += prompt.len() as u64;
            progress.advance_noting(prompt.len() as u64, "");
        }
        progress.finish();
        self.protocol += start.elapsed();
        Ok(observed)
    }
}

/// The client's forward pass through the protocol, keeping what attacked sites saw.
struct RecordingHook<'a, 'b> {
    inner: SecureHook<'a>,
    observed: &'b mut [Observations],
}

impl LoraHook for RecordingHook<'_, '_> {
    fn wants(&self, site: InputSite) -> bool {
        self.inner.wants(site)
    }

    fn stage(&mut self, site: InputSite, x: &Tensor) -> Result<()> {
        self.inner.stage(site, x)
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let out = self.inner.deltas(site, x)?;
        let Some(observed) = self
            .observed
            .iter_mut()
            .find(|o| o.site.layer == site.layer && site.modules.contains(&o.site.modules[0]))
        else {
            return Ok(out);
        };
        let rows = x.dims2()?.0;
        let Inputs::Recorded(inputs) = &mut observed.inputs else {
            bail!("text queries recorded into a basis design");
        };
        inputs.extend(x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        let deltas = observed
            .site
            .modules
            .iter()
            .map(|m| {
                let k = site.modules.iter().position(|s| s == m);
                match k.and_then(|k| out[k].as_ref()) {
                    Some(delta) => Ok(delta.flatten_all()?.to_vec1::<f32>()?),
                    None => bail!("the server sent no delta for layer {} {m}", site.layer),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        observed.push_replies(deltas)?;
        observed.queries += rows;
        Ok(out)
    }
}
