//! AVX-512 versions of the [`scalar`](super::scalar) kernels, eight u64 lanes at a time, on
//! whole vectors (the dispatcher sends other lengths to the scalar code).
//!
//! Two families, both returning canonical residues so that they match the reference bit for bit:
//! - products by constants (Shoup) and plain additions, generic over the [`Arith`] flavour:
//!   [`Ifma`] for moduli below 2^50, [`Wide`] (AVX-512F/DQ) up to 2^62;
//! - products of two variables (pointwise products, the key-switch inner product, the sums of a
//!   base conversion) with IFMA: `vpmadd52{lo,hi}uq` give the 104-bit product of two values
//!   below 2^52 as two 52-bit halves, which [`Reducer`] brings back below q. Wider moduli (and
//!   CPUs without IFMA) have the pointwise products and the inner product in
//!   [`avx512_wide`](super::avx512_wide).
//!
//! Every `unsafe fn` here needs only the CPU features in its `target_feature` attribute; slice
//! lengths are checked inside.

use core::arch::x86_64::*;

use super::lanes::{Arith, Ifma, Wide};

/// u64 lanes per vector.
pub(super) const LANES: usize = 8;

/// Most products one [`Reducer::reduce_sum`] accepts (its high accumulator stays below 2^52).
pub(super) const MAX_TERMS: usize = 15;

/// # Safety
/// AVX-512F; `p` valid for reading 8 u64.
#[inline(always)]
pub(super) unsafe fn load(p: *const u64) -> __m512i {
    // SAFETY: by the caller's guarantee.
    unsafe { _mm512_loadu_si512(p.cast()) }
}

/// # Safety
/// AVX-512F; `p` valid for writing 8 u64.
#[inline(always)]
pub(super) unsafe fn store(p: *mut u64, x: __m512i) {
    // SAFETY: by the caller's guarantee.
    unsafe { _mm512_storeu_si512(p.cast(), x) }
}

/// Lanes `perm[0..8]` of `base`.
///
/// # Safety
/// AVX-512F; `perm` valid for reading 8 u32, each an index into `base`'s allocation.
#[inline(always)]
unsafe fn gather(base: *const u64, perm: *const u32) -> __m512i {
    // SAFETY: by the caller's guarantee.
    unsafe {
        let idx = _mm256_loadu_si256(perm.cast());
        _mm512_i32gather_epi64::<8>(idx, base.cast())
    }
}

/// Where lanes `perm[0..8]` come from when they all index one aligned block of 8 values of a
/// slice of length `len` (always the case for the NTT-domain automorphisms, whose permutations
/// map aligned blocks of 8 to aligned blocks of 8): the block's start and the lane indices
/// within it, for a load and an in-register permutation instead of a (slower) gather.
///
/// # Safety
/// AVX-512F; `perm` valid for reading 8 u32.
#[inline(always)]
unsafe fn block_source(perm: *const u32, len: usize) -> Option<(usize, __m512i)> {
    // SAFETY: by the caller's guarantee.
    unsafe {
        let idx = _mm512_cvtepu32_epi64(_mm256_loadu_si256(perm.cast()));
        let start = *perm as usize & !7;
        let block = _mm512_set1_epi64((start >> 3) as i64);
        let same = _mm512_cmpeq_epi64_mask(_mm512_srli_epi64::<3>(idx), block);
        (same == 0xff && start + LANES <= len).then_some((start, idx))
    }
}

/// Lanes `idx` (low three bits of each) of `x`.
///
/// # Safety
/// AVX-512F.
#[inline(always)]
unsafe fn permute_lanes(idx: __m512i, x: __m512i) -> __m512i {
    // SAFETY: by the caller's guarantee.
    unsafe { _mm512_permutexvar_epi64(idx, x) }
}

/// Checks what every kernel relies on: all slices of length `n`, a whole number of vectors.
pub(super) fn check_lengths(n: usize, others: &[usize]) {
    assert!(n.is_multiple_of(LANES), "vector kernels take whole vectors");
    assert!(others.iter().all(|&l| l == n), "slice lengths differ");
}

/// Checks that `perm` has `n` entries, all indices into a slice of length `len`.
fn check_perm(perm: &[u32], n: usize, len: usize) {
    assert_eq!(perm.len(), n, "one permutation entry per output");
    assert!(
        perm.iter()
            .copied()
            .max()
            .is_none_or(|m| (m as usize) < len),
        "permutation index out of range"
    );
}

