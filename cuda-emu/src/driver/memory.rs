//! Allocation, copies and memsets. Synchronous calls wait for all queued work first (as the
//! legacy default stream does); asynchronous ones queue on their stream, except device-to-
//! host copies, which (to pageable host memory, as cudarc's are) return only when the data
//! is there: they run their stream's work first. Addresses are checked when a call is made
//! (CUDA_ERROR_INVALID_VALUE) and again when the work runs (a use after free then is a
//! sticky CUDA_ERROR_ILLEGAL_ADDRESS).

use super::stream::Work;
use super::{api, put, Driver};
use crate::error::*;
use std::ffi::c_void;
use std::sync::Arc;

type DevPtr = u64;
type Stream = *mut c_void;

fn check_range(d: &mut Driver, addr: DevPtr, len: usize, what: &str) -> Result<()> {
    d.heap.snapshot().find(addr, len).map(drop).map_err(|m| {
        Error::new(
            INVALID_VALUE,
            format!(
                "{what} of {len} bytes at {addr:#x}: {}",
                m.describe(addr, len)
            ),
        )
    })
}

fn alloc(d: &mut Driver, out: *mut DevPtr, bytes: usize) -> Result<()> {
    if bytes == 0 {
        return Err(Error::new(INVALID_VALUE, "an allocation of 0 bytes"));
    }
    let p = d.heap.alloc(bytes).ok_or_else(|| {
        Error::new(
            OUT_OF_MEMORY,
            format!("{bytes} bytes (the emulated device has 80 GiB)"),
        )
    })?;
    // SAFETY: the caller's contract (an output pointer, checked for null by `put`).
    unsafe { put(out, p) }
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuMemAlloc_v2(out: *mut DevPtr, bytes: usize) -> CuResult {
    api("cuMemAlloc_v2", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("cuMemAlloc")?;
        alloc(d, out, bytes)
    })
}

/// Waits for all queued work (as the driver's cuMemFree does), then frees.
#[no_mangle]
pub extern "C" fn cuMemFree_v2(ptr: DevPtr) -> CuResult {
    api("cuMemFree_v2", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("cuMemFree")?;
        d.run_all()?;
        d.heap
            .free(ptr)
            .map(drop)
            .map_err(|e| Error::new(INVALID_VALUE, format!("cuMemFree of {ptr:#x}: {e}")))
    })
}

/// Stream-ordered allocation: the memory exists at once (usable by work queued after this).
///
/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuMemAllocAsync(out: *mut DevPtr, bytes: usize, s: Stream) -> CuResult {
    api("cuMemAllocAsync", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            d.invalidate(id, "a stream-ordered allocation in the capture");
            return Err(Error::new(
                NOT_SUPPORTED,
                "not emulated: memory allocation nodes (cuMemAllocAsync during a capture)",
            ));
        }
        alloc(d, out, bytes)
    })
}

/// Stream-ordered free: the memory goes when the stream reaches this point.
#[no_mangle]
pub extern "C" fn cuMemFreeAsync(ptr: DevPtr, s: Stream) -> CuResult {
    api("cuMemFreeAsync", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            d.invalidate(id, "a stream-ordered free in the capture");
            return Err(Error::new(
                NOT_SUPPORTED,
                "not emulated: memory free nodes (cuMemFreeAsync during a capture)",
            ));
        }
        check_range(d, ptr, 1, "cuMemFreeAsync")?;
        d.enqueue(id, Work::Free { ptr }).map(drop)
    })
}

/// # Safety
/// `src` is valid for `bytes` bytes of reads.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(
    dst: DevPtr,
    src: *const c_void,
    bytes: usize,
    s: Stream,
) -> CuResult {
    api("cuMemcpyHtoDAsync_v2", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            d.invalidate(id, "a copy from pageable host memory in the capture");
            return Err(Error::new(
                STREAM_CAPTURE_UNSUPPORTED,
                "a host-to-device copy from pageable memory during a capture",
            ));
        }
        if bytes == 0 {
            return Ok(());
        }
        if src.is_null() {
            return Err(Error::new(INVALID_VALUE, "a null source"));
        }
        check_range(d, dst, bytes, "cuMemcpyHtoDAsync")?;
        // The driver stages pageable memory before returning: the data is taken now.
        // SAFETY: `src` holds `bytes` readable bytes (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(src.cast::<u8>(), bytes) }.to_vec();
        d.enqueue(
            id,
            Work::HtoD {
                dst,
                data: Arc::new(data),
            },
        )
        .map(drop)
    })
}

/// # Safety
/// `src` is valid for `bytes` bytes of reads.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(
    dst: DevPtr,
    src: *const c_void,
    bytes: usize,
) -> CuResult {
    api("cuMemcpyHtoD_v2", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("a synchronous cuMemcpyHtoD")?;
        d.run_all()?;
        if bytes == 0 {
            return Ok(());
        }
        if src.is_null() {
            return Err(Error::new(INVALID_VALUE, "a null source"));
        }
        check_range(d, dst, bytes, "cuMemcpyHtoD")?;
        // SAFETY: `src` holds `bytes` readable bytes (the caller's contract).
        let data = unsafe { std::slice::from_raw_parts(src.cast::<u8>(), bytes) }.to_vec();
        d.enqueue(
            0,
            Work::HtoD {
                dst,
                data: Arc::new(data),
            },
        )?;
        d.drain(0)
    })
}

