//! Parallelism inside one HE operation (the digits of a decomposition, the limbs of a key
//! switch, the two halves of a ModDown), on rayon's pool.
//!
//! Only a caller that already runs on the pool splits its work. Handing a job of a few
//! tens of microseconds from an outside thread to the pool and back costs about what it
//! saves, so operations called from other threads (a benchmark timing one rotation, a
//! client) run sequentially on that thread. The LoRA entry points
//! ([`LoraGroup::apply`](crate::linear::LoraGroup::apply), the PLL server's batches) move
//! onto the pool once, and everything below them then uses every core.

use rayon::prelude::*;

fn on_pool() -> bool {
    rayon::current_thread_index().is_some()
}

/// `(a(), b())`, side by side when called on the pool.
pub(crate) fn join<RA: Send, RB: Send>(
    a: impl FnOnce() -> RA + Send,
    b: impl FnOnce() -> RB + Send,
) -> (RA, RB) {
    if on_pool() {
        rayon::join(a, b)
    } else {
        (a(), b())
    }
}

/// `items` mapped by `f`, in order; in parallel when called on the pool.
pub(crate) fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if on_pool() {
        items.into_par_iter().map(f).collect()
    } else {
        items.into_iter().map(f).collect()
    }
}

/// `f` on every item; in parallel when called on the pool.
pub(crate) fn for_each<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    if on_pool() {
        items.into_par_iter().for_each(f)
    } else {
        items.into_iter().for_each(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order_on_and_off_the_pool() {
        let items: Vec<u64> = (0..100).collect();
        let expected: Vec<u64> = items.iter().map(|x| x * x).collect();
        assert_eq!(map(items.clone(), |x| x * x), expected);
        let on = rayon::scope(|_| {
            assert!(on_pool());
            map(items.clone(), |x| x * x)
        });
        assert_eq!(on, expected);
        assert!(!on_pool());
        assert_eq!(join(|| 1, || 2), (1, 2));
        assert_eq!(rayon::scope(|_| join(|| 3, || 4)), (3, 4));
    }
}
