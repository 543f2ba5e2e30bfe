//! Products of two variables modulo q < 2^62 on AVX-512F/DQ: the pointwise products and the
//! key-switch inner product for moduli beyond the IFMA kernels' 2^50 (and for CPUs without
//! IFMA). Each 128-bit product comes from four 32×32-bit multiplies (`vpmuludq`), and one
//! Barrett step brings it (or a short sum of them) back below q. Outputs are canonical
//! residues, bit for bit those of the [`scalar`](super::scalar) reference.

use core::arch::x86_64::*;

use super::avx512::{check_lengths, inner_product_blocks, load, store, LANES, MAX_TERMS};
use super::lanes::{Arith, Wide};

/// A 128-bit value per lane, as (low, high) 64-bit halves.
type Full = (__m512i, __m512i);

/// Products of 64-bit lanes and their Barrett reduction modulo a b-bit q, for values below
/// 2^(2b+s) with b + s ≤ 63: with c = ⌊v / 2^(b−1)⌋ and μ = ⌊2^(2b+s) / q⌋ (both below
/// 2^64), the quotient estimate ⌊c·μ / 2^(b+s+1)⌋ is at most 2 short of ⌊v / q⌋, so
/// v − estimate·q lies in [0, 3q).
#[derive(Clone, Copy)]
struct Barrett {
    ar: Wide,
    mu: __m512i,
    /// Shifts of c: hi << (65 − b), lo >> (b − 1).
    c_shl: __m128i,
    c_shr: __m128i,
    /// Shifts of the estimate: hi << (63 − b − s), lo >> (b + s + 1).
    e_shl: __m128i,
    e_shr: __m128i,
}

impl Barrett {
    /// Whether sums of `terms` products of values below q fit the reduction (see [`Barrett`]).
    fn fits(q: u64, terms: usize) -> bool {
        let b = 64 - q.leading_zeros();
        (1..=MAX_TERMS).contains(&terms) && b + Self::slack(terms) <= 63
    }

    /// s: sums of `terms` products below q² stay below 2^(2b+s).
    fn slack(terms: usize) -> u32 {
        terms.next_power_of_two().trailing_zeros()
    }

    /// # Safety
    /// AVX-512F/DQ; `fits(q, terms)`.
    #[inline(always)]
    unsafe fn new(q: u64, terms: usize) -> Self {
        let b = 64 - q.leading_zeros();
        let s = Self::slack(terms);
        let mu = ((1u128 << (2 * b + s)) / q as u128) as u64;
        // SAFETY: AVX-512F/DQ by the caller's guarantee.
        unsafe {
            Self {
                ar: Wide::new(q),
                mu: _mm512_set1_epi64(mu as i64),
                c_shl: _mm_cvtsi64_si128((65 - b) as i64),
                c_shr: _mm_cvtsi64_si128((b - 1) as i64),
                e_shl: _mm_cvtsi64_si128((63 - b - s) as i64),
                e_shr: _mm_cvtsi64_si128((b + s + 1) as i64),
            }
        }
    }

    /// The full product a·b of any 64-bit lanes.
    #[inline(always)]
    fn mul_full(self, a: __m512i, b: __m512i) -> Full {
        // SAFETY: AVX-512F by `self`'s existence.
        unsafe {
            let low32 = _mm512_set1_epi64(0xffff_ffff);
            let (a_hi, b_hi) = (_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(b));
            let ll = _mm512_mul_epu32(a, b);
            let lh = _mm512_mul_epu32(a, b_hi);
            let hl = _mm512_mul_epu32(a_hi, b);
            let hh = _mm512_mul_epu32(a_hi, b_hi);
            // Column sums that cannot overflow for any 64-bit a and b.
            let t = _mm512_add_epi64(hl, _mm512_srli_epi64::<32>(ll));
            let u = _mm512_add_epi64(lh, _mm512_and_si512(t, low32));
            let hi = _mm512_add_epi64(
                hh,
                _mm512_add_epi64(_mm512_srli_epi64::<32>(t), _mm512_srli_epi64::<32>(u)),
            );
            let lo = _mm512_or_si512(_mm512_slli_epi64::<32>(u), _mm512_and_si512(ll, low32));
            (lo, hi)
        }
    }

