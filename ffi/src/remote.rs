//! A `helora serve` server across the network, over `helora_engine::serve::remote::
//! RemoteServer`: connect (URL, API token, TLS), register a key set, apply requests, either
//! blocking or submitted and polled.

use crate::buffer::{self, helora_buffer};
use crate::error::{
    guard, helora_status, Error, Result, WithStatus, HELORA_INVALID_ARGUMENT, HELORA_NETWORK,
    HELORA_PANIC,
};
use crate::handle::{self, Kind};
use crate::params::{helora_params, ParamsHandle};
use crate::wire;
use helora::pll::ClientId;
use helora_engine::secure::{Request, Serve};
use helora_engine::serve::remote::{RemoteOptions, RemoteServer};
use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A connection to a `helora serve` server (opaque).
#[allow(non_camel_case_types)]
pub struct helora_remote {
    _opaque: [u8; 0],
}

/// A request on its way (`helora_remote_submit`): poll it, then take its reply (opaque).
#[allow(non_camel_case_types)]
pub struct helora_pending {
    _opaque: [u8; 0],
}

/// One session's stream carries one request at a time, in order: calls take turns.
struct RemoteHandle(Arc<Mutex<RemoteServer>>);

impl Kind for RemoteHandle {
    type Opaque = helora_remote;
    const NAME: &'static str = "remote";
}

struct PendingHandle(Mutex<Option<JoinHandle<Result<Vec<u8>>>>>);

impl Kind for PendingHandle {
    type Opaque = helora_pending;
    const NAME: &'static str = "pending";
}

/// Sends `requests` and waits for their replies' bytes.
fn apply(remote: &Mutex<RemoteServer>, requests: &[Request]) -> Result<Vec<u8>> {
    // A call that panicked left no half-sent message behind: the next reopens its stream.
    let mut remote = remote
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let replies = remote
        .apply_batch(ClientId(0), requests)
        .status(HELORA_NETWORK)?;
    Ok(wire::encode_replies(replies))
}

/// Connects to the server at `url` (`http://HOST:PORT`, or `https://…` for TLS) with the API
/// token `token` (`helora clients add`), for its adapter `adapter` (NULL or "": the server's
/// only one), trusting the CA certificate (PEM) at `ca_cert` besides the system's (NULL:
/// none). Fetches the manifest; register a key set before the first request.
///
/// # Safety
/// `url` and `token` are NUL-terminated strings, `adapter` and `ca_cert` NULL or such
/// strings; `out` points to a writable `helora_remote *`.
#[no_mangle]
pub unsafe extern "C" fn helora_remote_connect(
    params: *const helora_params,
    url: *const c_char,
    token: *const c_char,
    adapter: *const c_char,
    ca_cert: *const c_char,
    out: *mut *mut helora_remote,
) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let params = handle::get::<ParamsHandle>(params)?;
        // SAFETY: per the contract above.
        let options = unsafe {
            RemoteOptions {
                url: buffer::text(url, "url")?.to_string(),
                token: buffer::text(token, "token")?.to_string(),
                adapter: buffer::optional_text(adapter, "adapter")?
                    .unwrap_or_default()
                    .to_string(),
                ca_cert: buffer::optional_text(ca_cert, "ca_cert")?.map(PathBuf::from),
                // Keys are the caller's (helora_client_save_keys): no key directory.
                key_dir: None,
                retries: 3,
            }
        };
        let remote = RemoteServer::open(&options, &params.0).status(HELORA_NETWORK)?;
        out.set(handle::new(RemoteHandle(Arc::new(Mutex::new(remote)))));
        Ok(())
    })
}

/// The server's manifest for the adapter, for `helora_client_new`.
///
/// # Safety
/// `out` points to a writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_remote_manifest(
    remote: *const helora_remote,
    out: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let out = buffer::out(out, "out")?;
        let remote = handle::get::<RemoteHandle>(remote)?;
        let remote = remote
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        out.set(wire::encode_manifest(
            remote.adapter(),
            remote.manifest(),
            remote.settings(),
        )?);
        Ok(())
    })
}

