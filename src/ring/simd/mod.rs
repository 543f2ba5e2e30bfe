//! The CPU's vector kernels, chosen once per process: the slice kernels behind the pointwise
//! arithmetic, basis conversion, ModDown, rescale and the key-switch inner product (the
//! portable reference in [`scalar`], AVX-512 versions in [`avx512`] and, for products of two
//! variables modulo wide primes, [`avx512_wide`]) and the NTT kernels
//! ([`ntt_avx512`], [`ntt_avx2`]), on the lane arithmetic of [`lanes`]. Every kernel returns
//! canonical residues in `[0, q)`, so all tiers agree bit for bit.
//!
//! A [`SimdTier`] names an instruction-set tier this CPU supports; [`SimdTier::best`] is the
//! one choice every kernel follows (`HELORA_KERNELS` lowers it). Each kernel falls back to a
//! slower one where its operands need it (IFMA for moduli below 2^50 only, vector code for
//! whole vectors only; the slice kernels have no AVX2 version). Inputs are canonical
//! residues unless a kernel says otherwise.

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
mod avx512_wide;
#[cfg(target_arch = "x86_64")]
mod lanes;
#[cfg(target_arch = "x86_64")]
pub(super) mod ntt_avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod ntt_avx512;
pub(crate) mod scalar;
mod twiddles;

pub(super) use twiddles::lane_major_twiddles;

use crate::math::Modulus;
use std::sync::OnceLock;

/// Largest modulus (exclusive) of the IFMA kernels: lazy values below 4q stay under 2^52.
pub(crate) const IFMA_BOUND: u64 = 1 << 50;

/// u64 lanes of one vector: vector kernels run on multiples of this length.
const LANES: usize = 8;

/// Instruction sets, slowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
enum Isa {
    Scalar,
    /// AVX2: the NTT only (the slice kernels run their scalar reference).
    Avx2,
    /// AVX-512F/DQ, 64-bit lanes, any modulus below 2^62.
    Avx512,
    /// AVX-512 IFMA (plus F/DQ): moduli below 2^50.
    Ifma,
}

/// An instruction-set tier this CPU supports (only built after feature detection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SimdTier(Isa);

impl SimdTier {
    /// The portable reference.
    pub const SCALAR: SimdTier = SimdTier(Isa::Scalar);

    /// The fastest tier this CPU runs, or a slower one named by the environment variable
    /// `HELORA_KERNELS` (`scalar`, `avx2`, `avx512` or `avx512-ifma`), read once: for
    /// testing the fallbacks on a CPU that has the faster tiers.
    pub fn best() -> SimdTier {
        static BEST: OnceLock<Isa> = OnceLock::new();
        SimdTier(*BEST.get_or_init(|| {
            let top = Self::detect();
            let asked = std::env::var("HELORA_KERNELS").ok();
            match asked.as_deref().and_then(Self::named) {
                Some(SimdTier(isa)) => top.min(isa),
                None => top,
            }
        }))
    }

    /// Every tier this CPU runs, fastest first (for tests and benchmarks).
    pub fn available() -> Vec<SimdTier> {
        let top = Self::detect();
        [Isa::Ifma, Isa::Avx512, Isa::Avx2, Isa::Scalar]
            .into_iter()
            .filter(|&l| l <= top)
            .map(SimdTier)
            .collect()
    }

    /// The name `HELORA_KERNELS` and the benchmark reports use.
    pub fn name(self) -> &'static str {
        match self.0 {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Ifma => "avx512-ifma",
        }
    }

    /// The tier called `name` (not checked against this CPU).
    fn named(name: &str) -> Option<SimdTier> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Ifma]
            .into_iter()
            .map(SimdTier)
            .find(|t| t.name() == name)
    }

    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
                return if is_x86_feature_detected!("avx512ifma") {
                    Isa::Ifma
                } else {
                    Isa::Avx512
                };
            }
            if is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Whether an NTT kernel of tier `name` may run under this tier.
    pub(super) fn allows(self, name: &str) -> bool {
        Self::named(name).is_some_and(|t| t <= self)
    }

    /// The slice-kernel ISA to run for moduli of at most `max_q` on slices of length `n`.
    fn isa(self, max_q: u64, n: usize) -> Isa {
        match self.0 {
            _ if !n.is_multiple_of(LANES) => Isa::Scalar,
            Isa::Avx2 => Isa::Scalar,
            Isa::Ifma if max_q >= IFMA_BOUND => Isa::Avx512,
            l => l,
        }
    }
}

// The `unsafe` calls below all rest on one fact: a `SimdTier` at `Avx512` or above exists only
// where `detect` found AVX-512F and DQ (and IFMA for `Ifma`); `isa` downgrades IFMA for moduli
// of 2^50 and more, and every vector kernel checks its slice lengths itself.

/// a += b
pub(crate) fn add(path: SimdTier, m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    match path.isa(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 | Isa::Ifma => unsafe { avx512::add(m.value(), a, b) },
        _ => scalar::add(m, a, b),
    }
}

/// a −= b
pub(crate) fn sub(path: SimdTier, m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    match path.isa(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 | Isa::Ifma => unsafe { avx512::sub(m.value(), a, b) },
        _ => scalar::sub(m, a, b),
    }
}

/// a = −a
pub(crate) fn neg(path: SimdTier, m: &Modulus, a: &mut [u64]) {
    match path.isa(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 | Isa::Ifma => unsafe { avx512::neg(m.value(), a) },
        _ => scalar::neg(m, a),
    }
}

