//! cuLaunchKernel: the launch checks the driver makes when a launch is queued (block and grid
//! limits, the kernel's `.maxntid`/`.reqntid`, shared memory against the per-block limit and
//! the function's opt-in), and the parameter buffer built as the driver builds it: each
//! declared parameter's size read from `kernelParams[i]`.

use super::stream::Work;
use super::{api, Driver};
use crate::error::*;
use crate::ptx::exec;
use std::ffi::{c_uint, c_void};

const MAX_BLOCK: [u32; 3] = [1024, 1024, 64];
const MAX_GRID: [u32; 3] = [i32::MAX as u32, 65535, 65535];
/// Blocks per launch the race tags can tell apart.
const MAX_BLOCKS: u64 = (1 << 24) - 1;

#[allow(clippy::too_many_arguments)]
fn launch(
    d: &mut Driver,
    f: *mut c_void,
    grid: [u32; 3],
    block: [u32; 3],
    shared: u32,
    s: *mut c_void,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> Result<()> {
    d.ready()?;
    let id = d.stream_id(s)?;
    let func = d
        .functions
        .get(&(f as u64))
        .ok_or_else(|| Error::new(INVALID_HANDLE, format!("{:#x} is not a function", f as u64)))?;
    let k = func.kernel.clone();
    let name = &k.name;
    if !extra.is_null() {
        return Err(Error::new(
            NOT_SUPPORTED,
            format!("{name}: not emulated: the `extra` launch argument"),
        ));
    }
    for i in 0..3 {
        if block[i] == 0 || block[i] > MAX_BLOCK[i] || grid[i] == 0 || grid[i] > MAX_GRID[i] {
            return Err(Error::new(
                INVALID_VALUE,
                format!("{name}: grid {grid:?} block {block:?} outside sm_90's limits"),
            ));
        }
    }
    let threads = block.iter().product::<u32>();
    let limit = k.max_threads.unwrap_or(1024).min(1024);
    if threads > limit {
        return Err(Error::new(
            LAUNCH_OUT_OF_RESOURCES,
            format!("{name}: {threads} threads per block, at most {limit}"),
        ));
    }
    if let Some(req) = k.required_block {
        if req != block {
            return Err(Error::new(
                INVALID_VALUE,
                format!("{name}: block {block:?} but .reqntid {req:?}"),
            ));
        }
    }
    let blocks = grid.iter().map(|&g| u64::from(g)).product::<u64>();
    if blocks > MAX_BLOCKS {
        return Err(Error::new(
            NOT_SUPPORTED,
            format!("{name}: not emulated: grids of over {MAX_BLOCKS} blocks"),
        ));
    }
    let shared = shared as usize;
    if shared > func.max_dynamic_shared || k.static_shared + shared > super::module::OPTIN_SHARED {
        return Err(Error::new(
            INVALID_VALUE,
            format!(
                "{name}: {shared} bytes of dynamic shared memory, the function allows {} (cuFuncSetAttribute raises it)",
                func.max_dynamic_shared
            ),
        ));
    }
    if !k.params.is_empty() && params.is_null() {
        return Err(Error::new(
            INVALID_VALUE,
            format!("{name}: {} parameters but no kernelParams", k.params.len()),
        ));
    }
    let mut buf = vec![0u8; k.param_bytes];
    for (i, p) in k.params.iter().enumerate() {
        // SAFETY: kernelParams holds one pointer per declared parameter, each to a value of
        // the parameter's size (the driver API's contract, which the driver relies on too).
        let ptr = unsafe { *params.add(i) };
        if ptr.is_null() {
            return Err(Error::new(
                INVALID_VALUE,
                format!("{name}: kernelParams[{i}] is null"),
            ));
        }
        // SAFETY: as above.
        let v = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), p.size) };
        buf[p.offset..p.offset + p.size].copy_from_slice(v);
    }
    let l = exec::Launch {
        kernel: k,
        grid,
        block,
        dynamic_shared: shared,
        params: buf,
        id: 0,
    };
    d.enqueue(id, Work::Launch(Box::new(l))).map(drop)
}

/// # Safety
/// `params` holds a pointer per kernel parameter, each to a value of its size.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: *mut c_void,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    shared: c_uint,
    s: *mut c_void,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CuResult {
    api("cuLaunchKernel", |d| {
        launch(d, f, [gx, gy, gz], [bx, by, bz], shared, s, params, extra)
    })
}
