//! The server role over `helora_engine::secure::SecureServer`: an adapter directory, the
//! PLL, clients' evaluation keys, and the evaluation of requests.

use crate::buffer::{self, helora_buffer};
use crate::error::{
    guard, helora_status, Error, WithStatus, HELORA_BAD_MESSAGE, HELORA_FAILED,
    HELORA_INVALID_ARGUMENT, HELORA_REFUSED,
};
use crate::handle::{self, Kind};
use crate::params::{helora_params, ParamsHandle};
use crate::wire;
use helora::pll::{ClientId, PllSettings};
use helora_engine::adapter::LoraAdapter;
use helora_engine::secure::SecureServer;
use std::ffi::c_char;
use std::path::Path;
use std::sync::Mutex;

/// A server: one adapter, its PLL and its registered clients (opaque).
#[allow(non_camel_case_types)]
pub struct helora_server {
    _opaque: [u8; 0],
}

/// The server charges budgets as it answers: one call at a time (each uses every core).
struct ServerHandle(Mutex<SecureServer>);

impl Kind for ServerHandle {
    type Opaque = helora_server;
    const NAME: &'static str = "server";
}

impl ServerHandle {
    fn lock(&self) -> std::sync::MutexGuard<'_, SecureServer> {
        // A panic mid-call was reported; the server refuses what it cannot answer.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Bytes that do not make a valid request or key set are the client's
/// ([`HELORA_BAD_MESSAGE`]); the PLL's refusals (an unknown client, a spent budget) are
/// [`HELORA_REFUSED`]; anything else is the server's failure.
fn apply_error(e: anyhow::Error) -> Error {
    let status = if e
        .chain()
        .any(|c| c.is::<helora_engine::secure::BadRequest>())
    {
        HELORA_BAD_MESSAGE
    } else if e.chain().any(|c| c.is::<helora::pll::PllError>()) {
        HELORA_REFUSED
    } else {
        HELORA_FAILED
    };
    Error::new(status, format!("{e:#}"))
}

/// Loads the PEFT adapter in directory `adapter_dir` (adapter_config.json,
/// adapter_model.safetensors) and encodes it for the server; `pll` true puts the Private
/// Linear Layer's protection on (noise, flooding, a query budget per client), false
/// answers exact deltas.
///
/// # Safety
/// `adapter_dir` is a NUL-terminated string; `out` points to a writable `helora_server *`.
#[no_mangle]
pub unsafe extern "C" fn helora_server_load(
    params: *const helora_params,
    adapter_dir: *const c_char,
    pll: bool,
    out: *mut *mut helora_server,
) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let params = handle::get::<ParamsHandle>(params)?;
        // SAFETY: per the contract above.
        let dir = unsafe { buffer::text(adapter_dir, "adapter_dir")? };
        let adapter =
            LoraAdapter::load_standalone(Path::new(dir)).status(HELORA_INVALID_ARGUMENT)?;
        let settings = if pll {
            PllSettings::default()
        } else {
            PllSettings::off()
        };
        let server = SecureServer::new(&params.0, &adapter, settings).status(HELORA_FAILED)?;
        out.set(handle::new(ServerHandle(Mutex::new(server))));
        Ok(())
    })
}

/// The server's manifest (shapes, rotations, PLL settings), for `helora_client_new`.
///
/// # Safety
/// `out` points to a writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_server_manifest(
    server: *const helora_server,
    out: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let out = buffer::out(out, "out")?;
        let server = handle::get::<ServerHandle>(server)?;
        let server = server.lock();
        out.set(wire::encode_manifest(
            "",
            server.manifest(),
            server.settings(),
        )?);
        Ok(())
    })
}

/// Admits client `client_id` (the caller's name for it) with its key upload
/// (`helora_client_key_upload`'s two buffers).
///
/// # Safety
/// `eval_keys` points to `eval_keys_len` readable bytes, `public_key` to
/// `public_key_len`.
#[no_mangle]
pub unsafe extern "C" fn helora_server_register(
    server: *const helora_server,
    client_id: u64,
    eval_keys: *const u8,
    eval_keys_len: usize,
    public_key: *const u8,
    public_key_len: usize,
) -> helora_status {
    guard(|| {
        let server = handle::get::<ServerHandle>(server)?;
        // SAFETY: per the contract above.
        let (eval_keys, public_key) =
            unsafe { buffer::key_set(eval_keys, eval_keys_len, public_key, public_key_len)? };
        let registered = server
            .lock()
            .register_client(ClientId(client_id), eval_keys, public_key);
        registered.map_err(apply_error)
    })
}

/// Answers client `client_id`'s request (`helora_request_encode`'s bytes) with its reply's
/// bytes, for `helora_client_decrypt`.
///
/// # Safety
/// `request` points to `request_len` readable bytes; `reply` to a writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_server_apply(
    server: *const helora_server,
    client_id: u64,
    request: *const u8,
    request_len: usize,
    reply: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let reply = buffer::out(reply, "reply")?;
        let server = handle::get::<ServerHandle>(server)?;
        // SAFETY: per the contract above.
        let request = unsafe { buffer::slice(request, request_len, "request")? };
        let requests = wire::decode_requests(request)?;
        let replies = server
            .lock()
            .apply_batch(ClientId(client_id), &requests)
            .map_err(apply_error)?;
        reply.set(wire::encode_replies(replies));
        Ok(())
    })
}

/// Frees a server (NULL: no-op).
#[no_mangle]
pub extern "C" fn helora_server_free(server: *mut helora_server) -> helora_status {
    guard(|| handle::free::<ServerHandle>(server))
}