// ---------------------------------------------------------------------------------------------
// Additions and permutations (any q < 2^62, AVX-512F/DQ).

#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn add(q: u64, a: &mut [u64], b: &[u64]) {
    check_lengths(a.len(), &[b.len()]);
    // SAFETY: AVX-512F and DQ are enabled here.
    let ar = unsafe { Wide::new(q) };
    for i in (0..a.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above).
        unsafe {
            let s = ar.add(ar.load(a.as_ptr().add(i)), ar.load(b.as_ptr().add(i)));
            ar.store(a.as_mut_ptr().add(i), ar.reduce(s, ar.q()));
        }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn sub(q: u64, a: &mut [u64], b: &[u64]) {
    check_lengths(a.len(), &[b.len()]);
    // SAFETY: AVX-512F and DQ are enabled here.
    let ar = unsafe { Wide::new(q) };
    for i in (0..a.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above).
        unsafe {
            let d = ar.sub_mod(ar.load(a.as_ptr().add(i)), ar.load(b.as_ptr().add(i)));
            ar.store(a.as_mut_ptr().add(i), d);
        }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn neg(q: u64, a: &mut [u64]) {
    check_lengths(a.len(), &[]);
    // SAFETY: AVX-512F and DQ are enabled here.
    let ar = unsafe { Wide::new(q) };
    let zero = ar.splat(0);
    for i in (0..a.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len (checked above).
        unsafe {
            // 0 − x mod q: q − x, or 0 for x = 0.
            let d = ar.sub_mod(zero, ar.load(a.as_ptr().add(i)));
            ar.store(a.as_mut_ptr().add(i), d);
        }
    }
}

#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn add_const(q: u64, a: &mut [u64], c: u64) {
    check_lengths(a.len(), &[]);
    // SAFETY: AVX-512F and DQ are enabled here.
    let ar = unsafe { Wide::new(q) };
    let cv = ar.splat(c);
    for i in (0..a.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len (checked above).
        unsafe {
            let s = ar.add(ar.load(a.as_ptr().add(i)), cv);
            ar.store(a.as_mut_ptr().add(i), ar.reduce(s, ar.q()));
        }
    }
}

