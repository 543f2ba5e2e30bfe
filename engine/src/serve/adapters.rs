//! The adapters a server holds, by name, each on its HE backend and shared by every client:
//! the concurrency lives here. An adapter's server sits behind a read-write lock:
//! evaluations (a batch of jobs, on the worker pool) and key checks take it for reading,
//! so they run side by side; only admitting or evicting a key set takes it for writing,
//! and only for the insert or removal (the costly key decoding and checks happen under the
//! read lock). Which key sets are held is the [`Residency`]'s to decide, under its own
//! lock, which every change to the held set takes first: a leased key set is held.

use super::residency::Residency;
use crate::adapter::LoraAdapter;
use crate::secure::{self, Job, Manifest, Reply, Request, SecureServer};
use anyhow::{anyhow, bail, Result};
use helora::ckks::Backend;
use helora::ckks::KeySeed;
use helora::pll::{ClientId, PllError, PllSettings, PreparedClient};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

/// What the network server needs of an adapter's HE server, whatever its backend.
trait SharedServer: Send + Sync {
    fn evaluate(&self, jobs: &[Job<'_>]) -> Vec<Result<Reply>>;
    fn check(&self, requests: &[&Request]) -> Result<()>;
    /// Decodes and checks a key set (the costly half of an admission, under the read
    /// lock); always, even if the key set is held now: it may be evicted before
    /// [`hold`](SharedServer::hold).
    fn prepare(&self, eval_keys: &[u8], public_key: &[u8], key_seed: &KeySeed) -> Result<Prepared>;
    /// Under the write lock: drops `evict`'s key sets, then holds `prepared` as `id` unless
    /// `id` is held already.
    fn hold(&self, id: ClientId, prepared: Prepared, evict: &[ClientId]) -> Result<()>;
}

/// A key set decoded and checked by [`SharedServer::prepare`], for its own backend.
type Prepared = Box<dyn std::any::Any + Send>;

/// A poisoned lock means a thread panicked mid-update: refuse rather than use the state.
fn poisoned<T>(_: T) -> anyhow::Error {
    anyhow!("the adapter's server state is unusable after an internal error")
}

impl<B: Backend + 'static> SharedServer for RwLock<SecureServer<B>>
where
    SecureServer<B>: Send + Sync,
    PreparedClient<B>: Send,
{
    fn evaluate(&self, jobs: &[Job<'_>]) -> Vec<Result<Reply>> {
        match self.read() {
            Ok(server) => server.evaluate_jobs(jobs),
            Err(e) => {
                let why = poisoned(e).to_string();
                jobs.iter().map(|_| Err(anyhow!(why.clone()))).collect()
            }
        }
    }

    fn check(&self, requests: &[&Request]) -> Result<()> {
        self.read().map_err(poisoned)?.projections_for(requests)?;
        Ok(())
    }

    fn prepare(&self, eval_keys: &[u8], public_key: &[u8], key_seed: &KeySeed) -> Result<Prepared> {
        let server = self.read().map_err(poisoned)?;
        Ok(Box::new(
            server.prepare_client(eval_keys, public_key, key_seed)?,
        ))
    }

    fn hold(&self, id: ClientId, prepared: Prepared, evict: &[ClientId]) -> Result<()> {
        let mut server = self.write().map_err(poisoned)?;
        for old in evict {
            server.remove_client(*old);
        }
        // Another request may have admitted the same key set meanwhile.
        if server.has_client(id) {
            return Ok(());
        }
        let prepared = prepared
            .downcast::<PreparedClient<B>>()
            .map_err(|_| anyhow!("a key set prepared for another backend"))?;
        server.insert_client(id, *prepared)
    }
}

/// One named adapter on the server.
pub struct HeldAdapter {
    pub name: String,
    pub source: PathBuf,
    pub manifest: Manifest,
    pub settings: PllSettings,
    pub backend: &'static str,
    server: Box<dyn SharedServer>,
    residency: Arc<Mutex<Residency>>,
}

/// A key set held for a request in progress: not evicted until dropped.
pub struct Lease {
    residency: Arc<Mutex<Residency>>,
    id: ClientId,
}

impl Lease {
    pub fn id(&self) -> ClientId {
        self.id
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut residency) = self.residency.lock() {
            residency.release(self.id);
        }
    }
}

impl HeldAdapter {
    /// Loads the PEFT adapter in `dir` and encodes it on the CPU backend.
    pub fn load_cpu(name: &str, dir: &std::path::Path, settings: PllSettings) -> Result<Self> {
        let adapter = LoraAdapter::load_standalone(dir)?;
        let params = secure::parameters()?;
        let server = SecureServer::new(&params, &adapter, settings.clone())?;
        Ok(Self::new(name, dir, server))
    }

    /// Loads the PEFT adapter in `dir` and encodes it on the CUDA backend (device 0): every
    /// client's evaluator gets a sibling of one backend (one module load, one table
    /// upload). The binary must be built with the `cuda` feature.
    #[cfg(feature = "cuda")]
    pub fn load_cuda(name: &str, dir: &std::path::Path, settings: PllSettings) -> Result<Self> {
        use anyhow::Context;
        use helora::backend::CudaBackend;
        use helora::ckks::Evaluator;
        let adapter = LoraAdapter::load_standalone(dir)?;
        let params = secure::parameters()?;
        let first = CudaBackend::new(params.ring().clone(), params.alpha())
            .context("--device cuda: starting the CUDA backend")?;
        let pll = helora::pll::PllServer::with_backend(&params, settings, move |p| {
            Evaluator::with_backend(p, first.sibling())
        })
        .context("starting the PLL server on the GPU")?;
        Ok(Self::new(name, dir, SecureServer::with_pll(&adapter, pll)?))
    }

    /// Holds `server`, encoded already, under `name`.
    pub fn new<B: Backend>(name: &str, source: &std::path::Path, server: SecureServer<B>) -> Self
    where
        SecureServer<B>: Send + Sync + 'static,
    {
        Self {
            name: name.to_string(),
            source: source.to_path_buf(),
            manifest: server.manifest().clone(),
            // What the manifest reports: the largest σ when each projection has its own.
            settings: PllSettings {
                noise: server.noise(),
                ..server.settings().clone()
            },
            backend: secure::Serve::backend(&server),
            server: Box::new(RwLock::new(server)),
            residency: Arc::new(Mutex::new(Residency::new(DEFAULT_RESIDENT_KEY_SETS))),
        }
    }

    /// Holds at most `cap` key sets in memory from now on (the least recently used go first).
    pub fn with_resident_key_sets(self, cap: usize) -> Self {
        if let Ok(mut residency) = self.residency.lock() {
            *residency = Residency::new(cap);
        }
        self
    }

    /// Key sets held in memory now.
    pub fn resident_key_sets(&self) -> usize {
        self.residency.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// Evaluates a batch of jobs (one token each, possibly of several clients) that ask for
    /// the same projections; one result per job.
    pub fn evaluate(&self, jobs: &[Job<'_>]) -> Vec<Result<Reply>> {
        self.server.evaluate(jobs)
    }

    /// What can be refused before anything is decoded or charged: the projections exist,
    /// are named once, and every token carries one ciphertext per input chunk.
    pub fn check(&self, requests: &[&Request]) -> Result<()> {
        self.server.check(requests)
    }

    /// Leases key set `id` if it is held; `None`: load it from the store and [`admit`] it.
    ///
    /// [`admit`]: Self::admit
    pub fn lease(&self, id: ClientId) -> Option<Lease> {
        let mut residency = self.residency.lock().ok()?;
        residency.lease(id).then(|| Lease {
            residency: self.residency.clone(),
            id,
        })
    }

    /// Decodes and checks a key set against this adapter and against `key_seed` (the seed
    /// its owner was handed), holds it under `id` and leases it, evicting the least
    /// recently used idle key sets beyond the cap.
    pub fn admit(
        &self,
        id: ClientId,
        eval_keys: &[u8],
        public_key: &[u8],
        key_seed: &KeySeed,
    ) -> Result<Lease> {
        let prepared = self.server.prepare(eval_keys, public_key, key_seed)?;
        // Every change to the held set happens under the residency's lock, so a lease
        // always finds its key set held.
        let mut residency = self.residency.lock().map_err(poisoned)?;
        let evict = residency.admit(id);
        if let Err(e) = self.server.hold(id, prepared, &evict) {
            residency.forget(id);
            return Err(e);
        }
        if !evict.is_empty() {
            tracing::debug!(adapter = %self.name, evicted = evict.len(), "evicted idle key sets");
        }
        Ok(Lease {
            residency: self.residency.clone(),
            id,
        })
    }
}

/// Key sets an adapter's server holds in memory unless told otherwise (`--resident-key-sets`).
pub const DEFAULT_RESIDENT_KEY_SETS: usize = 64;

/// The server's adapters by name.
pub struct Adapters(BTreeMap<String, HeldAdapter>);

impl Adapters {
    pub fn new(held: Vec<HeldAdapter>) -> Result<Self> {
        let mut map = BTreeMap::new();
        for adapter in held {
            if map.contains_key(&adapter.name) {
                bail!(
                    "two adapters are named {:?}: name them NAME=DIR",
                    adapter.name
                );
            }
            map.insert(adapter.name.clone(), adapter);
        }
        if map.is_empty() {
            bail!("a server needs at least one adapter");
        }
        Ok(Self(map))
    }

    /// The adapter `name` names; an empty name picks the only one.
    pub fn get(&self, name: &str) -> Result<&HeldAdapter, String> {
        if name.is_empty() {
            if self.0.len() == 1 {
                if let Some(only) = self.0.values().next() {
                    return Ok(only);
                }
            }
            return Err(format!(
                "this server holds several adapters ({}): name one",
                self.names().join(", ")
            ));
        }
        self.0.get(name).ok_or_else(|| {
            format!(
                "no adapter named {name:?} on this server (it holds {})",
                self.names().join(", ")
            )
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &HeldAdapter> {
        self.0.values()
    }
}

/// `--adapter NAME=DIR` or `--adapter DIR` (named after the directory).
pub fn parse_spec(spec: &str) -> Result<(String, PathBuf)> {
    if let Some((name, dir)) = spec.split_once('=') {
        if name.is_empty() || dir.is_empty() {
            bail!("--adapter {spec:?}: expected NAME=DIR or DIR");
        }
        return Ok((name.to_string(), PathBuf::from(dir)));
    }
    let dir = PathBuf::from(spec);
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            anyhow!("--adapter {spec:?}: cannot name it after its directory; use NAME=DIR")
        })?
        .to_string();
    Ok((name, dir))
}

/// Whether a PLL error is the client's doing (its keys), for the status it gets.
pub fn is_client_error(e: &anyhow::Error) -> bool {
    e.downcast_ref::<secure::BadRequest>().is_some()
        || matches!(
            e.downcast_ref::<PllError>(),
            Some(
                PllError::KeysTooLarge { .. }
                    | PllError::MissingRotationKey { .. }
                    | PllError::WrongKeySeed
                    | PllError::Malformed(_)
                    | PllError::Ckks(_)
            )
        )
}
