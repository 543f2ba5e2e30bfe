//! `helora.Client`: the user's side of private LoRA. It holds the secret key (which never
//! leaves it) and a server, either across the network (`helora serve`, the engine's
//! `RemoteServer`) or in this process (the engine's `SecureServer` on an adapter directory,
//! for tests and demos). Its one operation: the decrypted LoRA deltas of one layer's adapted
//! projections for a batch of activations.

use crate::arrays::{matrix, matrix_arg, rows_of};
use crate::error::{helora_error, to_py};
use helora::pll::{ClientId, PllSettings};
use helora_engine::adapter::LoraAdapter;
use helora_engine::secure::{
    self, HeStats, Manifest, SecureClient, SecureHook, SecureServer, Serve,
};
use helora_engine::serve::remote::{self, RemoteOptions};
use numpy::PyArray2;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::path::PathBuf;
use std::sync::Mutex;

struct Roles {
    client: SecureClient,
    /// In process or remote. `Send` (which the engine's `SecureSession` server is not): the
    /// client is shared with Python's threads.
    server: Box<dyn Serve + Send>,
    id: ClientId,
    stats: HeStats,
    key_upload_bytes: usize,
}

#[pyclass(module = "helora")]
pub struct Client {
    roles: Mutex<Roles>,
    /// A copy of what the server published, readable without the lock.
    manifest: Manifest,
    settings: PllSettings,
    remote: bool,
}

fn in_process(dir: PathBuf, pll: bool) -> anyhow::Result<Roles> {
    let adapter = LoraAdapter::load_standalone(&dir)?;
    let params = secure::parameters()?;
    let settings = if pll {
        PllSettings::default()
    } else {
        PllSettings::off()
    };
    let mut server = SecureServer::new(&params, &adapter, settings)?;
    let id = ClientId(1);
    let (client, key_upload_bytes) = secure::register_new_client(&params, &mut server, id)?;
    Ok(Roles {
        client,
        server: Box::new(server),
        id,
        stats: HeStats::default(),
        key_upload_bytes,
    })
}

fn connect(options: &RemoteOptions) -> anyhow::Result<Roles> {
    let connected = remote::connect(options, &secure::parameters()?)?;
    Ok(Roles {
        client: connected.client,
        server: Box::new(connected.server),
        // A remote server knows the client by its token, not by this id.
        id: ClientId(0),
        stats: HeStats::default(),
        key_upload_bytes: connected.key_upload_bytes,
    })
}

impl Client {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, Roles>> {
        self.roles
            .lock()
            .map_err(|_| helora_error("the client is unusable: an earlier call failed inside it"))
    }
}

