//! Median timing of one operation: a warm-up, then either a fixed number of iterations or
//! as many as fit a time budget (with a floor), each timed on its own.

use crate::stats::median;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// How many timed iterations to run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Iterations {
    /// Exactly this many, after one warm-up run.
    Fixed(usize),
    /// Until `budget` has passed and at least `min` ran, at most `max`; warm-up for a
    /// tenth of the budget (and at least one run) first.
    Adaptive {
        budget: Duration,
        min: usize,
        max: usize,
    },
}

impl Iterations {
    /// The default: about half a second per operation, at least 10 iterations.
    pub const DEFAULT_ADAPTIVE: Self = Self::Adaptive {
        budget: Duration::from_millis(500),
        min: 10,
        max: 100_000,
    };
}

/// The outcome of timing one operation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub median: Duration,
    pub iters: usize,
}

impl Timing {
    pub fn micros(&self) -> f64 {
        self.median.as_secs_f64() * 1e6
    }
}

/// Times `op` on the host's clock; the first error stops the measurement and is returned.
pub fn measure<T, E>(iters: Iterations, mut op: impl FnMut() -> Result<T, E>) -> Result<Timing, E> {
    measure_samples(iters, || {
        let start = Instant::now();
        black_box(op()?);
        Ok(start.elapsed())
    })
}

/// As [`measure`], for a `sample` that times one run itself (e.g. with device events) and
/// returns its duration; warm-up runs are samples thrown away.
pub fn measure_samples<E>(
    iters: Iterations,
    mut sample: impl FnMut() -> Result<Duration, E>,
) -> Result<Timing, E> {
    let mut samples = Vec::new();
    match iters {
        Iterations::Fixed(k) => {
            sample()?;
            for _ in 0..k.max(1) {
                samples.push(sample()?);
            }
        }
        Iterations::Adaptive { budget, min, max } => {
            let warm = Instant::now();
            sample()?;
            while warm.elapsed() < budget / 10 {
                sample()?;
            }
            let start = Instant::now();
            while samples.len() < max.max(1) && (samples.len() < min || start.elapsed() < budget) {
                samples.push(sample()?);
            }
        }
    }
    Ok(Timing {
        median: median(&mut samples),
        iters: samples.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_runs_warm_up_plus_k() {
        let mut calls = 0;
        let t = measure(Iterations::Fixed(7), || -> Result<(), ()> {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!((t.iters, calls), (7, 8));
    }

    #[test]
    fn adaptive_respects_floor_and_cap() {
        let slow = Iterations::Adaptive {
            budget: Duration::from_millis(1),
            min: 5,
            max: 100,
        };
        let t = measure(slow, || -> Result<(), ()> {
            std::thread::sleep(Duration::from_millis(1));
            Ok(())
        })
        .unwrap();
        assert_eq!(t.iters, 5);
        assert!(t.median >= Duration::from_millis(1));
        let fast = Iterations::Adaptive {
            budget: Duration::from_secs(5),
            min: 1,
            max: 50,
        };
        assert_eq!(measure(fast, || Ok::<_, ()>(())).unwrap().iters, 50);
    }

    #[test]
    fn errors_stop_the_measurement() {
        let mut calls = 0;
        let r = measure(Iterations::Fixed(10), || {
            calls += 1;
            if calls == 3 {
                Err("boom")
            } else {
                Ok(())
            }
        });
        assert_eq!(r, Err("boom"));
        assert_eq!(calls, 3);
    }
}
