//! Initialisation, the one device, its primary context, the context current per thread, and
//! error strings.

use super::{api, put, Driver, CURRENT, DEVICE_NAME, DRIVER_VERSION, SM};
use crate::device::heap::TOTAL_BYTES;
use crate::error::{self, *};
use std::cell::Cell;
use std::ffi::{c_char, c_int, c_uint, c_void};

type CuDevice = c_int;
type CuContext = *mut c_void;

fn device(d: CuDevice) -> Result<()> {
    if d == 0 {
        Ok(())
    } else {
        Err(Error::new(
            INVALID_DEVICE,
            format!("device {d} (the emulator has device 0 only)"),
        ))
    }
}

fn initialized(d: &Driver) -> Result<()> {
    if d.initialized {
        Ok(())
    } else {
        Err(Error::new(NOT_INITIALIZED, "cuInit was not called"))
    }
}

#[no_mangle]
pub extern "C" fn cuInit(flags: c_uint) -> CuResult {
    api("cuInit", |d| {
        if flags != 0 {
            return Err(Error::new(INVALID_VALUE, "cuInit flags must be 0"));
        }
        d.initialized = true;
        Ok(())
    })
}

/// # Safety
/// `v` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDriverGetVersion(v: *mut c_int) -> CuResult {
    // SAFETY: the caller's contract.
    api("cuDriverGetVersion", |_| unsafe { put(v, DRIVER_VERSION) })
}

/// # Safety
/// `count` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CuResult {
    api("cuDeviceGetCount", |d| {
        initialized(d)?;
        // SAFETY: the caller's contract.
        unsafe { put(count, 1) }
    })
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGet(out: *mut CuDevice, ordinal: c_int) -> CuResult {
    api("cuDeviceGet", |d| {
        initialized(d)?;
        device(ordinal)?;
        // SAFETY: the caller's contract.
        unsafe { put(out, 0) }
    })
}

/// # Safety
/// `name` is null or valid for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CuDevice) -> CuResult {
    api("cuDeviceGetName", |d| {
        initialized(d)?;
        device(dev)?;
        if name.is_null() || len <= 0 {
            return Err(Error::new(INVALID_VALUE, "a null or empty name buffer"));
        }
        let bytes = DEVICE_NAME.to_bytes_with_nul();
        let n = bytes.len().min(len as usize);
        // SAFETY: `name` holds `len` ≥ n bytes (the caller's contract); the name is
        // truncated and terminated within them.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), name, n);
            *name.add(n - 1) = 0;
        }
        Ok(())
    })
}

/// The attributes of an H100 (sm_90) that the emulator reproduces; others are refused.
fn attribute(a: c_int) -> Option<c_int> {
    Some(match a {
        1 => 1024,                // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,            // MAX_BLOCK_DIM_X, _Y
        4 => 64,                  // MAX_BLOCK_DIM_Z
        5 => i32::MAX,            // MAX_GRID_DIM_X
        6 | 7 => 65535,           // MAX_GRID_DIM_Y, _Z
        8 => 48 * 1024,           // MAX_SHARED_MEMORY_PER_BLOCK
        10 => 32,                 // WARP_SIZE
        12 => 65536,              // MAX_REGISTERS_PER_BLOCK
        16 => 132,                // MULTIPROCESSOR_COUNT
        39 => 2048,               // MAX_THREADS_PER_MULTIPROCESSOR
        41 => 1,                  // UNIFIED_ADDRESSING
        75 => (SM / 10) as c_int, // COMPUTE_CAPABILITY_MAJOR
        76 => (SM % 10) as c_int, // COMPUTE_CAPABILITY_MINOR
        81 => 228 * 1024,         // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        97 => 227 * 1024,         // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        115 => 1, // MEMORY_POOLS_SUPPORTED (as on an H100: cudarc then allocates stream-ordered)
        _ => return None,
    })
}

/// # Safety
/// `pi` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceGetAttribute(
    pi: *mut c_int,
    attrib: c_int,
    dev: CuDevice,
) -> CuResult {
    api("cuDeviceGetAttribute", |d| {
        initialized(d)?;
        device(dev)?;
        let v = attribute(attrib).ok_or_else(|| {
            Error::new(
                INVALID_VALUE,
                format!("not emulated: cuDeviceGetAttribute of attribute {attrib}"),
            )
        })?;
        // SAFETY: the caller's contract.
        unsafe { put(pi, v) }
    })
}

