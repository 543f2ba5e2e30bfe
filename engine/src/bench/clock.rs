//! What the device benchmarks (`device_ops.rs`, `device_lora.rs`) need beyond `Backend`: a
//! clock on the backend's queue, its launch count, its name, its copy bandwidth and a wait.
//! On CUDA: events on the backend's stream. On the CPU backend, which runs the same
//! benchmark code in tests on any machine: the host's clock, and no launches.

use anyhow::Result;
use helora::backend::{Backend, CpuBackend};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Marks the start and the end of timed work on a backend's queue.
pub trait Timer {
    fn start(&self) -> Result<()>;
    /// The time since `start` of the work queued in between; waits for it.
    fn stop(&self) -> Result<Duration>;
}

pub trait Device: Backend {
    fn device_name(&self) -> Result<String>;
    /// How `timer` measures, for the reports.
    fn clock(&self) -> &'static str;
    fn timer(&self) -> Result<Box<dyn Timer + '_>>;
    /// Kernel launches queued so far (0 where there are none).
    fn launches(&self) -> u64;
    /// Copy bandwidth, bytes read + written per second, over copies of `bytes`.
    fn copy_bandwidth(&self, bytes: usize, reps: usize) -> Result<f64>;
    /// Waits for all queued work; reports its first failure.
    fn wait(&self) -> Result<()>;
    /// Frees cached buffers that are not in use.
    fn trim(&self);
}

/// The host's clock: work on the CPU backend is done when its call returns.
struct HostTimer(Cell<Option<Instant>>);

impl Timer for HostTimer {
    fn start(&self) -> Result<()> {
        self.0.set(Some(Instant::now()));
        Ok(())
    }

    fn stop(&self) -> Result<Duration> {
        self.0
            .get()
            .map(|t| t.elapsed())
            .ok_or_else(|| anyhow::anyhow!("timer stopped before it started"))
    }
}

impl Device for CpuBackend {
    fn device_name(&self) -> Result<String> {
        Ok("cpu".into())
    }

    fn clock(&self) -> &'static str {
        "the host's clock"
    }

    fn timer(&self) -> Result<Box<dyn Timer + '_>> {
        Ok(Box::new(HostTimer(Cell::new(None))))
    }

    fn launches(&self) -> u64 {
        0
    }

    fn copy_bandwidth(&self, bytes: usize, reps: usize) -> Result<f64> {
        let src = vec![1u8; bytes.max(1)];
        let mut dst = vec![0u8; src.len()];
        let mut samples: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let start = Instant::now();
                dst.copy_from_slice(black_box(&src));
                black_box(&mut dst);
                start.elapsed().as_secs_f64()
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let median = samples[samples.len() / 2].max(1e-9);
        Ok(2.0 * src.len() as f64 / median)
    }

    fn wait(&self) -> Result<()> {
        Ok(())
    }

    fn trim(&self) {}
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::{Device, Timer};
    use anyhow::Result;
    use helora::backend::{CudaBackend, StreamTimer};
    use std::time::Duration;

    impl Timer for StreamTimer {
        fn start(&self) -> Result<()> {
            Ok(StreamTimer::start(self)?)
        }

        fn stop(&self) -> Result<Duration> {
            Ok(StreamTimer::stop(self)?)
        }
    }

    impl Device for CudaBackend {
        fn device_name(&self) -> Result<String> {
            Ok(CudaBackend::device_name(self)?)
        }

        fn clock(&self) -> &'static str {
            "CUDA events on the backend's stream"
        }

        fn timer(&self) -> Result<Box<dyn Timer + '_>> {
            Ok(Box::new(CudaBackend::timer(self)?))
        }

        fn launches(&self) -> u64 {
            CudaBackend::launches(self)
        }

        fn copy_bandwidth(&self, bytes: usize, reps: usize) -> Result<f64> {
            Ok(CudaBackend::copy_bandwidth(self, bytes, reps)?)
        }

        fn wait(&self) -> Result<()> {
            Ok(self.synchronize()?)
        }

        fn trim(&self) {
            self.trim_pool();
        }
    }
}
