//! The worker pool the CPU backend's host work runs on, kept awake through a latency-bound
//! section.
//!
//! One token's LoRA apply is a chain of short parallel steps (a key switch's limbs, the two
//! halves of a ModDown, 20–300 µs each) with serial work between them. A rayon worker that
//! finds nothing to do goes to sleep within microseconds, and waking it again costs far more
//! on a virtual machine than on bare metal: measured on the 2-core build VM, a `join` of two
//! 100 µs tasks after 50 µs of serial work took 166 µs instead of 108 µs. Inside
//! [`keep_workers_awake`] the idle workers poll for work instead of sleeping.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Set on the thread running a kept-awake section and on the threads polling for it.
    static AWAKE: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` on the current rayon pool (moved onto one of its workers if called from outside)
/// while every other worker that is idle polls for work instead of sleeping: the short
/// parallel steps of `f` start at once. Workers busy with other work take no part; a nested
/// call just runs `f`. The polling workers keep their cores busy until `f` returns, so use
/// it around latency-bound work only (one token's apply), not around a batch that fills the
/// pool by itself.
pub fn keep_workers_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 || AWAKE.get() {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::scope(|scope| {
        let _awake = Awake::mark();
        for _ in 1..rayon::current_num_threads() {
            scope.spawn(|_| poll_until(&done));
        }
        // Set even if `f` panics: the pollers must stop for the scope to end.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _done = Done(&done);
        f()
    })
}

/// This thread's mark, cleared when dropped (also on a panic).
struct Awake;

impl Awake {
    fn mark() -> Self {
        AWAKE.set(true);
        Awake
    }
}

impl Drop for Awake {
    fn drop(&mut self) {
        AWAKE.set(false);
    }
}

/// Runs the pool's pending work until `done`, unless this thread is already awake for a
/// section (the section's own thread, or one polling for it: polling there would wait on
/// the section from inside it).
fn poll_until(done: &AtomicBool) {
    if AWAKE.get() {
        return;
    }
    let _awake = Awake::mark();
    while !done.load(Ordering::Acquire) {
        if let Some(rayon::Yield::Idle) = rayon::yield_now() {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
    }

    #[test]
    fn the_section_returns_its_value_on_every_pool_size() {
        for threads in [1, 2, 4] {
            let sum: u64 = pool(threads)
                .install(|| keep_workers_awake(|| (0..10_000u64).into_par_iter().sum()));
            assert_eq!(sum, 10_000 * 9_999 / 2, "{threads} threads");
        }
    }

    #[test]
    fn nested_sections_and_parallel_work_inside_them_finish() {
        // Sections inside the pool's own parallel work (a batch of tokens, each kept awake)
        // must not wait on each other.
        let pool = pool(3);
        let sums: Vec<u64> = pool.install(|| {
            (0..16u64)
                .into_par_iter()
                .map(|t| {
                    keep_workers_awake(|| {
                        let inner: u64 = (0..1000u64)
                            .into_par_iter()
                            .map(|i| keep_workers_awake(|| i * t))
                            .sum();
                        inner
                    })
                })
                .collect()
        });
        for (t, s) in sums.iter().enumerate() {
            assert_eq!(*s, t as u64 * 1000 * 999 / 2);
        }
    }

    #[test]
    fn a_section_called_from_outside_any_pool_runs_on_a_worker() {
        let (index, awake) = keep_workers_awake(|| (rayon::current_thread_index(), AWAKE.get()));
        if rayon::current_num_threads() >= 2 {
            assert!(index.is_some(), "the section ran on a worker");
            assert!(awake, "inside the section its thread is marked");
        }
        assert!(!AWAKE.get(), "the calling thread is not marked");
    }

    #[test]
    fn a_panicking_section_unmarks_its_thread_and_stops_the_pollers() {
        let pool = pool(2);
        let caught = pool.install(|| {
            let r = std::panic::catch_unwind(|| keep_workers_awake(|| panic!("inside")));
            (r.is_err(), AWAKE.get())
        });
        assert_eq!(caught, (true, false));
        // The pool still works, with its pollers gone.
        assert_eq!(pool.install(|| keep_workers_awake(|| 7)), 7);
    }
}
