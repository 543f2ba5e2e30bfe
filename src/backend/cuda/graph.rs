//! CUDA graphs: the work a closure queues on the backend's stream (e.g. one whole
//! `LoraPlan::apply`: a few hundred kernel launches), captured once and replayed with one
//! launch, without the host queueing each kernel again.
//!
//! - Capture mode: thread-local. The capture takes what any thread queues on the stream, but
//!   only this thread is barred from calls that are unsafe during a capture (`cuMemAlloc`,
//!   synchronous copies, synchronisation), so a mistake in the captured work fails the
//!   capture instead of being missed, while other threads (a base model on another stream)
//!   are not disturbed as they would be in global mode. The pool's one deliberate
//!   `cuMemAlloc` relaxes the mode around itself (memory.rs). The capture begins and ends on
//!   the calling thread, as thread-local mode requires.
//! - Memory: buffers allocated or freed during the capture belong to the graph until it and
//!   the buffers of its output are dropped (memory.rs); the graph reads and writes the
//!   addresses they had during the capture on every replay.
//! - What cannot be captured (upload, download, synchronize, timing events, another capture
//!   or a graph launch inside the capture) returns an error and fails the capture. Errors of
//!   the captured work fail the capture, not the backend: that work never ran.

use super::device::{driver, Sticky};
use super::memory::GraphMemory;
use super::{BackendError, CudaBackend, CudaPoly};
use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode, CUstreamCaptureStatus};
use cudarc::driver::CudaGraph;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

/// A captured, instantiated graph: [`launch`](Self::launch) replays the captured work on the
/// backend's stream.
///
/// It reads and writes the device addresses of its capture: polynomials made before the
/// capture that the work used (inputs, keys, plan diagonals) must stay alive while it is
/// replayed, and a new input goes into the captured input's buffers
/// ([`CudaBackend::copy_into`]). It borrows the backend whose kernels and tables its nodes
/// use. Not `Send`: CUDA graphs are not internally synchronised.
pub struct CapturedGraph<'a> {
    // Field order: the executable graph is destroyed before its memory goes back to the pool
    // (a replay still in flight completes first, and later users of the memory queue after
    // it on the same stream).
    graph: CudaGraph,
    _memory: Option<Arc<GraphMemory>>,
    errors: Arc<Sticky>,
    _backend: PhantomData<&'a CudaBackend>,
}

impl std::fmt::Debug for CapturedGraph<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CapturedGraph({:p})", self.graph.cu_graph_exec())
    }
}

impl CapturedGraph<'_> {
    /// Queues one replay on the backend's stream and returns at once.
    pub fn launch(&self) -> Result<(), BackendError> {
        refuse_while_capturing(&self.errors, "launching a captured graph")?;
        self.errors.check()?;
        self.graph
            .launch()
            .map_err(|e| driver("launching a CUDA graph", e))
    }
}

/// An error, recorded so that the capture under way fails, if there is one: `what` cannot
/// be captured.
pub(super) fn refuse_while_capturing(errors: &Sticky, what: &str) -> Result<(), BackendError> {
    if !errors.capturing() {
        return Ok(());
    }
    let message = format!("{what} is not possible while a CUDA graph is being captured");
    errors.record(|| message.clone());
    Err(BackendError::Device(message))
}

