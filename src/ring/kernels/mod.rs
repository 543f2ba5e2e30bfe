//! Slice kernels behind the pointwise arithmetic, basis conversion, ModDown, rescale and the
//! key-switch inner product: the portable reference in [`scalar`] and AVX-512 versions picked at
//! run time. Every kernel returns canonical residues in `[0, q)`, so all paths agree bit for bit.
//!
//! A [`Path`] names an implementation this CPU supports; each kernel falls back to a slower one
//! where its operands need it (IFMA for moduli below 2^50 only, vector code for whole vectors
//! only). Inputs are canonical residues unless a kernel says otherwise.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod scalar;

use crate::math::Modulus;
use std::sync::OnceLock;

/// Largest modulus (exclusive) of the IFMA kernels: lazy values below 4q stay under 2^52.
pub(crate) const IFMA_BOUND: u64 = 1 << 50;

/// u64 lanes of one vector: vector kernels run on multiples of this length.
const LANES: usize = 8;

/// Implementations, slowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Level {
    Scalar,
    /// AVX-512F/DQ, 64-bit lanes, any modulus below 2^62.
    Avx512,
    /// AVX-512 IFMA (plus F/DQ): moduli below 2^50.
    Ifma,
}

/// A kernel implementation this CPU supports (only built after feature detection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Path(Level);

impl Path {
    /// The portable reference.
    #[cfg(test)]
    pub(crate) const SCALAR: Path = Path(Level::Scalar);

    /// The fastest implementation this CPU runs, or a slower one named by the environment
    /// variable `HELORA_KERNELS` (`scalar` or `avx512`), read once: for testing the fallbacks
    /// on a CPU that has the faster paths.
    pub(crate) fn best() -> Path {
        static BEST: OnceLock<Level> = OnceLock::new();
        Path(*BEST.get_or_init(|| {
            let top = Self::detect();
            match std::env::var("HELORA_KERNELS").as_deref() {
                Ok("scalar") => Level::Scalar,
                Ok("avx512") => top.min(Level::Avx512),
                _ => top,
            }
        }))
    }

    /// Every implementation this CPU runs, fastest first (for tests and benchmarks).
    #[cfg(test)]
    pub(crate) fn available() -> Vec<Path> {
        let top = Self::detect();
        [Level::Ifma, Level::Avx512, Level::Scalar]
            .into_iter()
            .filter(|&l| l <= top)
            .map(Path)
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn name(self) -> &'static str {
        match self.0 {
            Level::Scalar => "scalar",
            Level::Avx512 => "avx512",
            Level::Ifma => "avx512-ifma",
        }
    }

    fn detect() -> Level {
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
            return if is_x86_feature_detected!("avx512ifma") {
                Level::Ifma
            } else {
                Level::Avx512
            };
        }
        Level::Scalar
    }

    /// The level to run for moduli of at most `max_q` on slices of length `n`.
    fn level(self, max_q: u64, n: usize) -> Level {
        match self.0 {
            _ if !n.is_multiple_of(LANES) => Level::Scalar,
            Level::Ifma if max_q >= IFMA_BOUND => Level::Avx512,
            l => l,
        }
    }
}

// The `unsafe` calls below all rest on one fact: a `Path` above `Scalar` exists only where
// `detect` found AVX-512F and DQ (and IFMA for `Ifma`); `level` downgrades IFMA for moduli
// of 2^50 and more, and every vector kernel checks its slice lengths itself.

/// a += b
pub(crate) fn add(path: Path, m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    match path.level(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 | Level::Ifma => unsafe { avx512::add(m.value(), a, b) },
        _ => scalar::add(m, a, b),
    }
}

/// a −= b
pub(crate) fn sub(path: Path, m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    match path.level(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 | Level::Ifma => unsafe { avx512::sub(m.value(), a, b) },
        _ => scalar::sub(m, a, b),
    }
}

/// a = −a
pub(crate) fn neg(path: Path, m: &Modulus, a: &mut [u64]) {
    match path.level(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 | Level::Ifma => unsafe { avx512::neg(m.value(), a) },
        _ => scalar::neg(m, a),
    }
}

/// a += c for a constant c < q.
pub(crate) fn add_const(path: Path, m: &Modulus, a: &mut [u64], c: u64) {
    assert!(c < m.value());
    match path.level(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 | Level::Ifma => unsafe { avx512::add_const(m.value(), a, c) },
        _ => scalar::add_const(m, a, c),
    }
}

/// a *= b
pub(crate) fn mul(path: Path, m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    match path.level(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::mul(m.value(), a, b) },
        _ => scalar::mul(m, a, b),
    }
}

/// acc += a·b
pub(crate) fn mul_add(path: Path, m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    assert!(acc.len() == a.len() && a.len() == b.len());
    match path.level(m.value(), acc.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::mul_add(m.value(), acc, a, b) },
        _ => scalar::mul_add(m, acc, a, b),
    }
}

