//! The HE steps of one LoRA projection, one call each, for timing from Python (a notebook):
//! `parameters()`, `keygen(server)`, `Client.encrypt`, `Server.apply`, `Client.decrypt`.
//! They are the engine's roles (`SecureClient`, `SecureServer`) on a one-projection adapter
//! made from factor arrays, so what is timed is exactly what `generate` runs per projection.

use crate::arrays::{matrix_arg, vector_arg};
use crate::error::{helora_error, to_py};
use candle_core::{Device, Tensor};
use helora::pll::{ClientId, PllSettings};
use helora_engine::adapter::{LoraAdapter, LoraFactors};
use helora_engine::secure::{self, Manifest, SecureClient, SecureServer};
use numpy::{IntoPyArray, PyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The projection's name in the one-projection adapter.
const LAYER: usize = 0;
const MODULE: &str = "proj";
/// The one client a benchmark server holds.
const CLIENT: ClientId = ClientId(1);

/// The CKKS parameter set both roles use: ring degree, slots, levels, scale and primes.
#[pyfunction]
pub fn parameters(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let params = secure::parameters().map_err(to_py)?;
    let bits =
        |primes: &[u64]| -> Vec<u32> { primes.iter().map(|q| 64 - q.leading_zeros()).collect() };
    let d = PyDict::new(py);
    d.set_item("n", params.n())?;
    d.set_item("slots", params.slots())?;
    d.set_item("max_level", params.max_level())?;
    d.set_item("log_scale", params.default_scale().log2())?;
    d.set_item("q_bits", bits(params.q_primes()))?;
    d.set_item("p_bits", bits(params.p_primes()))?;
    // The compact reply's widths (c0, c1 in bits, helora::linear::reply_widths): its
    // rounding is most of a decrypted delta's error (docs/python.md).
    d.set_item("reply_bits", helora::linear::reply_widths(&params))?;
    d.set_item("id", params.id())?;
    Ok(d)
}

/// A `[rows, cols]` float32 array as a tensor, every entry finite.
fn factor(m: &PyReadonlyArray2<'_, f32>, what: &str) -> PyResult<Tensor> {
    let m = m.as_array();
    let (rows, cols) = m.dim();
    if rows == 0 || cols == 0 {
        return Err(helora_error(format!("{what} is empty ({rows} × {cols})")));
    }
    let values: Vec<f32> = m.iter().copied().collect();
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(helora_error(format!(
            "{what} entry ({}, {}) is {}",
            k / cols,
            k % cols,
            values[k]
        )));
    }
    Tensor::from_vec(values, (rows, cols), &Device::Cpu)
        .map_err(|e| helora_error(format!("{what}: {e}")))
}

/// The model owner's side for one projection, delta = x·a·b.
#[pyclass(name = "HeServer", module = "helora.he")]
pub struct Server {
    server: Mutex<SecureServer>,
    manifest: Manifest,
}

/// The user's side: its secret key never leaves this object.
#[pyclass(name = "HeClient", module = "helora.he")]
pub struct Client {
    client: Mutex<SecureClient>,
    d_in: usize,
}

/// The evaluation and public keys a client sends its server once.
#[pyclass(module = "helora.he")]
pub struct KeyUpload {
    keys: secure::KeyUpload,
}

/// One token's encrypted input (seeded ciphertexts) and the client's scaling of it.
#[pyclass(module = "helora.he")]
pub struct Request {
    request: secure::Request,
}

/// The server's encrypted answer (compact ciphertexts).
#[pyclass(module = "helora.he")]
pub struct Reply {
    reply: secure::Reply,
}

fn locked<T>(m: &Mutex<T>) -> PyResult<std::sync::MutexGuard<'_, T>> {
    m.lock()
        .map_err(|_| helora_error("unusable: an earlier call failed inside it"))
}

