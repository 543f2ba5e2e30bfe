//! The client role over `helora_engine::secure::SecureClient`: keys, seeded encryption of
//! one site's input into a request, decryption of a reply. The secret key stays inside
//! the handle; only its seed is ever written, to a file the caller names (`keys.rs`).

use crate::buffer::{self, helora_buffer};
use crate::error::{
    guard, helora_status, Error, Result, WithStatus, HELORA_BAD_MESSAGE, HELORA_FAILED,
    HELORA_INVALID_ARGUMENT, HELORA_WRONG_SIZE,
};
use crate::handle::{self, Kind};
use crate::params::{helora_params, ParamsHandle};
use crate::{keys, wire};
use helora::ckks::Params;
use helora_engine::secure::{KeyUpload, Manifest, ProjectionShape, Request, SecureClient};
use std::ffi::c_char;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use zeroize::Zeroizing;

/// A client: its secret key, encoder and the server's manifest (opaque).
#[allow(non_camel_case_types)]
pub struct helora_client {
    _opaque: [u8; 0],
}

/// One encrypted site input, and what the client keeps to read its reply (opaque).
#[allow(non_camel_case_types)]
pub struct helora_request {
    _opaque: [u8; 0],
}

struct ClientHandle {
    params: Params,
    manifest: Manifest,
    seed: Zeroizing<[u8; 32]>,
    /// Encryption draws randomness: one call at a time.
    client: Mutex<SecureClient>,
    /// Made with the keys, or on first use for a client loaded from its key file.
    upload: Mutex<Option<Arc<KeyUpload>>>,
}

impl Kind for ClientHandle {
    type Opaque = helora_client;
    const NAME: &'static str = "client";
}

struct RequestHandle {
    request: Request,
    /// Σ d_out over the request's modules: the floats its reply decrypts to.
    output_len: usize,
}

impl Kind for RequestHandle {
    type Opaque = helora_request;
    const NAME: &'static str = "request";
}

/// A lock whose holder panicked: the panic was reported; the client's state is whole
/// (encryption changes nothing but its generator's position).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientHandle {
    fn new(params: &Params, manifest: Manifest, seed: Zeroizing<[u8; 32]>) -> Result<Self> {
        let (client, upload) =
            SecureClient::with_keys(params, manifest.clone(), &seed).status(HELORA_FAILED)?;
        Ok(Self {
            params: params.clone(),
            manifest,
            seed,
            client: Mutex::new(client),
            upload: Mutex::new(Some(Arc::new(upload))),
        })
    }

    fn load(params: &Params, manifest: Manifest, seed: Zeroizing<[u8; 32]>) -> Result<Self> {
        let client =
            SecureClient::from_seed(params, manifest.clone(), &seed).status(HELORA_BAD_MESSAGE)?;
        Ok(Self {
            params: params.clone(),
            manifest,
            seed,
            client: Mutex::new(client),
            upload: Mutex::new(None),
        })
    }

    fn upload(&self) -> Result<Arc<KeyUpload>> {
        let mut upload = lock(&self.upload);
        if let Some(upload) = upload.as_ref() {
            return Ok(upload.clone());
        }
        // The same seed grows the same keys.
        let (_, made) = SecureClient::with_keys(&self.params, self.manifest.clone(), &self.seed)
            .status(HELORA_FAILED)?;
        Ok(upload.insert(Arc::new(made)).clone())
    }

    fn shape(&self, layer: u32, module: &str) -> Result<&ProjectionShape> {
        self.manifest.find(layer as usize, module).ok_or_else(|| {
            Error::new(
                HELORA_INVALID_ARGUMENT,
                format!("the server does not adapt layer {layer} {module}"),
            )
        })
    }
}

/// The manifest a client is made for: bytes from `helora_server_manifest` or
/// `helora_remote_manifest`.
///
/// # Safety
/// `manifest` is NULL or points to `manifest_len` readable bytes.
unsafe fn manifest_arg(manifest: *const u8, manifest_len: usize) -> Result<Manifest> {
    // SAFETY: per this function's contract.
    let bytes = unsafe { buffer::slice(manifest, manifest_len, "manifest")? };
    wire::decode_manifest(bytes)
}