/// a *= w for a constant w < q.
pub(crate) fn mul_const(path: Path, m: &Modulus, a: &mut [u64], w: u64) {
    assert!(w < m.value());
    match path.level(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::mul_const_ifma(m.value(), None, a, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 => unsafe { avx512::mul_const_wide(m.value(), None, a, w) },
        _ => scalar::mul_const(m, a, w),
    }
}

/// out = x·w for a constant w < q.
pub(crate) fn mul_const_to(path: Path, m: &Modulus, x: &[u64], out: &mut [u64], w: u64) {
    assert!(w < m.value() && x.len() == out.len());
    match path.level(m.value(), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::mul_const_ifma(m.value(), Some(x), out, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 => unsafe { avx512::mul_const_wide(m.value(), Some(x), out, w) },
        _ => scalar::mul_const_to(m, x, out, w),
    }
}

/// out = (x − out)·w for a constant w < q: the last step of ModDown and rescale.
pub(crate) fn sub_mul_const(path: Path, m: &Modulus, x: &[u64], out: &mut [u64], w: u64) {
    assert!(w < m.value() && x.len() == out.len());
    match path.level(m.value(), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::sub_mul_const_ifma(m.value(), x, out, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 => unsafe { avx512::sub_mul_const_wide(m.value(), x, out, w) },
        _ => scalar::sub_mul_const(m, x, out, w),
    }
}

/// out = (x mod t) − h mod t for x ∈ [0, s) and a constant h < t.
pub(crate) fn reduce_sub_const(
    path: Path,
    s: &Modulus,
    t: &Modulus,
    x: &[u64],
    h: u64,
    out: &mut [u64],
) {
    assert!(h < t.value() && x.len() == out.len());
    match path.level(s.value().max(t.value()), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::reduce_sub_const_ifma(t.value(), x, h, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 => unsafe { avx512::reduce_sub_const_wide(t.value(), x, h, out) },
        _ => scalar::reduce_sub_const(t, x, h, out),
    }
}

/// The centered representative of each x ∈ [0, s) reduced modulo t: a one-prime base
/// conversion.
pub(crate) fn center_reduce(path: Path, s: &Modulus, t: &Modulus, x: &[u64], out: &mut [u64]) {
    assert_eq!(x.len(), out.len());
    let (sv, tv) = (s.value(), t.value());
    match path.level(sv.max(tv), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Ifma => unsafe { avx512::center_reduce_ifma(tv, sv, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 => unsafe { avx512::center_reduce_wide(tv, sv, x, out) },
        _ => scalar::center_reduce(s, t, x, out),
    }
}

/// out[i] = x[perm[i]].
pub(crate) fn permute(path: Path, x: &[u64], perm: &[u32], out: &mut [u64]) {
    assert_eq!(perm.len(), out.len());
    match path.level(0, out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 | Level::Ifma => unsafe { avx512::permute(x, perm, out) },
        _ => scalar::permute(x, perm, out),
    }
}

/// Both halves of the key-switch inner product on one limb, see [`scalar::inner_product`].
pub(crate) fn inner_product(
    path: Path,
    m: &Modulus,
    x: &[&[u64]],
    perm: Option<&[u32]>,
    keys: [&[&[u64]]; 2],
    out: [&mut [u64]; 2],
) {
    let n = out[0].len();
    match path.level(m.value(), n) {
        #[cfg(target_arch = "x86_64")]
        Level::Ifma if x.len() <= avx512::MAX_TERMS => {
            // SAFETY: see above.
            unsafe { avx512::inner_product(m.value(), x, perm, keys, out) }
        }
        _ => scalar::inner_product(m, x, perm, keys, out),
    }
}

/// The overshoot estimate of a fast base conversion, see [`scalar::overshoot`].
pub(crate) fn overshoot(path: Path, y: &[&[u64]], inv: &[f64], u: &mut [u64]) {
    match path.level(0, u.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Level::Avx512 | Level::Ifma => unsafe { avx512::overshoot(y, inv, u) },
        _ => scalar::overshoot(y, inv, u),
    }
}

/// What every target of a fast base conversion sums: y_j = [x_j·(S/s_j)^-1]_{s_j} for the
/// source moduli s_j, and the overshoot u.
pub(crate) struct Scaled<'a> {
    pub sources: &'a [Modulus],
    pub y: &'a [&'a [u64]],
    pub u: &'a [u64],
}

/// One target of a fast base conversion, see [`scalar::hat_sum`].
pub(crate) fn hat_sum(
    path: Path,
    t: &Modulus,
    scaled: &Scaled,
    hats: &[(u64, u64)],
    s: (u64, u64),
    out: &mut [u64],
) {
    let Scaled { sources, y, u } = *scaled;
    let max_q = sources.iter().map(|m| m.value()).fold(t.value(), u64::max);
    match path.level(max_q, out.len()) {
        #[cfg(target_arch = "x86_64")]
        Level::Ifma if y.len() <= avx512::MAX_TERMS => {
            let mut h = [0u64; avx512::MAX_TERMS];
            h.iter_mut().zip(hats).for_each(|(h, &(v, _))| *h = v);
            // SAFETY: see above.
            unsafe { avx512::hat_sum(t.value(), y, &h[..y.len()], u, s.0, out) }
        }
        _ => scalar::hat_sum(t, y, hats, u, s, out),
    }
}

#[cfg(test)]
mod tests;
