//! How `bench ops` times a backend call: on the host's clock in the CPU run (the work is done
//! when the call returns), or with the backend's timer in a device run (events on its queue:
//! the call only queues the work), there also counting the kernel launches the call queues.

use super::clock::{TimedBackend, Timer};
use super::timing::{measure, measure_samples, Iterations, Timing};
use anyhow::Result;
use std::time::{Duration, Instant};

pub struct Stopwatch<'a, B> {
    backend: &'a B,
    /// The backend's timer in a device run; `None` for the host's clock.
    timer: Option<Box<dyn Timer + 'a>>,
    iters: Iterations,
    /// (timed key, kernel launches one call queues), in a device run.
    pub launches: Vec<(&'static str, u64)>,
}

impl<'a, B: TimedBackend> Stopwatch<'a, B> {
    /// The host's clock.
    pub fn host(backend: &'a B, iters: Iterations) -> Self {
        Self {
            backend,
            timer: None,
            iters,
            launches: Vec::new(),
        }
    }

    /// The backend's clock.
    pub fn device(backend: &'a B, iters: Iterations) -> Result<Self> {
        Ok(Self {
            timer: Some(backend.timer()?),
            ..Self::host(backend, iters)
        })
    }

    pub fn on_device(&self) -> bool {
        self.timer.is_some()
    }

    /// The time `work` takes (to queue and run, on a device), and its output.
    pub fn span<T>(&self, work: impl FnOnce() -> Result<T>) -> Result<(Duration, T)> {
        match &self.timer {
            Some(timer) => {
                timer.start()?;
                let out = work()?;
                Ok((timer.stop()?, out))
            }
            None => {
                let start = Instant::now();
                let out = work()?;
                Ok((start.elapsed(), out))
            }
        }
    }

    /// Median time of one call of `op`, timed as `key`. On the host's clock the output's drop
    /// is inside each sample (as every host timing of the benchmarks); on a device it is
    /// after the stop, and the launches of one call are counted first.
    pub fn call<T>(&mut self, key: &'static str, op: impl Fn() -> Result<T>) -> Result<Timing> {
        if self.timer.is_none() {
            return measure(self.iters, op);
        }
        let before = self.backend.launches();
        drop(op()?);
        self.launches.push((key, self.backend.launches() - before));
        measure_samples(self.iters, || -> Result<Duration> {
            let (t, out) = self.span(&op)?;
            drop(out);
            Ok(t)
        })
    }

    /// Median time of an in-place NTT of every polynomial in `polys` (all in the domain
    /// `forward` starts from): the transform back runs untimed before each sample.
    pub fn ntt(&self, polys: &mut [B::Poly], forward: bool) -> Result<Timing> {
        let backend = self.backend;
        measure_samples(self.iters, || -> Result<Duration> {
            for p in polys.iter_mut() {
                // Back to the starting domain: a transform in the wrong domain is a sticky
                // error on CUDA, a panic on the CPU.
                if backend.is_ntt(p) == forward {
                    if forward {
                        backend.ntt_inverse(p);
                    } else {
                        backend.ntt_forward(p);
                    }
                }
            }
            let (t, ()) = self.span(|| {
                for p in polys.iter_mut() {
                    if forward {
                        backend.ntt_forward(p);
                    } else {
                        backend.ntt_inverse(p);
                    }
                }
                Ok(())
            })?;
            Ok(t)
        })
    }
}