/// Makes a client with a fresh secret key for the server whose manifest is given, and the
/// evaluation keys that manifest asks for (`helora_client_key_upload`).
///
/// # Safety
/// `manifest` points to `manifest_len` readable bytes; `out` to a writable
/// `helora_client *`.
#[no_mangle]
pub unsafe extern "C" fn helora_client_new(
    params: *const helora_params,
    manifest: *const u8,
    manifest_len: usize,
    out: *mut *mut helora_client,
) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let params = handle::get::<ParamsHandle>(params)?;
        // SAFETY: per the contract above.
        let manifest = unsafe { manifest_arg(manifest, manifest_len)? };
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())
            .map_err(|e| Error::new(HELORA_FAILED, format!("no OS randomness: {e}")))?;
        out.set(handle::new(ClientHandle::new(&params.0, manifest, seed)?));
        Ok(())
    })
}

/// Makes the client whose key `helora_client_save_keys` wrote to `path`, for the server
/// whose manifest is given. Its key upload is made again on first use (the same keys).
///
/// # Safety
/// `manifest` points to `manifest_len` readable bytes; `path` is a NUL-terminated
/// string; `out` points to a writable `helora_client *`.
#[no_mangle]
pub unsafe extern "C" fn helora_client_load_keys(
    params: *const helora_params,
    manifest: *const u8,
    manifest_len: usize,
    path: *const c_char,
    out: *mut *mut helora_client,
) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let params = handle::get::<ParamsHandle>(params)?;
        // SAFETY: per the contract above.
        let (manifest, path) = unsafe {
            (
                manifest_arg(manifest, manifest_len)?,
                buffer::text(path, "path")?,
            )
        };
        let seed = keys::load(Path::new(path), params.0.id())?;
        out.set(handle::new(ClientHandle::load(&params.0, manifest, seed)?));
        Ok(())
    })
}

/// Writes the client's secret key (its 32-byte seed, as secret as the key) to `path`,
/// readable by its owner only (mode 0600), atomically. The directory must exist.
///
/// # Safety
/// `path` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn helora_client_save_keys(
    client: *const helora_client,
    path: *const c_char,
) -> helora_status {
    guard(|| {
        let client = handle::get::<ClientHandle>(client)?;
        // SAFETY: per the contract above.
        let path = unsafe { buffer::text(path, "path")? };
        keys::save(Path::new(path), &client.seed, client.params.id())
    })
}

/// The client's key upload, for `helora_server_register` or `helora_remote_register`:
/// its evaluation keys and its public key (never the secret key).
///
/// # Safety
/// `eval_keys` and `public_key` point to writable `helora_buffer`s.
#[no_mangle]
pub unsafe extern "C" fn helora_client_key_upload(
    client: *const helora_client,
    eval_keys: *mut helora_buffer,
    public_key: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let eval_keys = buffer::out(eval_keys, "eval_keys")?;
        let public_key = buffer::out(public_key, "public_key")?;
        let upload = handle::get::<ClientHandle>(client)?.upload()?;
        eval_keys.set(upload.eval_keys.clone());
        public_key.set(upload.public_key.clone());
        Ok(())
    })
}

/// The input and output sizes (d_in, d_out) of the projection `module` of `layer`.
///
/// # Safety
/// `module` is a NUL-terminated string; `d_in` and `d_out` point to writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn helora_client_shape(
    client: *const helora_client,
    layer: u32,
    module: *const c_char,
    d_in: *mut usize,
    d_out: *mut usize,
) -> helora_status {
    guard(|| {
        let client = handle::get::<ClientHandle>(client)?;
        // SAFETY: per the contract above.
        let module = unsafe { buffer::text(module, "module")? };
        let shape = client.shape(layer, module)?;
        // SAFETY: per the contract above.
        unsafe {
            buffer::write(d_in, shape.d_in, "d_in")?;
            buffer::write(d_out, shape.d_out, "d_out")
        }
    })
}

