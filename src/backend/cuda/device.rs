//! The CUDA driver, context and stream, and the backend's sticky error.

use super::super::BackendError;
use cudarc::driver::{CudaContext, CudaStream, DriverError};
use std::sync::{Arc, Mutex};

/// Opens device `ordinal` with a stream of its own.
pub(super) fn open(ordinal: usize) -> Result<(Arc<CudaContext>, Arc<CudaStream>), BackendError> {
    check_device(ordinal)?;
    let ctx = CudaContext::new(ordinal).map_err(|e| driver("creating a CUDA context", e))?;
    // SAFETY: every buffer this context's handle creates is used only on the one stream
    // below (allocation, kernels, copies, free), so stream order is all the synchronisation
    // they need; cudarc's per-buffer events would only add a record per kernel argument.
    // The flag belongs to this `CudaContext` handle, not to other users of the device.
    unsafe { ctx.disable_event_tracking() };
    let stream = ctx
        .new_stream()
        .map_err(|e| driver("creating a CUDA stream", e))?;
    Ok((ctx, stream))
}

/// Checks that the CUDA driver is there and has device `ordinal`, with a clear error
/// where it is not (no GPU, no driver, or the stub libraries of a build machine). Callers
/// that open the device some other way (candle) check with this first.
pub fn check_device(ordinal: usize) -> Result<(), BackendError> {
    // Dynamic loading panics on the first driver call when `libcuda.so` is missing; a
    // linked binary does not start without it, so there the library is known to be there.
    #[cfg(not(feature = "cuda-linked"))]
    // SAFETY: only tries to dlopen the driver library and drops it again.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(BackendError::NoDevice(
            "libcuda.so (the driver) could not be loaded".into(),
        ));
    }
    let count = CudaContext::device_count().map_err(|e| BackendError::NoDevice(e.to_string()))?;
    if count <= 0 {
        return Err(BackendError::NoDevice(
            "the CUDA driver reports no device".into(),
        ));
    }
    if ordinal >= count as usize {
        return Err(BackendError::NoDevice(format!(
            "CUDA device {ordinal} does not exist ({count} found)"
        )));
    }
    Ok(())
}

/// Makes the stream's context current on this thread before a raw driver call (a copy or a
/// memset): those need it, and a rayon worker may not have made it current yet (cudarc's own
/// launches and allocations bind it themselves).
pub(super) fn bind(stream: &CudaStream, errors: &Sticky) {
    errors.record_result(
        "binding the CUDA context",
        stream.context().bind_to_thread(),
    );
}

pub(super) fn driver(what: &str, e: DriverError) -> BackendError {
    BackendError::Device(format!("{what}: {e}"))
}

/// The first error of an operation that cannot return one (kernel launches, allocations in
/// `Backend` methods without a `Result`), kept like CUDA's own asynchronous errors: once set
/// it stays, and `download` and `synchronize` report it.
///
/// While a graph is captured, errors go to the capture instead: its work has not run, so a
/// failure fails the capture and leaves the backend as it was.
#[derive(Debug, Default)]
pub(super) struct Sticky(Mutex<StickyState>);

#[derive(Debug, Default)]
struct StickyState {
    first: Option<String>,
    /// Some while capturing: the capture's first error, if any.
    capture: Option<Option<String>>,
}

impl Sticky {
    fn state(&self) -> std::sync::MutexGuard<'_, StickyState> {
        // Every critical section leaves the state consistent, even one that panicked.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn record(&self, message: impl FnOnce() -> String) {
        let mut state = self.state();
        let slot = match &mut state.capture {
            Some(capture) => capture,
            None => &mut state.first,
        };
        if slot.is_none() {
            *slot = Some(message());
        }
    }

    pub(super) fn record_result<T>(&self, what: &str, r: Result<T, DriverError>) {
        if let Err(e) = r {
            self.record(|| format!("{what}: {e}"));
        }
    }

    pub(super) fn check(&self) -> Result<(), BackendError> {
        match self.state().first.as_ref() {
            Some(m) => Err(BackendError::Device(format!(
                "an earlier CUDA operation failed: {m}"
            ))),
            None => Ok(()),
        }
    }

    /// Whether a capture is under way (its errors go to it).
    pub(super) fn capturing(&self) -> bool {
        self.state().capture.is_some()
    }

    /// Errors go to the capture from now on.
    pub(super) fn begin_capture(&self) {
        self.state().capture = Some(None);
    }

    /// Errors stick to the backend again; the capture's first error, if any.
    pub(super) fn end_capture(&self) -> Option<String> {
        self.state().capture.take().flatten()
    }
}