fn dtoh(d: &mut Driver, dst: *mut c_void, src: DevPtr, bytes: usize) -> Result<()> {
    if bytes == 0 {
        return Ok(());
    }
    if dst.is_null() {
        return Err(Error::new(INVALID_VALUE, "a null destination"));
    }
    let snap = d.heap.snapshot();
    let (a, off) = snap.find(src, bytes).map_err(|m| {
        Error::new(
            ILLEGAL_ADDRESS,
            format!(
                "a device-to-host copy of {bytes} bytes at {src:#x}: {}",
                m.describe(src, bytes)
            ),
        )
    })?;
    // SAFETY: `dst` holds `bytes` writable bytes (the caller's contract).
    let out = unsafe { std::slice::from_raw_parts_mut(dst.cast::<u8>(), bytes) };
    if !a.read_bytes(off, out) {
        eprintln!("cuda-emu: warning: a device-to-host copy of {bytes} bytes at {src:#x} reads memory nothing wrote");
    }
    Ok(())
}

/// Runs the stream's queued work, then copies (a copy to pageable host memory returns when
/// the data is there).
///
/// # Safety
/// `dst` is valid for `bytes` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(
    dst: *mut c_void,
    src: DevPtr,
    bytes: usize,
    s: Stream,
) -> CuResult {
    api("cuMemcpyDtoHAsync_v2", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if d.capturing(id) {
            d.invalidate(id, "a copy to pageable host memory in the capture");
            return Err(Error::new(
                STREAM_CAPTURE_UNSUPPORTED,
                "a device-to-host copy to pageable memory during a capture",
            ));
        }
        check_range(d, src, bytes.max(1), "cuMemcpyDtoHAsync")?;
        d.drain(id)?;
        dtoh(d, dst, src, bytes)
    })
}

/// # Safety
/// `dst` is valid for `bytes` bytes of writes.
#[no_mangle]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: DevPtr, bytes: usize) -> CuResult {
    api("cuMemcpyDtoH_v2", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("a synchronous cuMemcpyDtoH")?;
        check_range(d, src, bytes.max(1), "cuMemcpyDtoH")?;
        d.run_all()?;
        dtoh(d, dst, src, bytes)
    })
}

#[no_mangle]
pub extern "C" fn cuMemcpyDtoDAsync_v2(
    dst: DevPtr,
    src: DevPtr,
    bytes: usize,
    s: Stream,
) -> CuResult {
    api("cuMemcpyDtoDAsync_v2", |d| {
        d.ready()?;
        let id = d.stream_id(s)?;
        if bytes == 0 {
            return Ok(());
        }
        check_range(d, src, bytes, "cuMemcpyDtoDAsync (source)")?;
        check_range(d, dst, bytes, "cuMemcpyDtoDAsync (destination)")?;
        d.enqueue(
            id,
            Work::DtoD {
                dst,
                src,
                len: bytes,
            },
        )
        .map(drop)
    })
}

#[no_mangle]
pub extern "C" fn cuMemcpyDtoD_v2(dst: DevPtr, src: DevPtr, bytes: usize) -> CuResult {
    api("cuMemcpyDtoD_v2", |d| {
        d.ready()?;
        d.refuse_unsafe_during_capture("a synchronous cuMemcpyDtoD")?;
        if bytes == 0 {
            return Ok(());
        }
        check_range(d, src, bytes, "cuMemcpyDtoD (source)")?;
        check_range(d, dst, bytes, "cuMemcpyDtoD (destination)")?;
        d.enqueue(
            0,
            Work::DtoD {
                dst,
                src,
                len: bytes,
            },
        )?;
        d.drain(0)
    })
}

fn memset(
    d: &mut Driver,
    s: Option<Stream>,
    dst: DevPtr,
    value: u32,
    elem: usize,
    count: usize,
) -> Result<()> {
    d.ready()?;
    if !dst.is_multiple_of(elem as u64) {
        return Err(Error::new(
            INVALID_VALUE,
            format!("a {elem}-byte memset at the misaligned {dst:#x}"),
        ));
    }
    if count == 0 {
        return Ok(());
    }
    check_range(d, dst, elem * count, "a memset")?;
    match s {
        Some(s) => {
            let id = d.stream_id(s)?;
            d.enqueue(
                id,
                Work::Memset {
                    dst,
                    value,
                    elem,
                    count,
                },
            )
            .map(drop)
        }
        None => {
            d.refuse_unsafe_during_capture("a synchronous memset")?;
            d.enqueue(
                0,
                Work::Memset {
                    dst,
                    value,
                    elem,
                    count,
                },
            )?;
            d.drain(0)
        }
    }
}

#[no_mangle]
pub extern "C" fn cuMemsetD8Async(dst: DevPtr, value: u8, count: usize, s: Stream) -> CuResult {
    api("cuMemsetD8Async", |d| {
        memset(d, Some(s), dst, value.into(), 1, count)
    })
}

#[no_mangle]
pub extern "C" fn cuMemsetD16Async(dst: DevPtr, value: u16, count: usize, s: Stream) -> CuResult {
    api("cuMemsetD16Async", |d| {
        memset(d, Some(s), dst, value.into(), 2, count)
    })
}

#[no_mangle]
pub extern "C" fn cuMemsetD32Async(dst: DevPtr, value: u32, count: usize, s: Stream) -> CuResult {
    api("cuMemsetD32Async", |d| {
        memset(d, Some(s), dst, value, 4, count)
    })
}

#[no_mangle]
pub extern "C" fn cuMemsetD8_v2(dst: DevPtr, value: u8, count: usize) -> CuResult {
    api("cuMemsetD8_v2", |d| {
        memset(d, None, dst, value.into(), 1, count)
    })
}

#[no_mangle]
pub extern "C" fn cuMemsetD32_v2(dst: DevPtr, value: u32, count: usize) -> CuResult {
    api("cuMemsetD32_v2", |d| memset(d, None, dst, value, 4, count))
}