/// out[i] = x[perm[i]].
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn permute(x: &[u64], perm: &[u32], out: &mut [u64]) {
    check_lengths(out.len(), &[]);
    check_perm(perm, out.len(), x.len());
    for i in (0..out.len()).step_by(LANES) {
        // SAFETY: AVX-512F is enabled here; i + 8 ≤ len of `out` and `perm`; perm entries index
        // `x` (checked above), and `block_source` only returns blocks inside `x`.
        unsafe {
            let p = perm.as_ptr().add(i);
            let v = match block_source(p, x.len()) {
                Some((start, idx)) => permute_lanes(idx, load(x.as_ptr().add(start))),
                None => gather(x.as_ptr(), p),
            };
            store(out.as_mut_ptr().add(i), v);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Products by constants: Shoup, either flavour.

/// Entry points for one flavour: `$ifma`/`$wide` wrap a generic body in the features it needs.
macro_rules! shoup_kernels {
    ($( $(#[$doc:meta])* fn $ifma:ident / $wide:ident
        ($q:ident: u64, $($arg:ident : $ty:ty),*) => $body:ident; )*) => {$(
        $(#[$doc])*
        #[target_feature(enable = "avx512f,avx512ifma")]
        pub(super) unsafe fn $ifma($q: u64, $($arg: $ty),*) {
            // SAFETY: AVX-512F and IFMA are enabled here.
            $body(unsafe { Ifma::new($q) }, $q, $($arg),*)
        }

        $(#[$doc])*
        #[target_feature(enable = "avx512f,avx512dq")]
        pub(super) unsafe fn $wide($q: u64, $($arg: $ty),*) {
            // SAFETY: AVX-512F and DQ are enabled here.
            $body(unsafe { Wide::new($q) }, $q, $($arg),*)
        }
    )*};
}

shoup_kernels! {
    /// out = x·w, with x = out when `x` is `None` (x < 2^52 for Ifma).
    fn mul_const_ifma / mul_const_wide
        (q: u64, x: Option<&[u64]>, out: &mut [u64], w: u64) => mul_const_with;
    /// out = (x − out)·w.
    fn sub_mul_const_ifma / sub_mul_const_wide
        (q: u64, x: &[u64], out: &mut [u64], w: u64) => sub_mul_const_with;
    /// out = (x mod q) − h mod q (x < 2^52 for Ifma).
    fn reduce_sub_const_ifma / reduce_sub_const_wide
        (q: u64, x: &[u64], h: u64, out: &mut [u64]) => reduce_sub_const_with;
    /// out = the centered representative of x ∈ [0, s) reduced mod q (s < 2^52 for Ifma).
    fn center_reduce_ifma / center_reduce_wide
        (q: u64, s: u64, x: &[u64], out: &mut [u64]) => center_reduce_with;
}

#[inline(always)]
fn mul_const_with<A: Arith>(ar: A, q: u64, x: Option<&[u64]>, out: &mut [u64], w: u64) {
    check_lengths(out.len(), &[x.map_or(out.len(), |x| x.len())]);
    let (wv, ws) = (ar.splat(w), ar.splat(A::shoup(q, w)));
    let dst = out.as_mut_ptr();
    let src = x.map_or(dst.cast_const(), |x| x.as_ptr());
    for i in (0..out.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len of `out` and of `x` (checked above); `src` is either `x` or `out`
        // itself, read before the same lanes are written.
        unsafe {
            let r = ar.reduce(ar.mul_lazy(ar.load(src.add(i)), wv, ws), ar.q());
            ar.store(dst.add(i), r);
        }
    }
}

#[inline(always)]
fn sub_mul_const_with<A: Arith>(ar: A, q: u64, x: &[u64], out: &mut [u64], w: u64) {
    check_lengths(out.len(), &[x.len()]);
    let (wv, ws) = (ar.splat(w), ar.splat(A::shoup(q, w)));
    for i in (0..out.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above).
        unsafe {
            let o = out.as_mut_ptr().add(i);
            // x + q − out ∈ [1, 2q): the difference before reduction, fine for the product.
            let d = ar.sub(ar.add(ar.load(x.as_ptr().add(i)), ar.q()), ar.load(o));
            ar.store(o, ar.reduce(ar.mul_lazy(d, wv, ws), ar.q()));
        }
    }
}

#[inline(always)]
fn reduce_sub_const_with<A: Arith>(ar: A, q: u64, x: &[u64], h: u64, out: &mut [u64]) {
    check_lengths(out.len(), &[x.len()]);
    // Shoup by one: x − floor(x·⌊2^k/q⌋ / 2^k)·q lies in [0, 2q).
    let (one, one_s) = (ar.splat(1), ar.splat(A::shoup(q, 1)));
    let hv = ar.splat(h);
    for i in (0..out.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above).
        unsafe {
            let r = ar.reduce(ar.mul_lazy(ar.load(x.as_ptr().add(i)), one, one_s), ar.q());
            ar.store(out.as_mut_ptr().add(i), ar.sub_mod(r, hv));
        }
    }
}

#[inline(always)]
fn center_reduce_with<A: Arith>(ar: A, q: u64, s: u64, x: &[u64], out: &mut [u64]) {
    check_lengths(out.len(), &[x.len()]);
    let (one, one_s) = (ar.splat(1), ar.splat(A::shoup(q, 1)));
    let (sv, half) = (ar.splat(s), ar.splat(s / 2));
    let zero = ar.splat(0);
    for i in (0..out.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above); AVX-512F by `ar`'s existence.
        unsafe {
            let xv = ar.load(x.as_ptr().add(i));
            // x > s/2 stands for x − s < 0: reduce |x − s| = s − x and negate.
            let upper = _mm512_cmpgt_epu64_mask(xv, half);
            let v = _mm512_mask_sub_epi64(xv, upper, sv, xv);
            let r = ar.reduce(ar.mul_lazy(v, one, one_s), ar.q());
            let neg = ar.sub_mod(zero, r);
            ar.store(
                out.as_mut_ptr().add(i),
                _mm512_mask_blend_epi64(upper, r, neg),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Products of two variables: IFMA, q < 2^50.

/// Reductions of 104-bit IFMA products (and sums of them) modulo q < 2^50.
#[derive(Clone, Copy)]
struct Reducer {
    ar: Ifma,
    /// floor(2^(51+b) / q) for the b-bit q: Barrett constant of `reduce_product`.
    mu: __m512i,
    /// Shift counts 53 − b and b − 1: the value ⌊p / 2^(b−1)⌋ from the two 52-bit halves.
    shl: __m128i,
    shr: __m128i,
    /// 2^52 mod q and its Shoup constant: folds the high half of a sum.
    r52: __m512i,
    r52_s: __m512i,
    /// floor(2^52 / q): Shoup constant of 1, reduces the low half of a sum.
    one_s: __m512i,
}

impl Reducer {
    /// # Safety
    /// AVX-512F and IFMA; q < 2^50.
    #[inline(always)]
    unsafe fn new(q: u64) -> Self {
        let b = 64 - q.leading_zeros();
        let r52 = (1u64 << 52) % q;
        // SAFETY: AVX-512F and IFMA by the caller's guarantee.
        unsafe {
            Self {
                ar: Ifma::new(q),
                mu: _mm512_set1_epi64(((1u128 << (51 + b)) / q as u128) as i64),
                shl: _mm_cvtsi64_si128((53 - b) as i64),
                shr: _mm_cvtsi64_si128((b - 1) as i64),
                r52: _mm512_set1_epi64(r52 as i64),
                r52_s: _mm512_set1_epi64(Ifma::shoup(q, r52) as i64),
                one_s: _mm512_set1_epi64(Ifma::shoup(q, 1) as i64),
            }
        }
    }

    /// `hi·2^52 + lo mod q` in `[0, q)` for a value below q² (lo may exceed 2^52 by a carry).
    ///
    /// Barrett on c = ⌊p / 2^(b−1)⌋ < 2^(b+1): the quotient estimate ⌊c·μ / 2^52⌋ is at most
    /// 2 short, so p − estimate·q lies in [0, 3q) and is computed modulo 2^52.
    #[inline(always)]
    fn reduce_product(self, lo: __m512i, hi: __m512i) -> __m512i {
        let ar = self.ar;
        // SAFETY: AVX-512F by `ar`'s existence.
        let c = unsafe {
            _mm512_add_epi64(
                _mm512_sll_epi64(hi, self.shl),
                _mm512_srl_epi64(lo, self.shr),
            )
        };
        let qh = ar.madd_hi(ar.splat(0), c, self.mu);
        let r = ar.sub_qh(lo, qh);
        ar.reduce(ar.reduce(r, ar.two_q()), ar.q())
    }

    /// `hi·2^52 + lo mod q` in `[0, q)` for accumulators of at most [`MAX_TERMS`] products of
    /// values below q: the high half (after the low half's carry) stays below 2^52 and is folded
    /// by a Shoup product with 2^52 mod q; the low half is reduced by a Shoup product with 1.
    #[inline(always)]
    fn reduce_sum(self, lo: __m512i, hi: __m512i) -> __m512i {
        let ar = self.ar;
        // SAFETY: AVX-512F by `ar`'s existence.
        let hi = unsafe { _mm512_add_epi64(hi, _mm512_srli_epi64::<52>(lo)) };
        let lo = ar.low52(lo);
        let r_hi = ar.mul_lazy(hi, self.r52, self.r52_s);
        let r_lo = ar.sub_qh(lo, ar.madd_hi(ar.splat(0), lo, self.one_s));
        let r = ar.reduce(ar.add(r_hi, r_lo), ar.two_q());
        ar.reduce(r, ar.q())
    }
}

/// a = a·b mod q.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn mul(q: u64, a: &mut [u64], b: &[u64]) {
    check_lengths(a.len(), &[b.len()]);
    // SAFETY: AVX-512F and IFMA enabled here; q < 2^50 by the dispatcher.
    let red = unsafe { Reducer::new(q) };
    let (ar, zero) = (red.ar, _mm512_setzero_si512());
    for i in (0..a.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for both slices (checked above).
        unsafe {
            let (x, y) = (load(a.as_ptr().add(i)), load(b.as_ptr().add(i)));
            let r = red.reduce_product(ar.madd_lo(zero, x, y), ar.madd_hi(zero, x, y));
            store(a.as_mut_ptr().add(i), r);
        }
    }
}

/// acc = acc + a·b mod q.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn mul_add(q: u64, acc: &mut [u64], a: &[u64], b: &[u64]) {
    check_lengths(acc.len(), &[a.len(), b.len()]);
    // SAFETY: AVX-512F and IFMA enabled here; q < 2^50 by the dispatcher.
    let red = unsafe { Reducer::new(q) };
    let (ar, zero) = (red.ar, _mm512_setzero_si512());
    for i in (0..acc.len()).step_by(LANES) {
        // SAFETY: i + 8 ≤ len for all three slices (checked above).
        unsafe {
            let (x, y) = (load(a.as_ptr().add(i)), load(b.as_ptr().add(i)));
            let z = acc.as_mut_ptr().add(i);
            // a·b + acc < q²: the addend joins the low half (which may carry past bit 52).
            let r = red.reduce_product(ar.madd_lo(load(z), x, y), ar.madd_hi(zero, x, y));
            store(z, r);
        }
    }
}

/// The key-switch inner product, see [`scalar::inner_product`](super::scalar::inner_product);
/// at most [`MAX_TERMS`] digits.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn inner_product(
    q: u64,
    x: &[&[u64]],
    perm: Option<&[u32]>,
    keys: [&[&[u64]]; 2],
    out: [&mut [u64]; 2],
) {
    // SAFETY: AVX-512F and IFMA enabled here; q < 2^50 by the dispatcher.
    let red = unsafe { Reducer::new(q) };
    let ar = red.ar;
    let zero = ar.splat(0);
    let k = x.len();
    // SAFETY: AVX-512F enabled here.
    let run = |block| unsafe { inner_product_blocks(x, perm, keys, out, block) };
    run(
        |digit: &dyn Fn(usize) -> __m512i, key: &dyn Fn(usize, usize) -> __m512i| {
            // Both halves' accumulators over the digits.
            let (mut l0, mut h0, mut l1, mut h1) = (zero, zero, zero, zero);
            for j in 0..k {
                let (d, a, b) = (digit(j), key(0, j), key(1, j));
                // Each product below q² < 2^100 splits into 52-bit halves; at most 15 of them
                // keep the sums below 2^56 (low) and 2^52 (high).
                l0 = ar.madd_lo(l0, d, a);
                h0 = ar.madd_hi(h0, d, a);
                l1 = ar.madd_lo(l1, d, b);
                h1 = ar.madd_hi(h1, d, b);
            }
            (red.reduce_sum(l0, h0), red.reduce_sum(l1, h1))
        },
    )
}

/// What both key-switch inner products (IFMA here, [`wide`](super::avx512_wide)) share: the
/// slices' checks, and the loop over blocks of 8 outputs, with digit j's lanes (through the
/// permutation) from `digit(j)` and key half h's digit j from `key(h, j)`; `block` returns
/// the block's two outputs. At most [`MAX_TERMS`] digits.
///
/// # Safety
/// AVX-512F (the callers enable it).
#[inline(always)]
pub(super) unsafe fn inner_product_blocks(
    x: &[&[u64]],
    perm: Option<&[u32]>,
    keys: [&[&[u64]]; 2],
    out: [&mut [u64]; 2],
    block: impl Fn(&dyn Fn(usize) -> __m512i, &dyn Fn(usize, usize) -> __m512i) -> (__m512i, __m512i),
) {
    let [o0, o1] = out;
    let n = o0.len();
    let k = x.len();
    assert!(k <= MAX_TERMS && keys.iter().all(|h| h.len() == k));
    let key_lens: Vec<usize> = keys
        .iter()
        .flat_map(|h| h.iter().map(|s| s.len()))
        .collect();
    check_lengths(n, &key_lens);
    check_lengths(n, &[o1.len()]);
    match perm {
        Some(p) => {
            let len = x.iter().map(|s| s.len()).min().unwrap_or(0);
            check_perm(p, n, len);
        }
        None => check_lengths(n, &x.iter().map(|s| s.len()).collect::<Vec<_>>()),
    }
    let ptrs = |s: &[&[u64]]| {
        let mut p = [core::ptr::null::<u64>(); MAX_TERMS];
        p.iter_mut().zip(s).for_each(|(p, s)| *p = s.as_ptr());
        p
    };
    let (xp, kp) = (ptrs(x), [ptrs(keys[0]), ptrs(keys[1])]);
    let (o0, o1) = (o0.as_mut_ptr(), o1.as_mut_ptr());
    let src_len = x.iter().map(|s| s.len()).min().unwrap_or(0);
    for i in (0..n).step_by(LANES) {
        // SAFETY: i + 8 ≤ n = the length of every key slice (checked above).
        let key = |h: usize, j: usize| unsafe { load(kp[h][j].add(i)) };
        // SAFETY: i + 8 ≤ n = the length of every digit without a permutation, and of the
        // permutation, whose entries index every digit (checked above); `block_source` only
        // returns blocks inside every digit.
        let (r0, r1) = unsafe {
            match perm {
                None => block(&|j| load(xp[j].add(i)), &key),
                Some(p) => {
                    let p = p.as_ptr().add(i);
                    match block_source(p, src_len) {
                        Some((start, idx)) => {
                            block(&|j| permute_lanes(idx, load(xp[j].add(start))), &key)
                        }
                        None => block(&|j| gather(xp[j], p), &key),
                    }
                }
            }
        };
        // SAFETY: i + 8 ≤ n (checked above).
        unsafe {
            store(o0.add(i), r0);
            store(o1.add(i), r1);
        }
    }
}

/// One target of a fast base conversion, see [`scalar::hat_sum`](super::scalar::hat_sum); at
/// most [`MAX_TERMS`] sources, values below 2^52 (y_j < s_j < 2^50).
#[target_feature(enable = "avx512f,avx512ifma")]
pub(super) unsafe fn hat_sum(
    q: u64,
    y: &[&[u64]],
    hats: &[u64],
    u: &[u64],
    s: u64,
    out: &mut [u64],
) {
    let n = out.len();
    assert!(y.len() <= MAX_TERMS && hats.len() == y.len());
    check_lengths(n, &y.iter().map(|s| s.len()).collect::<Vec<_>>());
    check_lengths(n, &[u.len()]);
    // SAFETY: AVX-512F and IFMA enabled here; q < 2^50 by the dispatcher.
    let red = unsafe { Reducer::new(q) };
    let ar = red.ar;
    let zero = ar.splat(0);
    let (sv, s_s) = (ar.splat(s), ar.splat(Ifma::shoup(q, s)));
    let mut h = [zero; MAX_TERMS];
    h.iter_mut().zip(hats).for_each(|(h, &v)| *h = ar.splat(v));
    for i in (0..n).step_by(LANES) {
        let (mut lo, mut hi) = (zero, zero);
        for (y, &h) in y.iter().zip(&h) {
            // SAFETY: i + 8 ≤ n = every slice's length (checked above).
            let v = unsafe { load(y.as_ptr().add(i)) };
            lo = ar.madd_lo(lo, v, h);
            hi = ar.madd_hi(hi, v, h);
        }
        // SAFETY: i + 8 ≤ n (checked above).
        unsafe {
            let us = ar.reduce(ar.mul_lazy(load(u.as_ptr().add(i)), sv, s_s), ar.q());
            store(
                out.as_mut_ptr().add(i),
                ar.sub_mod(red.reduce_sum(lo, hi), us),
            );
        }
    }
}

/// u[i] = round(Σ_j y_j[i] · inv[j]), see [`scalar::overshoot`](super::scalar::overshoot): the
/// same f64 operations in the same order (no fused multiply-add), rounding half away from zero.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn overshoot(y: &[&[u64]], inv: &[f64], u: &mut [u64]) {
    let n = u.len();
    assert_eq!(y.len(), inv.len());
    check_lengths(n, &y.iter().map(|s| s.len()).collect::<Vec<_>>());
    let half = _mm512_set1_pd(0.5);
    let one = _mm512_set1_pd(1.0);
    for i in (0..n).step_by(LANES) {
        let mut acc = _mm512_setzero_pd();
        for (y, &inv) in y.iter().zip(inv) {
            // SAFETY: i + 8 ≤ n = every slice's length (checked above).
            let v = _mm512_cvtepu64_pd(unsafe { load(y.as_ptr().add(i)) });
            acc = _mm512_add_pd(acc, _mm512_mul_pd(v, _mm512_set1_pd(inv)));
        }
        // f64::round on acc ≥ 0: trunc(acc), plus one where the (exact) fraction is ≥ 1/2.
        let t = _mm512_roundscale_pd::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(acc);
        let up = _mm512_cmp_pd_mask::<_CMP_GE_OQ>(_mm512_sub_pd(acc, t), half);
        let r = _mm512_mask_add_pd(t, up, t, one);
        // SAFETY: i + 8 ≤ n (checked above).
        unsafe { store(u.as_mut_ptr().add(i), _mm512_cvttpd_epu64(r)) };
    }
}