#[pymethods]
impl Server {
    /// Encodes the factors `a` (`[d_in, r]`) and `b` (`[r, d_out]`, the LoRA scaling
    /// included) for the HE plan, with the Private Linear Layer on or off.
    #[new]
    #[pyo3(signature = (a, b, *, pll = false))]
    fn new(
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        pll: bool,
    ) -> PyResult<Self> {
        let (a, b) = (
            factor(&matrix_arg(a, "a")?, "a")?,
            factor(&matrix_arg(b, "b")?, "b")?,
        );
        let (rank, rows_b) = (a.dims()[1], b.dims()[0]);
        if rank != rows_b {
            return Err(helora_error(format!(
                "a has {rank} columns and b {rows_b} rows: they must both be the rank"
            )));
        }
        if rank > helora::linear::MAX_RANK {
            return Err(helora_error(format!(
                "rank {rank} is above {}",
                helora::linear::MAX_RANK
            )));
        }
        let adapter = LoraAdapter {
            source: PathBuf::from("(arrays)"),
            rank,
            alpha: rank as f64,
            scaling: 1.0,
            target_modules: vec![MODULE.to_string()],
            layers: BTreeMap::from([((LAYER, MODULE.to_string()), LoraFactors { a, b })]),
        };
        let settings = if pll {
            PllSettings::default()
        } else {
            PllSettings::off()
        };
        let server = py
            .detach(|| SecureServer::new(&secure::parameters()?, &adapter, settings))
            .map_err(to_py)?;
        Ok(Self {
            manifest: server.manifest().clone(),
            server: Mutex::new(server),
        })
    }

    /// Admits the client whose keys these are (a server holds one).
    fn register(&self, py: Python<'_>, keys: PyRef<'_, KeyUpload>) -> PyResult<()> {
        let keys = &keys.keys;
        py.detach(|| {
            locked(&self.server)?
                .register_client(CLIENT, &keys.eval_keys, &keys.public_key)
                .map_err(to_py)
        })
    }

    /// The LoRA plan (with the PLL when on) on one encrypted input.
    fn apply(&self, py: Python<'_>, request: PyRef<'_, Request>) -> PyResult<Reply> {
        let request = &request.request;
        let reply = py.detach(|| locked(&self.server)?.apply(CLIENT, request).map_err(to_py))?;
        Ok(Reply { reply })
    }
}

/// A client with a fresh secret key for `server`, and the keys to register with it.
#[pyfunction]
pub fn keygen(py: Python<'_>, server: PyRef<'_, Server>) -> PyResult<(Client, KeyUpload)> {
    let manifest = server.manifest.clone();
    let d_in = manifest.projections.first().map_or(0, |p| p.d_in);
    let (client, keys) = py
        .detach(|| SecureClient::new(&secure::parameters()?, manifest))
        .map_err(to_py)?;
    Ok((
        Client {
            client: Mutex::new(client),
            d_in,
        },
        KeyUpload { keys },
    ))
}

#[pymethods]
impl Client {
    /// Encrypts one token's input `x` (`d_in` float32 values).
    fn encrypt(&self, py: Python<'_>, x: &Bound<'_, PyAny>) -> PyResult<Request> {
        let x = vector_arg(x, "x")?.as_array().to_vec();
        if x.len() != self.d_in {
            return Err(helora_error(format!(
                "x has {} values; the projection takes {}",
                x.len(),
                self.d_in
            )));
        }
        let request = py.detach(|| {
            locked(&self.client)?
                .encrypt(LAYER, &[MODULE], &x)
                .map_err(to_py)
        })?;
        Ok(Request { request })
    }

    /// The delta x·a·b (float32, `d_out` values) that `reply` to `request` holds.
    fn decrypt<'py>(
        &self,
        py: Python<'py>,
        request: PyRef<'py, Request>,
        reply: PyRef<'py, Reply>,
    ) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let (request, reply) = (&request.request, &reply.reply);
        let mut deltas =
            py.detach(|| locked(&self.client)?.decrypt(request, reply).map_err(to_py))?;
        let delta = deltas
            .pop()
            .ok_or_else(|| helora_error("the reply holds no delta"))?;
        Ok(delta.into_pyarray(py))
    }
}

#[pymethods]
impl KeyUpload {
    /// Bytes of the evaluation and public keys.
    #[getter]
    fn nbytes(&self) -> usize {
        self.keys.eval_keys.len() + self.keys.public_key.len()
    }
}

#[pymethods]
impl Request {
    /// Bytes on the wire (the seeded ciphertexts).
    #[getter]
    fn nbytes(&self) -> usize {
        self.request.bytes()
    }
}

#[pymethods]
impl Reply {
    /// Bytes on the wire (the compact ciphertexts).
    #[getter]
    fn nbytes(&self) -> usize {
        self.reply.bytes()
    }
}
