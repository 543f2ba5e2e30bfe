//! Lane arithmetic shared by the AVX-512 kernels (NTT and pointwise/key-switching kernels):
//! eight u64 lanes modulo one prime, with the multiplier of either flavour.
//!
//! - [`Ifma`] (q < 2^50, AVX-512 IFMA): Shoup multiplication with 52-bit constants
//!   `floor(w·2^52/q)` on `vpmadd52{lo,hi}uq`.
//! - [`Wide`] (q < 2^62, AVX-512F/DQ): Shoup with 64-bit constants; the high half of the
//!   64×64 product is approximated from three 32×32 products.

use core::arch::x86_64::*;

/// Modular arithmetic on eight u64 lanes.
///
/// # Safety
/// A value of an implementing type may exist only on a CPU with the features its methods use
/// (AVX-512F plus the flavour's multiplier); the provided methods rely on that.
pub(super) unsafe trait Arith: Copy {
    fn q(self) -> __m512i;
    fn two_q(self) -> __m512i;

    /// `x·w mod q` in `[0, 2q)` for `x < 4q`, given the flavour's Shoup constant `ws` of `w`.
    /// (Ifma needs `x < 2^52`; Wide takes any `x`.)
    fn mul_lazy(self, x: __m512i, w: __m512i, ws: __m512i) -> __m512i;

    /// This flavour's Shoup constant of `w < q`.
    fn shoup(q: u64, w: u64) -> u64;

    #[inline(always)]
    fn add(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the trait's contract.
        unsafe { _mm512_add_epi64(a, b) }
    }

    #[inline(always)]
    fn sub(self, a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: see the trait's contract.
        unsafe { _mm512_sub_epi64(a, b) }
    }

    /// `x mod m` for `x < 2m`: min(x, x − m) picks x − m unless it wrapped.
    #[inline(always)]
    fn reduce(self, x: __m512i, m: __m512i) -> __m512i {
        // SAFETY: see the trait's contract.
        unsafe { _mm512_min_epu64(x, _mm512_sub_epi64(x, m)) }
    }

    /// `x − y mod q` for x, y in `[0, q)`: the wrapped difference plus q is the smaller one.
    #[inline(always)]
    fn sub_mod(self, x: __m512i, y: __m512i) -> __m512i {
        let d = self.sub(x, y);
        // SAFETY: see the trait's contract.
        unsafe { _mm512_min_epu64(d, _mm512_add_epi64(d, self.q())) }
    }

    #[inline(always)]
    fn splat(self, x: u64) -> __m512i {
        // SAFETY: see the trait's contract.
        unsafe { _mm512_set1_epi64(x as i64) }
    }

    /// # Safety
    /// `p` must be valid for reading 8 u64.
    #[inline(always)]
    unsafe fn load(self, p: *const u64) -> __m512i {
        // SAFETY: the caller guarantees `p`; AVX-512F by the trait's contract.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }

    /// # Safety
    /// `p` must be valid for writing 8 u64.
    #[inline(always)]
    unsafe fn store(self, p: *mut u64, x: __m512i) {
        // SAFETY: the caller guarantees `p`; AVX-512F by the trait's contract.
        unsafe { _mm512_storeu_si512(p.cast(), x) }
    }
}

/// IFMA flavour: 52-bit Shoup constants, q < 2^50.
#[derive(Clone, Copy)]
pub(super) struct Ifma {
    q: __m512i,
    two_q: __m512i,
    /// 2^52 − q: adding qh·(2^52 − q) modulo 2^52 subtracts qh·q.
    neg_q: __m512i,
    mask52: __m512i,
}

impl Ifma {
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512 IFMA.
    #[inline(always)]
    pub(super) unsafe fn new(q: u64) -> Self {
        // SAFETY: AVX-512F by the caller's guarantee.
        unsafe {
            Self {
                q: _mm512_set1_epi64(q as i64),
                two_q: _mm512_set1_epi64((2 * q) as i64),
                neg_q: _mm512_set1_epi64(((1u64 << 52) - q) as i64),
                mask52: _mm512_set1_epi64(((1u64 << 52) - 1) as i64),
            }
        }
    }

    /// `acc + (x·y mod 2^52)` for `x, y < 2^52`.
    #[inline(always)]
    pub(super) fn madd_lo(self, acc: __m512i, x: __m512i, y: __m512i) -> __m512i {
        // SAFETY: AVX-512F + IFMA by construction of `self`.
        unsafe { _mm512_madd52lo_epu64(acc, x, y) }
    }

