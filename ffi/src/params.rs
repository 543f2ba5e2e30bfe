//! The CKKS parameters both roles use (`helora_engine::secure::parameters`: N = 2^13,
//! depth 2, 128-bit secure). Immutable once made: a handle may be shared by threads.

use crate::buffer;
use crate::error::{guard, helora_status, WithStatus, HELORA_FAILED};
use crate::handle::{self, Kind};
use helora::ckks::Params;

/// CKKS parameters (opaque).
#[allow(non_camel_case_types)]
pub struct helora_params {
    _opaque: [u8; 0],
}

pub(crate) struct ParamsHandle(pub Params);

impl Kind for ParamsHandle {
    type Opaque = helora_params;
    const NAME: &'static str = "params";
}

/// Makes the parameters both roles use; free them with `helora_params_free`.
///
/// # Safety
/// `out` is NULL or points to a writable `helora_params *`.
#[no_mangle]
pub unsafe extern "C" fn helora_params_new(out: *mut *mut helora_params) -> helora_status {
    guard(|| {
        let out = handle::out(out, "out")?;
        let params = helora_engine::secure::parameters().status(HELORA_FAILED)?;
        out.set(handle::new(ParamsHandle(params)));
        Ok(())
    })
}

/// The parameter set's id (a server with other parameters refuses this client).
///
/// # Safety
/// `id` is NULL or points to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn helora_params_id(
    params: *const helora_params,
    id: *mut u64,
) -> helora_status {
    guard(|| {
        let params = handle::get::<ParamsHandle>(params)?;
        // SAFETY: per the contract above.
        unsafe { buffer::write(id, params.0.id(), "id") }
    })
}

/// Frees parameters (NULL: no-op). Handles made from them stay valid.
#[no_mangle]
pub extern "C" fn helora_params_free(params: *mut helora_params) -> helora_status {
    guard(|| handle::free::<ParamsHandle>(params))
}