impl CudaBackend {
    /// Runs `f` and captures the work it queues on this backend's stream into a graph,
    /// instead of running it; returns the instantiated graph and `f`'s output (e.g. the
    /// reply ciphertexts, whose buffers every replay writes). Nothing has run when this
    /// returns: launch the graph to run it.
    ///
    /// `f` must queue only on this backend, from this thread or threads it waits for, and
    /// nothing else may use the backend meanwhile (the capture takes all of the stream).
    /// Fails, leaving the backend usable, if the backend has failed before, if a capture is
    /// under way, or if anything inside `f` failed or could not be captured.
    pub fn capture<T>(
        &self,
        f: impl FnOnce() -> T,
    ) -> Result<(CapturedGraph<'_>, T), BackendError> {
        let refused =
            |why: &str| BackendError::Device(format!("cannot capture a CUDA graph: {why}"));
        // Inside a capture: refused, and the outer capture fails.
        refuse_while_capturing(&self.errors, "beginning another capture")?;
        self.errors.check()?;
        if self.device.is_managing_stream_synchronization() {
            // cudarc would wait on per-buffer events recorded outside the capture.
            return Err(refused(
                "the context tracks buffer events across streams (cudarc's event tracking)",
            ));
        }
        self.pool.begin_capture().map_err(|e| refused(&e))?;
        self.errors.begin_capture();
        let begun = self
            .stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        if let Err(e) = begun {
            self.errors.end_capture();
            drop(self.pool.end_capture());
            return Err(driver("beginning a CUDA graph capture", e));
        }

        let out = panic::catch_unwind(AssertUnwindSafe(f));

        // Every path ends the capture, so the stream and the pool are usable again.
        let ended = self.stream.end_capture(CUgraphInstantiate_flags(0));
        let failure = self.errors.end_capture();
        let memory = self.pool.end_capture();
        self.check_capture_ended();
        let out = match out {
            Ok(out) => out,
            Err(payload) => {
                drop(ended);
                drop(memory);
                panic::resume_unwind(payload)
            }
        };
        let graph = match (ended, failure) {
            (_, Some(e)) => Err(BackendError::Device(format!("capturing a CUDA graph: {e}"))),
            (Err(e), None) => Err(driver("ending a CUDA graph capture", e)),
            (Ok(None), None) => Err(refused("the driver returned no graph")),
            (Ok(Some(graph)), None) => Ok(graph),
        }?;
        // Moves the graph's resources to the device now rather than at the first launch.
        graph
            .upload()
            .map_err(|e| driver("uploading a CUDA graph", e))?;
        Ok((
            CapturedGraph {
                graph,
                _memory: memory,
                errors: self.errors.clone(),
                _backend: PhantomData,
            },
            out,
        ))
    }

    /// Copies `src` into `dst`'s buffer on the stream (asynchronous): e.g. the next input
    /// into the input a graph was captured with. Both must have the same basis and domain.
    pub fn copy_into(&self, dst: &mut CudaPoly, src: &CudaPoly) -> Result<(), BackendError> {
        if dst.basis != src.basis || dst.ntt_form != src.ntt_form || dst.n != src.n {
            return Err(BackendError::Shape(format!(
                "copying a polynomial over {:?} (NTT form {}) into one over {:?} (NTT form {})",
                src.basis, src.ntt_form, dst.basis, dst.ntt_form
            )));
        }
        let missing = || BackendError::Device("a polynomial without device memory".into());
        let to = self.addr(dst).ok_or_else(missing)?;
        let from = self.addr(src).ok_or_else(missing)?;
        let bytes = src.words() * 8;
        if bytes == 0 || to == from {
            return Ok(());
        }
        self.device
            .bind_to_thread()
            .map_err(|e| driver("binding the CUDA context", e))?;
        // SAFETY: both buffers hold at least `words` u64 (checked by `addr`) of this stream's
        // memory; distinct buffers of the pool do not overlap.
        let r = unsafe {
            cudarc::driver::result::memcpy_dtod_async(to, from, bytes, self.stream.cu_stream())
        };
        r.map_err(|e| driver("copying a polynomial on the device", e))
    }

    /// After a capture ended or failed: the stream must not be capturing any more (if it
    /// still is, the backend's error says so from now on).
    fn check_capture_ended(&self) {
        match self.stream.capture_status() {
            Ok(CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE) => {}
            Ok(status) => self.errors.record(|| {
                format!("the stream is still capturing after the capture ended ({status:?})")
            }),
            Err(e) => self
                .errors
                .record(|| format!("reading the stream's capture status: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Errors during a capture fail the capture and leave the backend's error untouched;
    /// refusals happen only while capturing.
    #[test]
    fn capture_errors_go_to_the_capture() {
        let errors = Sticky::default();
        assert!(refuse_while_capturing(&errors, "an upload").is_ok());
        errors.begin_capture();
        assert!(errors.capturing());
        assert!(refuse_while_capturing(&errors, "an upload").is_err());
        errors.record(|| "a later failure".into());
        let failure = errors.end_capture().expect("the capture's error");
        assert!(
            failure.contains("an upload"),
            "the first error is kept: {failure}"
        );
        assert!(!errors.capturing());
        assert!(errors.check().is_ok(), "the backend's error is untouched");
        errors.begin_capture();
        assert_eq!(errors.end_capture(), None, "a clean capture");
        errors.record(|| "outside".into());
        assert!(errors.check().is_err(), "outside a capture errors stick");
    }
}