    /// (lo, hi) + (add_lo, add_hi) (no overflow past 2^128 by the callers' bounds).
    #[inline(always)]
    fn add_full(self, (lo, hi): Full, (add_lo, add_hi): Full) -> Full {
        // SAFETY: AVX-512F by `self`'s existence.
        unsafe {
            let lo = _mm512_add_epi64(lo, add_lo);
            let carry = _mm512_cmplt_epu64_mask(lo, add_lo);
            let hi = _mm512_add_epi64(hi, add_hi);
            (
                lo,
                _mm512_mask_add_epi64(hi, carry, hi, _mm512_set1_epi64(1)),
            )
        }
    }

    /// v mod q in [0, q) for v = (lo, hi) below 2^(2b+s).
    #[inline(always)]
    fn reduce(self, (lo, hi): Full) -> __m512i {
        let ar = self.ar;
        // SAFETY: AVX-512F/DQ by `self`'s existence.
        let r = unsafe {
            let c = _mm512_or_si512(
                _mm512_sll_epi64(hi, self.c_shl),
                _mm512_srl_epi64(lo, self.c_shr),
            );
            let (pl, ph) = self.mul_full(c, self.mu);
            // A shift by 64 (b + s = 63) gives 0, as the estimate needs.
            let estimate = _mm512_or_si512(
                _mm512_sll_epi64(ph, self.e_shl),
                _mm512_srl_epi64(pl, self.e_shr),
            );
            // The remainder is below 3q < 2^64, so its low word is all of it.
            _mm512_sub_epi64(lo, _mm512_mullo_epi64(estimate, ar.q()))
        };
        ar.reduce(ar.reduce(r, ar.two_q()), ar.q())
    }
}

/// Whether [`inner_product`] takes `terms` digits modulo q.
pub(super) fn inner_product_fits(q: u64, terms: usize) -> bool {
    Barrett::fits(q, terms)
}

/// a = a·b mod q.
///
/// # Safety
/// AVX-512F/DQ; q < 2^62.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn mul(q: u64, a: &mut [u64], b: &[u64]) {
    check_lengths(a.len(), &[b.len()]);
    // SAFETY: AVX-512F/DQ enabled here; one product of values below q < 2^62 fits.
    let red = unsafe { Barrett::new(q, 1) };
    for i in (0..a.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above).
        unsafe {
            let p = red.mul_full(load(a.as_ptr().add(i)), load(b.as_ptr().add(i)));
            store(a.as_mut_ptr().add(i), red.reduce(p));
        }
    }
}

/// acc = acc + a·b mod q.
///
/// # Safety
/// AVX-512F/DQ; q < 2^62.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn mul_add(q: u64, acc: &mut [u64], a: &[u64], b: &[u64]) {
    check_lengths(acc.len(), &[a.len(), b.len()]);
    // SAFETY: AVX-512F/DQ enabled here; a·b + acc ≤ (q − 1)² + q − 1 < q² fits.
    let red = unsafe { Barrett::new(q, 1) };
    let zero = _mm512_setzero_si512();
    for i in (0..acc.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for all three slices (checked above).
        unsafe {
            let z = acc.as_mut_ptr().add(i);
            let p = red.mul_full(load(a.as_ptr().add(i)), load(b.as_ptr().add(i)));
            store(z, red.reduce(red.add_full(p, (load(z), zero))));
        }
    }
}

/// The key-switch inner product, see [`scalar::inner_product`](super::scalar::inner_product),
/// for `x.len()` digits with [`inner_product_fits`].
///
/// # Safety
/// AVX-512F/DQ.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn inner_product(
    q: u64,
    x: &[&[u64]],
    perm: Option<&[u32]>,
    keys: [&[&[u64]]; 2],
    out: [&mut [u64]; 2],
) {
    let k = x.len();
    assert!(
        Barrett::fits(q, k),
        "{k} products modulo {q} do not fit the reduction"
    );
    // SAFETY: AVX-512F/DQ enabled here; the sums fit (asserted above).
    let red = unsafe { Barrett::new(q, k) };
    let zero = _mm512_setzero_si512();
    // SAFETY: AVX-512F enabled here.
    let run = |block| unsafe { inner_product_blocks(x, perm, keys, out, block) };
    run(
        |digit: &dyn Fn(usize) -> __m512i, key: &dyn Fn(usize, usize) -> __m512i| {
            let (mut s0, mut s1) = ((zero, zero), (zero, zero));
            for j in 0..k {
                let d = digit(j);
                s0 = red.add_full(s0, red.mul_full(d, key(0, j)));
                s1 = red.add_full(s1, red.mul_full(d, key(1, j)));
            }
            (red.reduce(s0), red.reduce(s1))
        },
    )
}
