//! Device memory: a pool of `u64` buffers reused by exact length. Polynomials of one ring
//! come in few sizes (limbs × N), so a freed buffer is almost always taken again soon, and
//! the pool saves a driver allocation per temporary.
//!
//! Reuse needs no synchronisation: every buffer is used on the pool's one stream, so work
//! queued with a reused buffer runs after the work queued with its previous owner.

use super::device::Sticky;
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub(super) struct Pool {
    stream: Arc<CudaStream>,
    free: Mutex<HashMap<usize, Vec<CudaSlice<u64>>>>,
    pub(super) errors: Arc<Sticky>,
}

impl Pool {
    pub(super) fn new(stream: Arc<CudaStream>, errors: Arc<Sticky>) -> Arc<Self> {
        Arc::new(Self {
            stream,
            free: Mutex::new(HashMap::new()),
            errors,
        })
    }

    pub(super) fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// `len` words of uninitialised device memory. On failure the error is recorded and the
    /// buffer is empty: operations on it record an error instead of launching.
    pub(super) fn alloc(self: &Arc<Self>, len: usize) -> Buffer {
        let reused = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.get_mut(&len).and_then(Vec::pop));
        let slice = match reused {
            Some(s) => Some(s),
            // SAFETY: uninitialised device memory; every user writes before it reads.
            None => match unsafe { self.stream.alloc::<u64>(len) } {
                Ok(s) => Some(s),
                Err(e) => {
                    self.errors
                        .record(|| format!("allocating {} bytes on the device: {e}", len * 8));
                    None
                }
            },
        };
        Buffer {
            slice,
            pool: self.clone(),
        }
    }

    /// Frees every pooled buffer (those still in use return when dropped).
    pub(super) fn trim(&self) {
        if let Ok(mut free) = self.free.lock() {
            free.clear();
        }
    }

    /// Bytes held by the pool for reuse.
    pub(super) fn pooled_bytes(&self) -> usize {
        self.free.lock().map_or(0, |free| {
            free.iter().map(|(len, v)| len * v.len() * 8).sum()
        })
    }
}

/// A device buffer that returns to its pool when dropped.
pub(super) struct Buffer {
    slice: Option<CudaSlice<u64>>,
    pool: Arc<Pool>,
}

impl Buffer {
    pub(super) fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    pub(super) fn slice(&self) -> Option<&CudaSlice<u64>> {
        self.slice.as_ref()
    }

    /// The device address of word `offset`, or None for a buffer whose allocation failed.
    pub(super) fn ptr(&self, offset: usize) -> Option<u64> {
        let slice = self.slice.as_ref()?;
        (offset <= slice.len()).then(|| {
            let (ptr, _sync) = slice.device_ptr(self.pool.stream());
            ptr + 8 * offset as u64
        })
    }

    pub(super) fn len(&self) -> usize {
        self.slice.as_ref().map_or(0, CudaSlice::len)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(slice) = self.slice.take() {
            if let Ok(mut free) = self.pool.free.lock() {
                free.entry(slice.len()).or_default().push(slice);
            }
        }
    }
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ptr(0) {
            Some(p) => write!(f, "device buffer {:#x} ({} words)", p, self.len()),
            None => write!(f, "device buffer (allocation failed)"),
        }
    }
}