/// # Safety
/// `bytes` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CuDevice) -> CuResult {
    api("cuDeviceTotalMem_v2", |d| {
        initialized(d)?;
        device(dev)?;
        // SAFETY: the caller's contract.
        unsafe { put(bytes, TOTAL_BYTES as usize) }
    })
}

/// # Safety
/// Both pointers are null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CuResult {
    api("cuMemGetInfo_v2", |d| {
        d.ready()?;
        // SAFETY: the caller's contract.
        unsafe {
            put(free, (TOTAL_BYTES - d.heap.in_use()) as usize)?;
            put(total, TOTAL_BYTES as usize)
        }
    })
}

/// # Safety
/// `ctx` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(ctx: *mut CuContext, dev: CuDevice) -> CuResult {
    api("cuDevicePrimaryCtxRetain", |d| {
        initialized(d)?;
        device(dev)?;
        if ctx.is_null() {
            return Err(Error::new(INVALID_VALUE, "a null output pointer"));
        }
        d.context_refs += 1;
        let h = d.context_handle().unwrap_or(0);
        // SAFETY: the caller's contract.
        unsafe { put(ctx, h as CuContext) }
    })
}

/// Releases the primary context; the last release destroys it and everything in it (after
/// its queued work ran, as the driver waits for it).
#[no_mangle]
pub extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CuDevice) -> CuResult {
    api("cuDevicePrimaryCtxRelease_v2", |d| {
        initialized(d)?;
        device(dev)?;
        if d.context_refs == 0 {
            return Err(Error::new(
                INVALID_CONTEXT,
                "the primary context is not retained",
            ));
        }
        d.context_refs -= 1;
        if d.context_refs == 0 {
            // Queued work runs first; a fault it has dies with the context.
            let _ = d.run_all();
            d.destroy_context();
        }
        Ok(())
    })
}

#[no_mangle]
pub extern "C" fn cuCtxSetCurrent(ctx: CuContext) -> CuResult {
    api("cuCtxSetCurrent", |d| {
        initialized(d)?;
        let h = ctx as u64;
        if h != 0 && d.context_handle() != Some(h) {
            return Err(Error::new(
                INVALID_CONTEXT,
                format!("{h:#x} is not a live context"),
            ));
        }
        CURRENT.with(|c| c.set(h));
        Ok(())
    })
}

/// # Safety
/// `ctx` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetCurrent(ctx: *mut CuContext) -> CuResult {
    api("cuCtxGetCurrent", |d| {
        initialized(d)?;
        let cur = CURRENT.with(Cell::get);
        // SAFETY: the caller's contract.
        unsafe { put(ctx, cur as CuContext) }
    })
}

/// # Safety
/// `dev` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuCtxGetDevice(dev: *mut CuDevice) -> CuResult {
    api("cuCtxGetDevice", |d| {
        d.ready()?;
        // SAFETY: the caller's contract.
        unsafe { put(dev, 0) }
    })
}

/// Runs all queued work; its first fault.
#[no_mangle]
pub extern "C" fn cuCtxSynchronize() -> CuResult {
    api("cuCtxSynchronize", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("cuCtxSynchronize")?;
        d.run_all()
    })
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorString(code: CuResult, out: *mut *const c_char) -> CuResult {
    if out.is_null() {
        return INVALID_VALUE;
    }
    match error::description(code) {
        // SAFETY: `out` is valid for a write (the caller's contract); the string is static.
        Some(s) => unsafe {
            *out = s.as_ptr();
            SUCCESS
        },
        None => unsafe {
            // SAFETY: as above.
            *out = std::ptr::null();
            INVALID_VALUE
        },
    }
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuGetErrorName(code: CuResult, out: *mut *const c_char) -> CuResult {
    if out.is_null() {
        return INVALID_VALUE;
    }
    match error::name(code) {
        // SAFETY: `out` is valid for a write (the caller's contract); the string is static.
        Some(s) => unsafe {
            *out = s.as_ptr();
            SUCCESS
        },
        None => unsafe {
            // SAFETY: as above.
            *out = std::ptr::null();
            INVALID_VALUE
        },
    }
}