/// Encrypts one token's input `x` (`x_len` = d_in values) to the projections `modules` of
/// `layer` (`module_count` names that read the same input, e.g. "q_proj", "v_proj").
///
/// # Safety
/// `modules` points to `module_count` NUL-terminated strings, `x` to `x_len` floats, `out`
/// to a writable `helora_request *`.
#[no_mangle]
pub unsafe extern "C" fn helora_client_encrypt(
    client: *const helora_client,
    layer: u32,
    modules: *const *const c_char,
    module_count: usize,
    x: *const f32,
    x_len: usize,
    out: *mut *mut helora_request,
) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let client = handle::get::<ClientHandle>(client)?;
        // SAFETY: per the contract above.
        let (modules, x) = unsafe {
            (
                buffer::texts(modules, module_count, "modules")?,
                buffer::slice(x, x_len, "x")?,
            )
        };
        if modules.is_empty() {
            return Err(Error::new(
                HELORA_INVALID_ARGUMENT,
                "no module to encrypt for",
            ));
        }
        let mut output_len = 0;
        for module in &modules {
            let shape = client.shape(layer, module)?;
            if x.len() != shape.d_in {
                return Err(Error::new(
                    HELORA_WRONG_SIZE,
                    format!(
                        "x has {} values, layer {layer} {module} takes {}",
                        x.len(),
                        shape.d_in
                    ),
                ));
            }
            output_len += shape.d_out;
        }
        if let Some(k) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::new(
                HELORA_INVALID_ARGUMENT,
                format!("x[{k}] is {}: only finite values encrypt", x[k]),
            ));
        }
        let request = lock(&client.client)
            .encrypt(layer as usize, &modules, x)
            .status(HELORA_FAILED)?;
        out.set(handle::new(RequestHandle {
            request,
            output_len,
        }));
        Ok(())
    })
}

/// The request's bytes, to send to a server (`helora_server_apply`, `helora_remote_apply`).
///
/// # Safety
/// `out` points to a writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_request_encode(
    request: *const helora_request,
    out: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let out = buffer::out(out, "out")?;
        let request = handle::get::<RequestHandle>(request)?;
        out.set(wire::encode_request(&request.request)?);
        Ok(())
    })
}

/// How many floats the request's reply decrypts to: Σ d_out over its modules.
///
/// # Safety
/// `len` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn helora_request_output_len(
    request: *const helora_request,
    len: *mut usize,
) -> helora_status {
    guard(|| {
        let request = handle::get::<RequestHandle>(request)?;
        // SAFETY: per the contract above.
        unsafe { buffer::write(len, request.output_len, "len") }
    })
}

/// Decrypts the reply to `request` into `out`: `out_len` (= `helora_request_output_len`)
/// floats, the deltas of the request's modules one after the other, in its order.
///
/// # Safety
/// `reply` points to `reply_len` readable bytes, `out` to `out_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn helora_client_decrypt(
    client: *const helora_client,
    request: *const helora_request,
    reply: *const u8,
    reply_len: usize,
    out: *mut f32,
    out_len: usize,
) -> helora_status {
    guard(|| {
        let client = handle::get::<ClientHandle>(client)?;
        let request = handle::get::<RequestHandle>(request)?;
        // SAFETY: per the contract above.
        let (reply, out) = unsafe {
            (
                buffer::slice(reply, reply_len, "reply")?,
                buffer::slice_mut(out, out_len, "out")?,
            )
        };
        if out.len() != request.output_len {
            return Err(Error::new(
                HELORA_WRONG_SIZE,
                format!(
                    "out has {} floats, the reply holds {}",
                    out.len(),
                    request.output_len
                ),
            ));
        }
        let reply = wire::decode_reply(reply)?;
        let deltas = lock(&client.client)
            .decrypt(&request.request, &reply)
            .status(HELORA_BAD_MESSAGE)?;
        let values: Vec<f32> = deltas.into_iter().flatten().collect();
        if values.len() != out.len() {
            return Err(Error::new(
                HELORA_BAD_MESSAGE,
                format!(
                    "the reply decrypts to {} floats, expected {}",
                    values.len(),
                    out.len()
                ),
            ));
        }
        out.copy_from_slice(&values);
        Ok(())
    })
}

/// Frees a request (NULL: no-op).
#[no_mangle]
pub extern "C" fn helora_request_free(request: *mut helora_request) -> helora_status {
    guard(|| handle::free::<RequestHandle>(request))
}

/// Frees a client and its secret key (NULL: no-op).
#[no_mangle]
pub extern "C" fn helora_client_free(client: *mut helora_client) -> helora_status {
    guard(|| handle::free::<ClientHandle>(client))
}