/// Uploads a client's key set (`helora_client_key_upload`'s two buffers); the server keeps
/// it under this token, and requests from this handle go under it. A key set the server
/// holds already is accepted again.
///
/// # Safety
/// `eval_keys` points to `eval_keys_len` readable bytes, `public_key` to `public_key_len`.
#[no_mangle]
pub unsafe extern "C" fn helora_remote_register(
    remote: *const helora_remote,
    eval_keys: *const u8,
    eval_keys_len: usize,
    public_key: *const u8,
    public_key_len: usize,
) -> helora_status {
    guard(|| {
        let remote = handle::get::<RemoteHandle>(remote)?;
        // SAFETY: per the contract above.
        let (eval_keys, public_key) =
            unsafe { buffer::key_set(eval_keys, eval_keys_len, public_key, public_key_len)? };
        let mut remote = remote
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remote
            .register_keys(eval_keys, public_key)
            .status(HELORA_NETWORK)
    })
}

/// Sends a request (`helora_request_encode`'s bytes) and waits for its reply's bytes, for
/// `helora_client_decrypt`.
///
/// # Safety
/// `request` points to `request_len` readable bytes; `reply` to a writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_remote_apply(
    remote: *const helora_remote,
    request: *const u8,
    request_len: usize,
    reply: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let reply = buffer::out(reply, "reply")?;
        let remote = handle::get::<RemoteHandle>(remote)?;
        // SAFETY: per the contract above.
        let request = unsafe { buffer::slice(request, request_len, "request")? };
        reply.set(apply(&remote.0, &wire::decode_requests(request)?)?);
        Ok(())
    })
}

/// Sends a request without waiting: its round trip runs on a thread of its own (requests
/// of one handle still go one at a time, in the order submitted). Poll it with
/// `helora_pending_ready`, take its reply with `helora_pending_wait`.
///
/// # Safety
/// `request` points to `request_len` readable bytes (copied before the call returns);
/// `out` to a writable `helora_pending *`.
#[no_mangle]
pub unsafe extern "C" fn helora_remote_submit(
    remote: *const helora_remote,
    request: *const u8,
    request_len: usize,
    out: *mut *mut helora_pending,
) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let remote = handle::get::<RemoteHandle>(remote)?;
        // SAFETY: per the contract above.
        let request = unsafe { buffer::slice(request, request_len, "request")? };
        let requests = wire::decode_requests(request)?;
        let server = remote.0.clone();
        let worker = std::thread::Builder::new()
            .name("helora-remote".to_string())
            .spawn(move || apply(&server, &requests))
            .map_err(|e| {
                Error::new(
                    crate::error::HELORA_FAILED,
                    format!("starting a thread: {e}"),
                )
            })?;
        out.set(handle::new(PendingHandle(Mutex::new(Some(worker)))));
        Ok(())
    })
}

/// Whether the submitted request's reply (or its error) is there: `*ready` true, and
/// `helora_pending_wait` returns at once.
///
/// # Safety
/// `ready` points to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn helora_pending_ready(
    pending: *const helora_pending,
    ready: *mut bool,
) -> helora_status {
    guard(|| {
        let pending = handle::get::<PendingHandle>(pending)?;
        let worker = pending
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // A reply taken already counts as there (the wait that took it has returned).
        let done = worker.as_ref().is_none_or(JoinHandle::is_finished);
        // SAFETY: per the contract above.
        unsafe { buffer::write(ready, done, "ready") }
    })
}

/// Waits for the submitted request's reply and hands it over (once: a second wait is
/// `HELORA_INVALID_ARGUMENT`). The request's error, if it failed, is this call's.
///
/// # Safety
/// `reply` points to a writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_pending_wait(
    pending: *const helora_pending,
    reply: *mut helora_buffer,
) -> helora_status {
    guard(|| {
        let reply = buffer::out(reply, "reply")?;
        let pending = handle::get::<PendingHandle>(pending)?;
        let worker = pending
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or_else(|| Error::new(HELORA_INVALID_ARGUMENT, "the reply was taken already"))?;
        let bytes = worker.join().map_err(|_| {
            Error::new(
                HELORA_PANIC,
                "internal error (a panic in helora's request thread)",
            )
        })??;
        reply.set(bytes);
        Ok(())
    })
}

/// Frees a pending request (NULL: no-op). One still in flight finishes on its own; its
/// reply is dropped.
#[no_mangle]
pub extern "C" fn helora_pending_free(pending: *mut helora_pending) -> helora_status {
    guard(|| handle::free::<PendingHandle>(pending))
}

/// Frees a connection (NULL: no-op); it closes once its submitted requests are done.
#[no_mangle]
pub extern "C" fn helora_remote_free(remote: *mut helora_remote) -> helora_status {
    guard(|| handle::free::<RemoteHandle>(remote))
}
