//! helora's C ABI: the client, server and remote roles of `helora-engine` for runtimes
//! in C, C++, Go or Java. The header is `include/helora.h` (cbindgen; `tests/header.rs`
//! keeps it current); docs/ffi.md has the ownership rules, threads and errors.
//!
//! A thin layer: each function checks its arguments, calls the engine's role
//! (`SecureClient`, `SecureServer`, `RemoteServer`) and turns the outcome into a status
//! code. Modules:
//! - [`error`]: status codes, the thread-local last error, panics caught at the boundary;
//! - [`handle`]: opaque handles in a registry of live ones;
//! - [`buffer`]: the caller's inputs, helora's byte buffers;
//! - `wire`: the messages between client and server (the protocol's);
//! - `keys`: the client's key file;
//! - [`params`], [`client`], [`server`], [`remote`]: the roles.

pub mod buffer;
pub mod client;
pub mod error;
mod handle;
mod keys;
pub mod params;
pub mod remote;
pub mod server;
mod wire;

/// How many handles and buffers are live in this process (made and not yet freed): for
/// leak checks. helora keeps what the caller has not freed reachable from its registry, so
/// a memory checker shows it as reachable, not lost: this count is how a test sees it.
///
/// # Safety
/// `handles` and `buffers` point to writable `size_t`s.
#[no_mangle]
pub unsafe extern "C" fn helora_live_count(
    handles: *mut usize,
    buffers: *mut usize,
) -> error::helora_status {
    error::guard(|| {
        // SAFETY: per the contract above.
        unsafe {
            buffer::write(handles, handle::live_count(), "handles")?;
            buffer::write(buffers, buffer::live_count(), "buffers")
        }
    })
}
