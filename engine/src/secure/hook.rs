//! The forward pass's hook in `secure` mode: for every adapted input site and token, the
//! client encrypts, the server evaluates, the client decrypts; the time of each part and
//! the bytes each way are counted.

use super::client::SecureClient;
use super::server::Serve;
use crate::model::{input_sites, Architecture, InputSite, LoraHook};
use crate::progress::Progress;
use anyhow::{bail, Result};
use candle_core::Tensor;
use helora::ckks::keep_workers_awake;
use helora::pll::ClientId;
use std::time::{Duration, Instant};

/// Where the HE time went, and what crossed the wire.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeStats {
    pub encrypt: Duration,
    pub eval: Duration,
    pub decrypt: Duration,
    pub upload_bytes: u64,
    pub download_bytes: u64,
    /// Round trips (input sites × tokens).
    pub requests: u64,
    /// Projections applied.
    pub applications: u64,
}

impl HeStats {
    pub fn total(&self) -> Duration {
        self.encrypt + self.eval + self.decrypt
    }
}

pub struct SecureHook<'a> {
    pub client: &'a mut SecureClient,
    pub server: &'a mut dyn Serve,
    pub id: ClientId,
    pub stats: HeStats,
    /// The input [`stage`](LoraHook::stage) copied to the host, and its site.
    staged: Option<(InputSite, Vec<Vec<f32>>)>,
    /// Moved on by one per adapted site evaluated (the prefill's progress).
    progress: Option<Progress>,
}

impl<'a> SecureHook<'a> {
    pub fn new(client: &'a mut SecureClient, server: &'a mut dyn Serve, id: ClientId) -> Self {
        Self {
            client,
            server,
            id,
            stats: HeStats::default(),
            staged: None,
            progress: None,
        }
    }

    /// The adapted input sites of a model with `layers` layers of `arch`: one request per
    /// token each.
    pub fn adapted_sites(&self, arch: Architecture, layers: usize) -> usize {
        (0..layers)
            .flat_map(|layer| input_sites(arch, layer))
            .filter(|&site| self.wants(site))
            .count()
    }

    /// Reports every adapted site evaluated to `progress` (with the prompt tokens per
    /// second so far) until [`take_progress`](Self::take_progress).
    pub fn set_progress(&mut self, progress: Progress) {
        self.progress = Some(progress);
    }

    pub fn take_progress(&mut self) -> Option<Progress> {
        self.progress.take()
    }

    /// The deltas of the projections `modules` of `layer` (adapted, sharing one input) for
    /// the rows of `x` (one per token, d_in values each): one request per token, all sent
    /// as one batch. Returns, per module, the tokens' deltas back to back (tokens × d_out).
    pub fn encrypted_deltas(
        &mut self,
        layer: usize,
        modules: &[&str],
        x: &[Vec<f32>],
    ) -> Result<Vec<Vec<f32>>> {
        let mut deltas: Vec<Vec<f32>> = vec![Vec::new(); modules.len()];
        // All tokens of this call at once: a prompt's tokens are evaluated in parallel.
        let start = Instant::now();
        let client = &mut self.client;
        // Encryption and decryption are chains of short parallel steps: the pool's idle
        // workers wait for them awake (the server's evaluation does the same on its side).
        let requests = keep_workers_awake(|| {
            x.iter()
                .map(|row| client.encrypt(layer, modules, row))
                .collect::<Result<Vec<_>>>()
        })?;
        let encrypted = Instant::now();
        let replies = self.server.apply_batch(self.id, &requests)?;
        if replies.len() != requests.len() {
            bail!(
                "the server answered {} of {} requests",
                replies.len(),
                requests.len()
            );
        }
        let evaluated = Instant::now();
        let client = &self.client;
        let decrypted = keep_workers_awake(|| {
            requests
                .iter()
                .zip(&replies)
                .map(|(request, reply)| client.decrypt(request, reply))
                .collect::<Result<Vec<_>>>()
        })?;
        for ((request, reply), ys) in requests.iter().zip(&replies).zip(decrypted) {
            if ys.len() != modules.len() {
                bail!("{} deltas for {} projections", ys.len(), modules.len());
            }
            for (acc, y) in deltas.iter_mut().zip(ys) {
                acc.extend(y);
            }
            self.stats.upload_bytes += request.bytes() as u64;
            self.stats.download_bytes += reply.bytes() as u64;
        }
        self.stats.encrypt += encrypted - start;
        self.stats.eval += evaluated - encrypted;
        self.stats.decrypt += evaluated.elapsed();
        self.stats.requests += x.len() as u64;
        self.stats.applications += (x.len() * modules.len()) as u64;
        if let Some(progress) = &self.progress {
            // The whole prompt moves through every site: tokens × share done per second.
            let done = progress.fraction() + 1.0 / progress.total().max(1) as f64;
            let rate = x.len() as f64 * done / progress.elapsed_secs().max(1e-9);
            progress.advance_noting(1, &format!("layer {layer}, {rate:.2} tokens/s"));
        }
        Ok(deltas)
    }
}

/// `x`'s rows on the host, as f32.
fn host_rows(x: &Tensor) -> Result<Vec<Vec<f32>>> {
    Ok(x.to_dtype(candle_core::DType::F32)?.to_vec2()?)
}

impl LoraHook for SecureHook<'_> {
    fn wants(&self, site: InputSite) -> bool {
        self.client.manifest().adapts_any(site.layer, site.modules)
    }

    fn stage(&mut self, site: InputSite, x: &Tensor) -> Result<()> {
        self.staged = Some((site, host_rows(x)?));
        Ok(())
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        let manifest = self.client.manifest();
        let adapted: Vec<&str> = site
            .modules
            .iter()
            .copied()
            .filter(|m| manifest.find(site.layer, m).is_some())
            .collect();
        let mut out: Vec<Option<Tensor>> = vec![None; site.modules.len()];
        if adapted.is_empty() {
            return Ok(out);
        }
        let rows = match self.staged.take() {
            Some((staged, rows)) if staged == site => rows,
            _ => host_rows(x)?,
        };
        let deltas = self.encrypted_deltas(site.layer, &adapted, &rows)?;
        for (module, delta) in adapted.iter().zip(deltas) {
            let d_out = delta.len() / rows.len().max(1);
            let k = site
                .modules
                .iter()
                .position(|m| m == module)
                .unwrap_or_default();
            out[k] = Some(Tensor::from_vec(delta, (rows.len(), d_out), x.device())?);
        }
        Ok(out)
    }
}