    /// `acc + floor(x·y / 2^52)` for `x, y < 2^52`.
    #[inline(always)]
    pub(super) fn madd_hi(self, acc: __m512i, x: __m512i, y: __m512i) -> __m512i {
        // SAFETY: AVX-512F + IFMA by construction of `self`.
        unsafe { _mm512_madd52hi_epu64(acc, x, y) }
    }

    /// `x − qh·q` computed modulo 2^52 (for `qh < 2^52`): exact when the true difference lies
    /// in `[0, 2^52)`, whatever bits of `x` lie above bit 52.
    #[inline(always)]
    pub(super) fn sub_qh(self, x: __m512i, qh: __m512i) -> __m512i {
        // SAFETY: AVX-512F + IFMA by construction of `self`.
        unsafe { _mm512_and_si512(_mm512_madd52lo_epu64(x, qh, self.neg_q), self.mask52) }
    }

    /// The low 52 bits of `x`.
    #[inline(always)]
    pub(super) fn low52(self, x: __m512i) -> __m512i {
        // SAFETY: AVX-512F by construction of `self`.
        unsafe { _mm512_and_si512(x, self.mask52) }
    }
}

// SAFETY: `Ifma::new` is unsafe and requires AVX-512F + IFMA.
unsafe impl Arith for Ifma {
    #[inline(always)]
    fn q(self) -> __m512i {
        self.q
    }

    #[inline(always)]
    fn two_q(self) -> __m512i {
        self.two_q
    }

    #[inline(always)]
    fn mul_lazy(self, x: __m512i, w: __m512i, ws: __m512i) -> __m512i {
        // SAFETY: AVX-512F + IFMA by construction of `self`.
        unsafe {
            let zero = _mm512_setzero_si512();
            // qh = floor(x·ws / 2^52); x·w − qh·q lies in [0, 2q) and is < 2^52, so computing
            // it modulo 2^52 (low halves only) is exact.
            let qh = _mm512_madd52hi_epu64(zero, x, ws);
            let lo = _mm512_madd52lo_epu64(zero, x, w);
            _mm512_and_si512(_mm512_madd52lo_epu64(lo, qh, self.neg_q), self.mask52)
        }
    }

    #[inline(always)]
    fn shoup(q: u64, w: u64) -> u64 {
        (((w as u128) << 52) / q as u128) as u64
    }
}

/// Wide flavour: 64-bit Shoup constants, q < 2^62, AVX-512F/DQ.
#[derive(Clone, Copy)]
pub(super) struct Wide {
    q: __m512i,
    two_q: __m512i,
}

impl Wide {
    /// # Safety
    /// The CPU must support AVX-512F and AVX-512DQ.
    #[inline(always)]
    pub(super) unsafe fn new(q: u64) -> Self {
        // SAFETY: AVX-512F by the caller's guarantee.
        unsafe {
            Self {
                q: _mm512_set1_epi64(q as i64),
                two_q: _mm512_set1_epi64((2 * q) as i64),
            }
        }
    }
}

// SAFETY: `Wide::new` is unsafe and requires AVX-512F + DQ.
unsafe impl Arith for Wide {
    #[inline(always)]
    fn q(self) -> __m512i {
        self.q
    }

    #[inline(always)]
    fn two_q(self) -> __m512i {
        self.two_q
    }

    #[inline(always)]
    fn mul_lazy(self, x: __m512i, w: __m512i, ws: __m512i) -> __m512i {
        // SAFETY: AVX-512F + DQ by construction of `self`.
        unsafe {
            // qh ≈ floor(x·ws / 2^64) from the three partial products that reach the high word;
            // dropping lo·lo and the carries underestimates by at most 2, so x·w − qh·q < 4q.
            // (ws_hi is loop-invariant for broadcast twiddles; LLVM hoists it.)
            let x_hi = _mm512_srli_epi64::<32>(x);
            let ws_hi = _mm512_srli_epi64::<32>(ws);
            let hh = _mm512_mul_epu32(x_hi, ws_hi);
            let lh = _mm512_srli_epi64::<32>(_mm512_mul_epu32(x, ws_hi));
            let hl = _mm512_srli_epi64::<32>(_mm512_mul_epu32(x_hi, ws));
            let qh = _mm512_add_epi64(hh, _mm512_add_epi64(lh, hl));
            let r = _mm512_sub_epi64(_mm512_mullo_epi64(x, w), _mm512_mullo_epi64(qh, self.q));
            // [0, 4q) → [0, 2q), the range the butterflies assume.
            self.reduce(r, self.two_q)
        }
    }

    #[inline(always)]
    fn shoup(q: u64, w: u64) -> u64 {
        (((w as u128) << 64) / q as u128) as u64
    }
}