#[pymethods]
impl Client {
    /// Connects to `server` (a `helora serve` URL) with `token`, or serves the PEFT adapter
    /// in `in_process_adapter` from this process; then makes a secret key and registers the
    /// evaluation keys with the server (a remote client reuses the key set it stored in
    /// `key_dir` before).
    #[new]
    #[pyo3(signature = (
        server = None, *, token = None, in_process_adapter = None, pll = None, adapter = None,
        key_dir = None, ca_cert = None, retries = 5
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        server: Option<String>,
        token: Option<String>,
        in_process_adapter: Option<PathBuf>,
        pll: Option<bool>,
        adapter: Option<String>,
        key_dir: Option<PathBuf>,
        ca_cert: Option<PathBuf>,
        retries: u32,
    ) -> PyResult<Self> {
        let (roles, remote) = match (server, in_process_adapter) {
            (Some(url), None) => {
                if pll.is_some() {
                    return Err(helora_error(
                        "pll is the server's setting (helora serve --pll): drop it with server=",
                    ));
                }
                let token = token.ok_or_else(|| {
                    helora_error("server= needs token= (from `helora clients add`)")
                })?;
                let options = RemoteOptions {
                    url,
                    token,
                    adapter: adapter.unwrap_or_default(),
                    ca_cert,
                    key_dir,
                    retries,
                };
                (py.detach(|| connect(&options)).map_err(to_py)?, true)
            }
            (None, Some(dir)) => {
                if token.is_some() || adapter.is_some() || key_dir.is_some() || ca_cert.is_some() {
                    return Err(helora_error(
                        "token, adapter, key_dir and ca_cert are for a server= client, not \
                         in_process_adapter=",
                    ));
                }
                let pll = pll.unwrap_or(true);
                (py.detach(|| in_process(dir, pll)).map_err(to_py)?, false)
            }
            _ => {
                return Err(helora_error(
                    "give exactly one of server= (a helora serve URL) and in_process_adapter= \
                     (a PEFT adapter directory)",
                ))
            }
        };
        let mut roles = roles;
        let manifest = roles.server.as_mut().manifest().clone();
        let settings = roles.server.as_mut().settings().clone();
        Ok(Self {
            roles: Mutex::new(roles),
            manifest,
            settings,
            remote,
        })
    }

    /// The decrypted LoRA deltas of `modules` (adapted projections of `layer` that read the
    /// same input) for the activations `x`, a `[tokens, d_in]` float32 array: one
    /// `[tokens, d_out]` float32 array per module. One encrypted request per token, sent as
    /// one batch.
    fn deltas<'py>(
        &self,
        py: Python<'py>,
        layer: usize,
        modules: Vec<String>,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Bound<'py, PyArray2<f32>>>> {
        let x = matrix_arg(x, "x")?;
        let first = modules
            .first()
            .ok_or_else(|| helora_error("deltas: no module named"))?;
        let shape = self.manifest.find(layer, first).ok_or_else(|| {
            helora_error(format!("the server does not adapt layer {layer} {first}"))
        })?;
        let rows = rows_of(&x, shape.d_in, &format!("layer {layer} {first}"))?;
        let d_outs = modules
            .iter()
            .map(|m| {
                self.manifest
                    .find(layer, m)
                    .map(|p| p.d_out)
                    .ok_or_else(|| {
                        helora_error(format!("the server does not adapt layer {layer} {m}"))
                    })
            })
            .collect::<PyResult<Vec<_>>>()?;
        let tokens = rows.len();
        let deltas = if tokens == 0 {
            vec![Vec::new(); modules.len()]
        } else {
            py.detach(|| -> PyResult<Vec<Vec<f32>>> {
                let mut roles = self.lock()?;
                let roles = &mut *roles;
                let names: Vec<&str> = modules.iter().map(String::as_str).collect();
                let mut hook = SecureHook::new(&mut roles.client, roles.server.as_mut(), roles.id);
                hook.stats = roles.stats;
                let result = hook.encrypted_deltas(layer, &names, &rows);
                roles.stats = hook.stats;
                result.map_err(to_py)
            })?
        };
        deltas
            .into_iter()
            .zip(d_outs)
            .map(|(values, d_out)| matrix(py, values, tokens, d_out))
            .collect()
    }

    /// What the server adapts: one dict per projection (layer, module, d_in, d_out,
    /// rank_padded, bound_log2).
    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.manifest
            .projections
            .iter()
            .map(|p| {
                let d = PyDict::new(py);
                d.set_item("layer", p.layer)?;
                d.set_item("module", &p.module)?;
                d.set_item("d_in", p.d_in)?;
                d.set_item("d_out", p.d_out)?;
                d.set_item("rank_padded", p.rank_padded)?;
                d.set_item("bound_log2", p.bound_log2)?;
                Ok(d)
            })
            .collect()
    }

    /// The server's Private Linear Layer settings: noise (σ, relative to the delta), flooding,
    /// budget (queries per projection).
    #[getter]
    fn pll<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("noise", self.settings.noise)?;
        d.set_item("flooding", self.settings.flooding)?;
        d.set_item("budget", self.settings.budget)?;
        Ok(d)
    }

    /// Whether the server is across the network (`server=`) rather than in this process.
    #[getter]
    fn remote(&self) -> bool {
        self.remote
    }

    /// The counters so far: seconds encrypting, evaluating (the server's share, with the
    /// network for a remote server) and decrypting; bytes up and down; requests (one per
    /// token and call) and projections applied; for a remote server also seconds on the
    /// network and re-sent requests.
    #[getter]
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut roles = self.lock()?;
        let s = roles.stats;
        let d = PyDict::new(py);
        d.set_item("encrypt_s", s.encrypt.as_secs_f64())?;
        d.set_item("eval_s", s.eval.as_secs_f64())?;
        d.set_item("decrypt_s", s.decrypt.as_secs_f64())?;
        d.set_item("upload_bytes", s.upload_bytes)?;
        d.set_item("download_bytes", s.download_bytes)?;
        d.set_item("requests", s.requests)?;
        d.set_item("applications", s.applications)?;
        d.set_item("key_upload_bytes", roles.key_upload_bytes)?;
        if let Some(network) = roles.server.as_mut().network() {
            d.set_item("network_s", network.network().as_secs_f64())?;
            d.set_item("retries", network.retries)?;
        }
        Ok(d)
    }

    fn __repr__(&self) -> String {
        let modules: std::collections::BTreeSet<&str> = self
            .manifest
            .projections
            .iter()
            .map(|p| p.module.as_str())
            .collect();
        format!(
            "helora.Client({}, {} projections of {}, pll noise {} flooding {})",
            if self.remote { "remote" } else { "in-process" },
            self.manifest.projections.len(),
            modules.into_iter().collect::<Vec<_>>().join(", "),
            self.settings.noise,
            self.settings.flooding
        )
    }
}
