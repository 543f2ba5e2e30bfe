//! Device-side timing for benchmarks: CUDA events recorded on the backend's stream (they
//! time what the device did between them, not what the host waited), and the device's
//! copy bandwidth, the yardstick of the memory-traffic floors.

use super::device::{driver, Sticky};
use super::graph::refuse_while_capturing;
use super::{BackendError, CudaBackend};
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{CudaEvent, CudaStream};
use std::sync::Arc;
use std::time::Duration;

/// A start/stop pair of timing events on one stream.
pub struct StreamTimer {
    start: CudaEvent,
    stop: CudaEvent,
    stream: Arc<CudaStream>,
    errors: Arc<Sticky>,
}

impl StreamTimer {
    /// Marks the start: work queued from now on is timed.
    pub fn start(&self) -> Result<(), BackendError> {
        refuse_while_capturing(&self.errors, "a timing event")?;
        self.start
            .record(&self.stream)
            .map_err(|e| driver("recording a timing event", e))
    }

    /// Marks the end, waits for it (the only host wait), and returns the device time
    /// between the two marks. Reports the first failure of the timed work.
    pub fn stop(&self) -> Result<Duration, BackendError> {
        refuse_while_capturing(&self.errors, "a timing event")?;
        self.stop
            .record(&self.stream)
            .map_err(|e| driver("recording a timing event", e))?;
        let ms = self
            .start
            .elapsed_ms(&self.stop)
            .map_err(|e| driver("reading a timing event", e))?;
        self.errors.check()?;
        Ok(Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3))
    }
}

impl CudaBackend {
    /// A timer on this backend's stream.
    pub fn timer(&self) -> Result<StreamTimer, BackendError> {
        // Events made without flags cannot time (cudarc's default disables timing).
        let event = || {
            self.device
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| driver("creating a timing event", e))
        };
        Ok(StreamTimer {
            start: event()?,
            stop: event()?,
            stream: self.stream.clone(),
            errors: self.errors.clone(),
        })
    }

    /// Device-to-device copy bandwidth in bytes per second, counting the bytes read and the
    /// bytes written (2 × the copy's size): the median of `reps` copies of `bytes` (after
    /// one warm-up copy). Use a size well above the L2 cache so that DRAM is measured.
    pub fn copy_bandwidth(&self, bytes: usize, reps: usize) -> Result<f64, BackendError> {
        refuse_while_capturing(&self.errors, "measuring the copy bandwidth")?;
        let words = bytes.div_ceil(8).max(1);
        let alloc = || {
            self.stream
                .alloc_zeros::<u64>(words)
                .map_err(|e| driver("allocating the bandwidth buffers", e))
        };
        let (src, dst) = (alloc()?, alloc()?);
        let timer = self.timer()?;
        let copy = || {
            let (s, _) = cudarc::driver::DevicePtr::device_ptr(&src, &self.stream);
            let (d, _) = cudarc::driver::DevicePtr::device_ptr(&dst, &self.stream);
            self.device
                .bind_to_thread()
                .map_err(|e| driver("binding the CUDA context", e))?;
            // SAFETY: both buffers hold `words` u64 on this stream and outlive the copy
            // (the timer waits for it before they drop).
            let r = unsafe {
                cudarc::driver::result::memcpy_dtod_async(d, s, words * 8, self.stream.cu_stream())
            };
            r.map_err(|e| driver("copying on the device", e))
        };
        copy()?;
        let mut samples = Vec::with_capacity(reps.max(1));
        for _ in 0..reps.max(1) {
            timer.start()?;
            copy()?;
            samples.push(timer.stop()?.as_secs_f64());
        }
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2];
        if median <= 0.0 {
            return Err(BackendError::Device(
                "a device copy took no measurable time".into(),
            ));
        }
        Ok(2.0 * (words * 8) as f64 / median)
    }
}
