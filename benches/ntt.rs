//! helora's NTT against `tfhe-ntt` (`prime64::Plan`) on the same prime, same buffers.
//!
//! Both sides use one 50-bit NTT prime below 2^50 (valid for N = 2^16, hence for every N
//! benchmarked), so both take their AVX-512 IFMA paths where the CPU has them.
//!
//! What each side computes:
//! - forward: both map coefficients in `[0, q)` to evaluations in bit-reversed order, fully
//!   reduced to `[0, q)`.
//! - inverse: helora's `inverse` includes the 1/N scaling and returns `[0, q)`. tfhe-ntt's `inv`
//!   returns N·a (no scaling); its `normalize` applies 1/N in a separate pass. The like-for-like
//!   comparison is `tfhe-ntt` = `inv` + `normalize`; `tfhe-ntt-inv-only` (no scaling, so it does
//!   less work than helora) is shown as well, as a lower bound.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use helora::math::{ntt_primes, Modulus};
use helora::ring::NttTable;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;
use std::time::Duration;

const LOG_NS: std::ops::RangeInclusive<u32> = 12..=16;

fn prime() -> u64 {
    // Largest 50-bit prime ≡ 1 mod 2^17: below 2^50 and NTT-friendly for every N ≤ 2^16.
    ntt_primes(50, 1 << 16, 1, &[]).expect("a 50-bit NTT prime exists")[0]
}

fn random_poly(n: usize, q: u64, seed: u64) -> Vec<u64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..q)).collect()
}

fn bench_ntt(c: &mut Criterion) {
    let q = prime();
    let modulus = Modulus::new(q).expect("valid modulus");

    let mut fwd = c.benchmark_group("ntt-forward");
    fwd.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    for log_n in LOG_NS {
        let n = 1usize << log_n;
        let table = NttTable::new(modulus, n).expect("NTT table");
        let plan = tfhe_ntt::prime64::Plan::try_new(n, q).expect("tfhe-ntt plan");
        let mut buf = random_poly(n, q, 1);
        fwd.bench_with_input(BenchmarkId::new("helora", n), &n, |b, _| {
            b.iter(|| table.forward(black_box(&mut buf)))
        });
        fwd.bench_with_input(BenchmarkId::new("helora-scalar", n), &n, |b, _| {
            b.iter(|| table.forward_scalar(black_box(&mut buf)))
        });
        fwd.bench_with_input(BenchmarkId::new("tfhe-ntt", n), &n, |b, _| {
            b.iter(|| plan.fwd(black_box(&mut buf)))
        });
    }
    fwd.finish();

    let mut inv = c.benchmark_group("ntt-inverse");
    inv.measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    for log_n in LOG_NS {
        let n = 1usize << log_n;
        let table = NttTable::new(modulus, n).expect("NTT table");
        let plan = tfhe_ntt::prime64::Plan::try_new(n, q).expect("tfhe-ntt plan");
        let mut buf = random_poly(n, q, 2);
        inv.bench_with_input(BenchmarkId::new("helora", n), &n, |b, _| {
            b.iter(|| table.inverse(black_box(&mut buf)))
        });
        inv.bench_with_input(BenchmarkId::new("helora-scalar", n), &n, |b, _| {
            b.iter(|| table.inverse_scalar(black_box(&mut buf)))
        });
        // Same result as helora's inverse: transform, then the 1/N scaling pass.
        inv.bench_with_input(BenchmarkId::new("tfhe-ntt", n), &n, |b, _| {
            b.iter(|| {
                plan.inv(black_box(&mut buf));
                plan.normalize(black_box(&mut buf));
            })
        });
        // Transform only: leaves N·a, i.e. skips the scaling helora performs.
        inv.bench_with_input(BenchmarkId::new("tfhe-ntt-inv-only", n), &n, |b, _| {
            b.iter(|| plan.inv(black_box(&mut buf)))
        });
    }
    inv.finish();
}

criterion_group!(benches, bench_ntt);
criterion_main!(benches);