/// a += c for a constant c < q.
pub(crate) fn add_const(path: SimdTier, m: &Modulus, a: &mut [u64], c: u64) {
    assert!(c < m.value());
    match path.isa(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 | Isa::Ifma => unsafe { avx512::add_const(m.value(), a, c) },
        _ => scalar::add_const(m, a, c),
    }
}

/// a *= b
pub(crate) fn mul(path: SimdTier, m: &Modulus, a: &mut [u64], b: &[u64]) {
    assert_eq!(a.len(), b.len());
    match path.isa(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::mul(m.value(), a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512_wide::mul(m.value(), a, b) },
        _ => scalar::mul(m, a, b),
    }
}

/// acc += a·b
pub(crate) fn mul_add(path: SimdTier, m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    assert!(acc.len() == a.len() && a.len() == b.len());
    match path.isa(m.value(), acc.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::mul_add(m.value(), acc, a, b) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512_wide::mul_add(m.value(), acc, a, b) },
        _ => scalar::mul_add(m, acc, a, b),
    }
}

/// a *= w for a constant w < q.
pub(crate) fn mul_const(path: SimdTier, m: &Modulus, a: &mut [u64], w: u64) {
    assert!(w < m.value());
    match path.isa(m.value(), a.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::mul_const_ifma(m.value(), None, a, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512::mul_const_wide(m.value(), None, a, w) },
        _ => scalar::mul_const(m, a, w),
    }
}

/// out = x·w for a constant w < q.
pub(crate) fn mul_const_to(path: SimdTier, m: &Modulus, x: &[u64], out: &mut [u64], w: u64) {
    assert!(w < m.value() && x.len() == out.len());
    match path.isa(m.value(), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::mul_const_ifma(m.value(), Some(x), out, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512::mul_const_wide(m.value(), Some(x), out, w) },
        _ => scalar::mul_const_to(m, x, out, w),
    }
}

/// out = (x − out)·w for a constant w < q: the last step of ModDown and rescale.
pub(crate) fn sub_mul_const(path: SimdTier, m: &Modulus, x: &[u64], out: &mut [u64], w: u64) {
    assert!(w < m.value() && x.len() == out.len());
    match path.isa(m.value(), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::sub_mul_const_ifma(m.value(), x, out, w) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512::sub_mul_const_wide(m.value(), x, out, w) },
        _ => scalar::sub_mul_const(m, x, out, w),
    }
}

/// out = (x mod t) − h mod t for x ∈ [0, s) and a constant h < t.
pub(crate) fn reduce_sub_const(
    path: SimdTier,
    s: &Modulus,
    t: &Modulus,
    x: &[u64],
    h: u64,
    out: &mut [u64],
) {
    assert!(h < t.value() && x.len() == out.len());
    match path.isa(s.value().max(t.value()), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::reduce_sub_const_ifma(t.value(), x, h, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512::reduce_sub_const_wide(t.value(), x, h, out) },
        _ => scalar::reduce_sub_const(t, x, h, out),
    }
}

/// The centered representative of each x ∈ [0, s) reduced modulo t: a one-prime base
/// conversion.
pub(crate) fn center_reduce(path: SimdTier, s: &Modulus, t: &Modulus, x: &[u64], out: &mut [u64]) {
    assert_eq!(x.len(), out.len());
    let (sv, tv) = (s.value(), t.value());
    match path.isa(sv.max(tv), out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Ifma => unsafe { avx512::center_reduce_ifma(tv, sv, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 => unsafe { avx512::center_reduce_wide(tv, sv, x, out) },
        _ => scalar::center_reduce(s, t, x, out),
    }
}

/// out[i] = x[perm[i]].
pub(crate) fn permute(path: SimdTier, x: &[u64], perm: &[u32], out: &mut [u64]) {
    assert_eq!(perm.len(), out.len());
    match path.isa(0, out.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 | Isa::Ifma => unsafe { avx512::permute(x, perm, out) },
        _ => scalar::permute(x, perm, out),
    }
}

/// Both halves of the key-switch inner product on one limb, see [`scalar::inner_product`].
pub(crate) fn inner_product(
    path: SimdTier,
    m: &Modulus,
    x: &[&[u64]],
    perm: Option<&[u32]>,
    keys: [&[&[u64]]; 2],
    out: [&mut [u64]; 2],
) {
    let n = out[0].len();
    match path.isa(m.value(), n) {
        #[cfg(target_arch = "x86_64")]
        Isa::Ifma if x.len() <= avx512::MAX_TERMS => {
            // SAFETY: see above.
            unsafe { avx512::inner_product(m.value(), x, perm, keys, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if avx512_wide::inner_product_fits(m.value(), x.len()) => {
            // SAFETY: see above.
            unsafe { avx512_wide::inner_product(m.value(), x, perm, keys, out) }
        }
        _ => scalar::inner_product(m, x, perm, keys, out),
    }
}

/// The overshoot estimate of a fast base conversion, see [`scalar::overshoot`].
pub(crate) fn overshoot(path: SimdTier, y: &[&[u64]], inv: &[f64], u: &mut [u64]) {
    match path.isa(0, u.len()) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: see above.
        Isa::Avx512 | Isa::Ifma => unsafe { avx512::overshoot(y, inv, u) },
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
    path: SimdTier,
    t: &Modulus,
    scaled: &Scaled,
    hats: &[(u64, u64)],
    s: (u64, u64),
    out: &mut [u64],
) {
    let Scaled { sources, y, u } = *scaled;
    let max_q = sources.iter().map(|m| m.value()).fold(t.value(), u64::max);
    match path.isa(max_q, out.len()) {
        #[cfg(target_arch = "x86_64")]
        Isa::Ifma if y.len() <= avx512::MAX_TERMS => {
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
