//! What the benchmarks that run on any backend (`ops.rs` with `device_ops.rs`, `lora.rs`
//! with `device_lora.rs`) need beyond `Backend`: a clock on the backend's queue, its launch
//! count, its name, its copy bandwidth, a wait, and captured work to replay. On CUDA: events
//! on the backend's stream, and CUDA graphs. On the CPU backend, which runs the CPU benches
//! and, in tests on any machine, the device benches' code: the host's clock, no launches,
//! and no graphs (a replay runs the work again, eagerly).

use anyhow::Result;
use helora::backend::{Backend, CpuBackend};
use helora::ring::RnsPoly;
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Work captured once and replayed on fixed buffers: the input it reads (refill it between
/// launches) and the output every launch writes.
pub trait Replay<S, T> {
    fn input(&mut self) -> &mut S;
    /// Queues one replay.
    fn launch(&mut self) -> Result<()>;
    fn output(&self) -> &T;
}

/// Marks the start and the end of timed work on a backend's queue.
pub trait Timer {
    fn start(&self) -> Result<()>;
    /// The time since `start` of the work queued in between; waits for it.
    fn stop(&self) -> Result<Duration>;
}

pub trait TimedBackend: Backend {
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
    /// How `capture` replays, for the reports.
    fn replay_mode(&self) -> &'static str;
    /// Launches one replay queues (a graph: 1; the CPU backend: 0).
    fn launches_per_replay(&self) -> u64;
    /// Captures the work `f` queues on `input` for replays.
    fn capture<'a, S: 'a, T: 'a>(
        &'a self,
        input: S,
        f: impl FnMut(&S) -> Result<T> + 'a,
    ) -> Result<Box<dyn Replay<S, T> + 'a>>;
    /// Copies `src` into `dst` on the backend's queue (same basis and domain).
    fn copy_into(&self, dst: &mut Self::Poly, src: &Self::Poly) -> Result<()>;
}

/// Work on an input, run again by each eager "replay".
type Work<'a, S, T> = Box<dyn FnMut(&S) -> Result<T> + 'a>;

/// The CPU backend's "replay": no graph, each launch runs the work again, eagerly.
struct Eager<'a, S, T> {
    input: S,
    f: Work<'a, S, T>,
    output: T,
}

impl<S, T> Replay<S, T> for Eager<'_, S, T> {
    fn input(&mut self) -> &mut S {
        &mut self.input
    }

    fn launch(&mut self) -> Result<()> {
        self.output = (self.f)(&self.input)?;
        Ok(())
    }

    fn output(&self) -> &T {
        &self.output
    }
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

impl TimedBackend for CpuBackend {
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

    fn replay_mode(&self) -> &'static str {
        "none on the CPU backend: each replay runs the apply again, eagerly"
    }

    fn launches_per_replay(&self) -> u64 {
        0
    }

    fn capture<'a, S: 'a, T: 'a>(
        &'a self,
        input: S,
        mut f: impl FnMut(&S) -> Result<T> + 'a,
    ) -> Result<Box<dyn Replay<S, T> + 'a>> {
        let output = f(&input)?;
        Ok(Box::new(Eager {
            input,
            f: Box::new(f),
            output,
        }))
    }

    fn copy_into(&self, dst: &mut RnsPoly, src: &RnsPoly) -> Result<()> {
        if (dst.n(), dst.basis(), dst.ntt_form) != (src.n(), src.basis(), src.ntt_form) {
            anyhow::bail!("copying a polynomial into one of another shape");
        }
        dst.clone_from(src);
        Ok(())
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use super::{Replay, TimedBackend, Timer};
    use anyhow::Result;
    use helora::backend::cuda::CapturedGraph;
    use helora::backend::{CudaBackend, CudaPoly, StreamTimer};
    use std::time::Duration;

    impl Timer for StreamTimer {
        fn start(&self) -> Result<()> {
            Ok(StreamTimer::start(self)?)
        }

        fn stop(&self) -> Result<Duration> {
            Ok(StreamTimer::stop(self)?)
        }
    }

    impl TimedBackend for CudaBackend {
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

        fn replay_mode(&self) -> &'static str {
            "CUDA graph of the whole apply, one launch per replay"
        }

        fn launches_per_replay(&self) -> u64 {
            1
        }

        fn capture<'a, S: 'a, T: 'a>(
            &'a self,
            input: S,
            mut f: impl FnMut(&S) -> Result<T> + 'a,
        ) -> Result<Box<dyn Replay<S, T> + 'a>> {
            let (graph, output) = CudaBackend::capture(self, || f(&input))?;
            Ok(Box::new(Graph {
                graph,
                input,
                output: output?,
            }))
        }

        fn copy_into(&self, dst: &mut CudaPoly, src: &CudaPoly) -> Result<()> {
            Ok(CudaBackend::copy_into(self, dst, src)?)
        }
    }

    /// A CUDA graph with the input it reads and the output it writes.
    struct Graph<'a, S, T> {
        graph: CapturedGraph<'a>,
        input: S,
        output: T,
    }

    impl<S, T> Replay<S, T> for Graph<'_, S, T> {
        fn input(&mut self) -> &mut S {
            &mut self.input
        }

        fn launch(&mut self) -> Result<()> {
            Ok(self.graph.launch()?)
        }

        fn output(&self) -> &T {
            &self.output
        }
    }
}
