//! AVX-512 kernels for [`NttTable`](crate::ring::NttTable): same butterflies and twiddles as the
//! scalar Harvey transform, eight lanes at a time, so the fully reduced results are bit-identical.
//!
//! Two multiplication flavours share one loop structure:
//! - [`Ifma`] (q < 2^50, AVX-512 IFMA): Shoup multiplication with 52-bit constants
//!   `floor(w·2^52/q)` on `vpmadd52{lo,hi}uq`; every lazy value stays below 4q < 2^52.
//! - [`Wide`] (q < 2^62, AVX-512F/DQ): Shoup with 64-bit constants; the high half of the
//!   64×64 product is approximated from three 32×32 products and corrected by one conditional
//!   subtraction.
//!
//! Loop structure (both directions), for N = 2^n:
//! - the n − 6 stages with half-span t ≥ 64 run in passes of up to three stages
//!   (radix 2/4/8, twiddles broadcast), so the array is swept about (n − 6)/3 times;
//! - the six stages with t ≤ 32 run on 64-element blocks held in eight registers: t = 32, 16, 8
//!   pair whole registers; an 8×8 transpose turns t = 4, 2, 1 into whole-register pairs too,
//!   with per-lane twiddles stored in matching order (`lane_major_twiddles` in `ntt.rs`).
//!
//! The forward transform fuses the final reduction into its last block; the inverse fuses the
//! 1/N scaling into its last stage (x = (u+v)·N⁻¹, y = (u−v)·(w·N⁻¹)).

use core::arch::x86_64::*;

use super::lanes::{Arith, Ifma, Wide};
use crate::math::Modulus;

/// Which multiplier the kernels use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::ring) enum Flavor {
    Ifma,
    Wide,
}

/// Smallest transform the kernels handle: one 64-element block plus at least one pass stage.
const MIN_N: usize = 128;
/// Stages handled by the in-register block kernel.
const BLOCK_STAGES: u32 = 6;
/// Columns of 8 lanes processed together by the radix-2/4/8 passes: more independent butterflies
/// per step to cover the multiply latency.
const U2: usize = 4;
const U4: usize = 2;
const U8: usize = 2;

/// Twiddles in kernel order with Shoup constants for the chosen flavour.
#[derive(Clone, Debug)]
pub(in crate::ring) struct Avx512Ntt {
    flavor: Flavor,
    q: u64,
    fwd_w: Vec<u64>,
    fwd_ws: Vec<u64>,
    inv_w: Vec<u64>,
    inv_ws: Vec<u64>,
    /// N⁻¹ and its Shoup constant.
    n_inv: (u64, u64),
    /// ψ^-bitrev(1)·N⁻¹ (last inverse stage with the scaling folded in) and its Shoup constant.
    last_w: (u64, u64),
}

impl Flavor {
    /// Whether this CPU runs this flavour for modulus `q` and degree `n`.
    pub(in crate::ring) fn supported(self, q: u64, n: usize) -> bool {
        n >= MIN_N
            && n.is_power_of_two()
            && is_x86_feature_detected!("avx512f")
            && match self {
                Flavor::Ifma => q < 1 << 50 && is_x86_feature_detected!("avx512ifma"),
                Flavor::Wide => q < 1 << 62 && is_x86_feature_detected!("avx512dq"),
            }
    }
}

impl Avx512Ntt {
    /// Tables for `flavor`, or `None` if this CPU or (q, n) does not support it.
    pub(in crate::ring) fn new(
        modulus: &Modulus,
        psi_rev: &[u64],
        psi_inv_rev: &[u64],
        n_inv: u64,
        flavor: Flavor,
    ) -> Option<Self> {
        let q = modulus.value();
        if !flavor.supported(q, psi_rev.len()) {
            return None;
        }
        let shoup = |w: u64| match flavor {
            Flavor::Ifma => (((w as u128) << 52) / q as u128) as u64,
            Flavor::Wide => modulus.shoup(w),
        };
        let with_shoup = |tw: &[u64]| {
            let w = super::lane_major_twiddles(tw, 8);
            let ws = w.iter().map(|&x| shoup(x)).collect();
            (w, ws)
        };
        let (fwd_w, fwd_ws) = with_shoup(psi_rev);
        let (inv_w, inv_ws) = with_shoup(psi_inv_rev);
        let last = modulus.mul(psi_inv_rev[1], n_inv);
        Some(Self {
            flavor,
            q,
            fwd_w,
            fwd_ws,
            inv_w,
            inv_ws,
            n_inv: (n_inv, shoup(n_inv)),
            last_w: (last, shoup(last)),
        })
    }

    pub(in crate::ring) fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Forward transform, same contract as [`NttTable::forward`](crate::ring::NttTable::forward).
    pub(in crate::ring) fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.fwd_w.len());
        // SAFETY: `new` checked `flavor.supported`, i.e. the features each entry needs.
        unsafe {
            match self.flavor {
                Flavor::Ifma => forward_ifma(self, a),
                Flavor::Wide => forward_wide(self, a),
            }
        }
    }

    /// Inverse transform, same contract as [`NttTable::inverse`](crate::ring::NttTable::inverse).
    pub(in crate::ring) fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.inv_w.len());
        // SAFETY: as in `forward`.
        unsafe {
            match self.flavor {
                Flavor::Ifma => inverse_ifma(self, a),
                Flavor::Wide => inverse_wide(self, a),
            }
        }
    }
}

#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn forward_ifma(t: &Avx512Ntt, a: &mut [u64]) {
    // SAFETY: the caller checked AVX-512F and IFMA.
    forward_with(unsafe { Ifma::new(t.q) }, t, a)
}

#[target_feature(enable = "avx512f,avx512ifma")]
unsafe fn inverse_ifma(t: &Avx512Ntt, a: &mut [u64]) {
    // SAFETY: the caller checked AVX-512F and IFMA.
    inverse_with(unsafe { Ifma::new(t.q) }, t, a)
}

#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn forward_wide(t: &Avx512Ntt, a: &mut [u64]) {
    // SAFETY: the caller checked AVX-512F and DQ.
    forward_with(unsafe { Wide::new(t.q) }, t, a)
}

#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn inverse_wide(t: &Avx512Ntt, a: &mut [u64]) {
    // SAFETY: the caller checked AVX-512F and DQ.
    inverse_with(unsafe { Wide::new(t.q) }, t, a)
}

// ---------------------------------------------------------------------------------------------
// Butterflies.

/// The NTT butterflies on top of the shared lane arithmetic.
trait Butterfly: Arith {
    /// Cooley–Tukey butterfly, inputs and outputs in `[0, 4q)`: (z0 + w·z1, z0 − w·z1).
    #[inline(always)]
    fn fwd(self, z0: __m512i, z1: __m512i, w: __m512i, ws: __m512i) -> (__m512i, __m512i) {
        let z0 = self.reduce(z0, self.two_q());
        let t = self.mul_lazy(z1, w, ws);
        (self.add(z0, t), self.sub(self.add(z0, self.two_q()), t))
    }

    /// Gentleman–Sande butterfly, inputs and outputs in `[0, 2q)`: (u + v, w·(u − v)).
    #[inline(always)]
    fn inv(self, u: __m512i, v: __m512i, w: __m512i, ws: __m512i) -> (__m512i, __m512i) {
        let x = self.reduce(self.add(u, v), self.two_q());
        let d = self.sub(self.add(u, self.two_q()), v);
        (x, self.mul_lazy(d, w, ws))
    }

    /// The forward butterfly with fully reduced outputs in `[0, q)` (inputs in `[0, 4q)`).
    #[inline(always)]
    fn fwd_last(self, z0: __m512i, z1: __m512i, w: __m512i, ws: __m512i) -> (__m512i, __m512i) {
        let z0 = self.reduce(self.reduce(z0, self.two_q()), self.q());
        let t = self.reduce(self.mul_lazy(z1, w, ws), self.q());
        let x = self.reduce(self.add(z0, t), self.q());
        // z0 − t, plus q where that wrapped: min picks the non-wrapped candidate.
        let d = self.sub(z0, t);
        // SAFETY: AVX-512F, by `Arith`'s contract.
        let y = unsafe { _mm512_min_epu64(d, _mm512_add_epi64(d, self.q())) };
        (x, y)
    }
}

impl<A: Arith> Butterfly for A {}

// ---------------------------------------------------------------------------------------------
// Loop structure.

/// Stages per pass for the `stages` stages before the block kernel, as a fixed array and its
/// length.
fn pass_sizes(stages: u32) -> ([u32; 8], usize) {
    let (threes, rest): (u32, &[u32]) = match stages % 3 {
        0 => (stages / 3, &[]),
        1 if stages >= 4 => (stages / 3 - 1, &[2, 2]),
        1 => (0, &[1]),
        _ => (stages / 3, &[2]),
    };
    let mut sizes = [0; 8];
    let mut len = 0;
    for k in core::iter::repeat_n(3, threes as usize).chain(rest.iter().copied()) {
        sizes[len] = k;
        len += 1;
    }
    (sizes, len)
}

#[inline(always)]
fn forward_with<A: Butterfly>(ar: A, t: &Avx512Ntt, a: &mut [u64]) {
    let n = a.len();
    debug_assert!(n >= MIN_N && n.is_power_of_two());
    let (sizes, len) = pass_sizes(n.trailing_zeros() - BLOCK_STAGES);
    let mut s = 0;
    for &k in &sizes[..len] {
        match k {
            1 => fwd_pass::<A, 2, U2>(ar, t, a, s),
            2 => fwd_pass::<A, 4, U4>(ar, t, a, s),
            _ => fwd_pass::<A, 8, U8>(ar, t, a, s),
        }
        s += k;
    }
    fwd_blocks(ar, t, a);
}

#[inline(always)]
fn inverse_with<A: Butterfly>(ar: A, t: &Avx512Ntt, a: &mut [u64]) {
    let n = a.len();
    debug_assert!(n >= MIN_N && n.is_power_of_two());
    inv_blocks(ar, t, a);
    let (sizes, len) = pass_sizes(n.trailing_zeros() - BLOCK_STAGES);
    let mut half = 1usize << BLOCK_STAGES;
    for (i, &k) in sizes[..len].iter().rev().enumerate() {
        match (k, i + 1 == len) {
            (1, false) => inv_pass::<A, 2, U2, false>(ar, t, a, half),
            (1, true) => inv_pass::<A, 2, U2, true>(ar, t, a, half),
            (2, false) => inv_pass::<A, 4, U4, false>(ar, t, a, half),
            (2, true) => inv_pass::<A, 4, U4, true>(ar, t, a, half),
            (_, false) => inv_pass::<A, 8, U8, false>(ar, t, a, half),
            (_, true) => inv_pass::<A, 8, U8, true>(ar, t, a, half),
        }
        half <<= k;
    }
}

/// The butterflies of U radix-R forward units side by side (R rows, log2(R) stages; each
/// butterfly is applied to all U columns before the next, for independent work); twiddles in
/// heap order (stage d, sub-block b at slot 2^d + b). Written out per radix so that it is always
/// fully unrolled into registers.
#[inline(always)]
fn fwd_unit<A: Butterfly, const R: usize, const U: usize>(
    ar: A,
    x: &mut [[__m512i; R]; U],
    w: &[__m512i; R],
    ws: &[__m512i; R],
) {
    // Butterfly on rows (r, p) with twiddle slot s (a macro, not a closure: closures are not
    // reliably inlined into the target-feature caller).
    macro_rules! bf {
        ($r:expr, $p:expr, $s:expr) => {
            for x in x.iter_mut() {
                (x[$r], x[$p]) = ar.fwd(x[$r], x[$p], w[$s], ws[$s]);
            }
        };
    }
    match R {
        2 => bf!(0, 1, 1),
        4 => {
            bf!(0, 2, 1);
            bf!(1, 3, 1);
            bf!(0, 1, 2);
            bf!(2, 3, 3);
        }
        8 => {
            bf!(0, 4, 1);
            bf!(1, 5, 1);
            bf!(2, 6, 1);
            bf!(3, 7, 1);
            bf!(0, 2, 2);
            bf!(1, 3, 2);
            bf!(4, 6, 3);
            bf!(5, 7, 3);
            bf!(0, 1, 4);
            bf!(2, 3, 5);
            bf!(4, 5, 6);
            bf!(6, 7, 7);
        }
        _ => unreachable!("radix {R}"),
    }
}

/// The butterflies of U radix-R inverse units side by side, except the last stage when
/// `SKIP_LAST` (the caller fuses it with the 1/N scaling); stage d, sub-block b at slot
/// R/2^(d+1) + b.
#[inline(always)]
fn inv_unit<A: Butterfly, const R: usize, const U: usize, const SKIP_LAST: bool>(
    ar: A,
    x: &mut [[__m512i; R]; U],
    w: &[__m512i; R],
    ws: &[__m512i; R],
) {
    // Butterfly on rows (r, p) with twiddle slot s (a macro, not a closure: closures are not
    // reliably inlined into the target-feature caller).
    macro_rules! bf {
        ($r:expr, $p:expr, $s:expr) => {
            for x in x.iter_mut() {
                (x[$r], x[$p]) = ar.inv(x[$r], x[$p], w[$s], ws[$s]);
            }
        };
    }
    match R {
        2 => {
            if !SKIP_LAST {
                bf!(0, 1, 1);
            }
        }
        4 => {
            bf!(0, 1, 2);
            bf!(2, 3, 3);
            if !SKIP_LAST {
                bf!(0, 2, 1);
                bf!(1, 3, 1);
            }
        }
        8 => {
            bf!(0, 1, 4);
            bf!(2, 3, 5);
            bf!(4, 5, 6);
            bf!(6, 7, 7);
            bf!(0, 2, 2);
            bf!(1, 3, 2);
            bf!(4, 6, 3);
            bf!(5, 7, 3);
            if !SKIP_LAST {
                bf!(0, 4, 1);
                bf!(1, 5, 1);
                bf!(2, 6, 1);
                bf!(3, 7, 1);
            }
        }
        _ => unreachable!("radix {R}"),
    }
}

/// Forward stages s … s + log2(R) − 1 in one sweep: rows at stride t/R·2 form a radix-R unit.
#[inline(always)]
fn fwd_pass<A: Butterfly, const R: usize, const U: usize>(
    ar: A,
    t: &Avx512Ntt,
    a: &mut [u64],
    s: u32,
) {
    let k = R.trailing_zeros();
    let n = a.len();
    let m = 1usize << s;
    let span = n >> s; // block length 2t of the first stage
    let stride = span / R; // half-span of the last stage, ≥ 64
    let zero = ar.splat(0);
    let ptr = a.as_mut_ptr();
    for i in 0..m {
        // Heap order: stage d, sub-block b → slot 2^d + b.
        let mut w = [zero; R];
        let mut ws = [zero; R];
        for d in 0..k {
            for b in 0..1usize << d {
                let idx = ((m + i) << d) + b;
                w[(1 << d) + b] = ar.splat(t.fwd_w[idx]);
                ws[(1 << d) + b] = ar.splat(t.fwd_ws[idx]);
            }
        }
        for j in (0..stride).step_by(8 * U) {
            // SAFETY: i·span + j + r·stride + 8U ≤ (i + 1)·span ≤ n for r < R, j + 8U ≤ stride
            // (stride ≥ 64 is a multiple of 8U).
            unsafe {
                let p = ptr.add(i * span + j);
                let mut x = [[zero; R]; U];
                for (u, x) in x.iter_mut().enumerate() {
                    for (r, x) in x.iter_mut().enumerate() {
                        *x = ar.load(p.add(r * stride + 8 * u));
                    }
                }
                fwd_unit(ar, &mut x, &w, &ws);
                for (u, x) in x.iter().enumerate() {
                    for (r, &x) in x.iter().enumerate() {
                        ar.store(p.add(r * stride + 8 * u), x);
                    }
                }
            }
        }
    }
}

/// Inverse stages with half-spans `half` … `half`·R/2 in one sweep; `LAST` folds in 1/N and
/// fully reduces (then `half`·R = N).
#[inline(always)]
fn inv_pass<A: Butterfly, const R: usize, const U: usize, const LAST: bool>(
    ar: A,
    t: &Avx512Ntt,
    a: &mut [u64],
    half: usize,
) {
    let k = R.trailing_zeros();
    let n = a.len();
    let span = half * R;
    let zero = ar.splat(0);
    let ptr = a.as_mut_ptr();
    let (n_inv, n_inv_s) = (ar.splat(t.n_inv.0), ar.splat(t.n_inv.1));
    let (last_w, last_s) = (ar.splat(t.last_w.0), ar.splat(t.last_w.1));
    for blk in 0..n / span {
        // Stage d has R/2^(d+1) sub-blocks per unit; slot R/2^(d+1) + b.
        let mut w = [zero; R];
        let mut ws = [zero; R];
        for d in 0..k {
            let cnt = R >> (d + 1);
            let m_d = (n / (2 * half)) >> d;
            for b in 0..cnt {
                let idx = m_d + blk * cnt + b;
                w[cnt + b] = ar.splat(t.inv_w[idx]);
                ws[cnt + b] = ar.splat(t.inv_ws[idx]);
            }
        }
        for j in (0..half).step_by(8 * U) {
            // SAFETY: blk·span + j + r·half + 8U ≤ (blk + 1)·span ≤ n for r < R, j + 8U ≤ half
            // (half ≥ 64 is a multiple of 8U).
            unsafe {
                let p = ptr.add(blk * span + j);
                let mut x = [[zero; R]; U];
                for (u, x) in x.iter_mut().enumerate() {
                    for (r, x) in x.iter_mut().enumerate() {
                        *x = ar.load(p.add(r * half + 8 * u));
                    }
                }
                inv_unit::<A, R, U, LAST>(ar, &mut x, &w, &ws);
                if LAST {
                    // Last stage (m = 1) with N⁻¹ folded in, then full reduction.
                    let h = R / 2;
                    for r in 0..h {
                        for x in x.iter_mut() {
                            let (u, v) = (x[r], x[r + h]);
                            let s = ar.add(u, v);
                            let d = ar.sub(ar.add(u, ar.two_q()), v);
                            x[r] = ar.reduce(ar.mul_lazy(s, n_inv, n_inv_s), ar.q());
                            x[r + h] = ar.reduce(ar.mul_lazy(d, last_w, last_s), ar.q());
                        }
                    }
                }
                for (u, x) in x.iter().enumerate() {
                    for (r, &x) in x.iter().enumerate() {
                        ar.store(p.add(r * half + 8 * u), x);
                    }
                }
            }
        }
    }
}

/// 8×8 transpose of u64 lanes: out[l] lane k = x[k] lane l.
#[inline(always)]
fn transpose<A: Butterfly>(_ar: A, x: [__m512i; 8]) -> [__m512i; 8] {
    // SAFETY: AVX-512F, implied by the existence of `_ar` (see `Arith`).
    unsafe {
        // Pairs of rows interleaved: t[2i] = (x[2i]_0, x[2i+1]_0, x[2i]_2, x[2i+1]_2, …).
        let t0 = _mm512_unpacklo_epi64(x[0], x[1]);
        let t1 = _mm512_unpackhi_epi64(x[0], x[1]);
        let t2 = _mm512_unpacklo_epi64(x[2], x[3]);
        let t3 = _mm512_unpackhi_epi64(x[2], x[3]);
        let t4 = _mm512_unpacklo_epi64(x[4], x[5]);
        let t5 = _mm512_unpackhi_epi64(x[4], x[5]);
        let t6 = _mm512_unpacklo_epi64(x[6], x[7]);
        let t7 = _mm512_unpackhi_epi64(x[6], x[7]);
        // 128-bit lanes (0, 2 | 0, 2) and (1, 3 | 1, 3) of each pair of pairs.
        const EVEN: i32 = 0b10_00_10_00;
        const ODD: i32 = 0b11_01_11_01;
        let u0 = _mm512_shuffle_i64x2::<EVEN>(t0, t2);
        let u1 = _mm512_shuffle_i64x2::<EVEN>(t1, t3);
        let u2 = _mm512_shuffle_i64x2::<ODD>(t0, t2);
        let u3 = _mm512_shuffle_i64x2::<ODD>(t1, t3);
        let u4 = _mm512_shuffle_i64x2::<EVEN>(t4, t6);
        let u5 = _mm512_shuffle_i64x2::<EVEN>(t5, t7);
        let u6 = _mm512_shuffle_i64x2::<ODD>(t4, t6);
        let u7 = _mm512_shuffle_i64x2::<ODD>(t5, t7);
        [
            _mm512_shuffle_i64x2::<EVEN>(u0, u4),
            _mm512_shuffle_i64x2::<EVEN>(u1, u5),
            _mm512_shuffle_i64x2::<EVEN>(u2, u6),
            _mm512_shuffle_i64x2::<EVEN>(u3, u7),
            _mm512_shuffle_i64x2::<ODD>(u0, u4),
            _mm512_shuffle_i64x2::<ODD>(u1, u5),
            _mm512_shuffle_i64x2::<ODD>(u2, u6),
            _mm512_shuffle_i64x2::<ODD>(u3, u7),
        ]
    }
}

/// Blocks processed together by the block kernels: independent work to hide the latency of
/// the six dependent stages and two transposes in each block.
const BLOCKS: usize = 2;

/// One twiddle pair (value, Shoup constant) per sub-block slot of a block stage.
type StageTwiddles<const B: usize> = [[(__m512i, __m512i); 4]; B];

/// Twiddles of a block stage with register distance `h` (4, 2, 1): `4/h` slots per block.
/// Natural layout (t = 8h): broadcast from `((n/64 + g)·4/h + slot)`; transposed layout
/// (t = h): vectors at `((n/8 + 8g)·4/h + 8·slot)`, see `lane_major_twiddles`.
///
/// # Safety
/// `w`, `ws` must be valid for the table length n, and g < n/64.
#[inline(always)]
unsafe fn stage_twiddles<A: Butterfly, const B: usize>(
    ar: A,
    (w, ws): (*const u64, *const u64),
    n: usize,
    g0: usize,
    h: usize,
    transposed: bool,
) -> StageTwiddles<B> {
    let zero = ar.splat(0);
    let mut tw = [[(zero, zero); 4]; B];
    for (b, tw) in tw.iter_mut().enumerate() {
        let g = g0 + b;
        for (slot, tw) in tw.iter_mut().enumerate().take(4 / h) {
            // SAFETY: indices below n by the caller's guarantee (see the formulas above).
            *tw = unsafe {
                if transposed {
                    let i = (n / 8 + 8 * g) * (4 / h) + 8 * slot;
                    (ar.load(w.add(i)), ar.load(ws.add(i)))
                } else {
                    let i = (n / 64 + g) * (4 / h) + slot;
                    (ar.splat(*w.add(i)), ar.splat(*ws.add(i)))
                }
            };
        }
    }
    tw
}

/// Which butterfly a block stage applies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bfly {
    Fwd,
    /// Forward with fully reduced outputs.
    FwdLast,
    Inv,
}

/// Butterflies between registers r and r + H (r & H = 0) of every block, twiddle slot r/(2H).
#[inline(always)]
fn block_stage<A: Butterfly, const B: usize, const H: usize>(
    ar: A,
    x: &mut [[__m512i; 8]; B],
    tw: &StageTwiddles<B>,
    bfly: Bfly,
) {
    // The four pairs of the stage, each applied to every block before the next.
    for i in 0..4 {
        let (r, slot) = ((i / H) * 2 * H + i % H, i / H);
        for (x, tw) in x.iter_mut().zip(tw) {
            let (w, ws) = tw[slot];
            let (u, v) = (x[r], x[r + H]);
            (x[r], x[r + H]) = match bfly {
                Bfly::Fwd => ar.fwd(u, v, w, ws),
                Bfly::FwdLast => ar.fwd_last(u, v, w, ws),
                Bfly::Inv => ar.inv(u, v, w, ws),
            };
        }
    }
}

/// The last six forward stages (t = 32 … 1) on 64-element blocks, then the final reduction.
#[inline(always)]
fn fwd_blocks<A: Butterfly>(ar: A, t: &Avx512Ntt, a: &mut [u64]) {
    let n = a.len();
    let tw = (t.fwd_w.as_ptr(), t.fwd_ws.as_ptr());
    let ptr = a.as_mut_ptr();
    for g in (0..n / 64).step_by(BLOCKS) {
        // SAFETY: blocks g … g + BLOCKS − 1 are a[64g .. 64(g + BLOCKS)] ⊂ a (n/64 is a
        // multiple of BLOCKS); the twiddle indices are < n for g < n/64 (`stage_twiddles`).
        unsafe {
            let p = ptr.add(64 * g);
            let mut x = [[ar.splat(0); 8]; BLOCKS];
            for (b, x) in x.iter_mut().enumerate() {
                for (k, x) in x.iter_mut().enumerate() {
                    *x = ar.load(p.add(64 * b + 8 * k));
                }
            }
            // t = 32, 16, 8: whole registers, broadcast twiddles.
            block_stage::<A, BLOCKS, 4>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 4, false),
                Bfly::Fwd,
            );
            block_stage::<A, BLOCKS, 2>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 2, false),
                Bfly::Fwd,
            );
            block_stage::<A, BLOCKS, 1>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 1, false),
                Bfly::Fwd,
            );
            // t = 4, 2, 1 after transposing: register l holds element 8k + l in lane k.
            for x in x.iter_mut() {
                *x = transpose(ar, *x);
            }
            block_stage::<A, BLOCKS, 4>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 4, true),
                Bfly::Fwd,
            );
            block_stage::<A, BLOCKS, 2>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 2, true),
                Bfly::Fwd,
            );
            block_stage::<A, BLOCKS, 1>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 1, true),
                Bfly::FwdLast,
            );
            for (b, x) in x.iter().enumerate() {
                for (k, &x) in transpose(ar, *x).iter().enumerate() {
                    ar.store(p.add(64 * b + 8 * k), x);
                }
            }
        }
    }
}

/// The first six inverse stages (t = 1 … 32) on 64-element blocks; outputs in `[0, 2q)`.
#[inline(always)]
fn inv_blocks<A: Butterfly>(ar: A, t: &Avx512Ntt, a: &mut [u64]) {
    let n = a.len();
    let tw = (t.inv_w.as_ptr(), t.inv_ws.as_ptr());
    let ptr = a.as_mut_ptr();
    for g in (0..n / 64).step_by(BLOCKS) {
        // SAFETY: as in `fwd_blocks` (same index sets).
        unsafe {
            let p = ptr.add(64 * g);
            let mut x = [[ar.splat(0); 8]; BLOCKS];
            for (b, x) in x.iter_mut().enumerate() {
                for (k, x) in x.iter_mut().enumerate() {
                    *x = ar.load(p.add(64 * b + 8 * k));
                }
                *x = transpose(ar, *x);
            }
            block_stage::<A, BLOCKS, 1>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 1, true),
                Bfly::Inv,
            );
            block_stage::<A, BLOCKS, 2>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 2, true),
                Bfly::Inv,
            );
            block_stage::<A, BLOCKS, 4>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 4, true),
                Bfly::Inv,
            );
            for x in x.iter_mut() {
                *x = transpose(ar, *x);
            }
            block_stage::<A, BLOCKS, 1>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 1, false),
                Bfly::Inv,
            );
            block_stage::<A, BLOCKS, 2>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 2, false),
                Bfly::Inv,
            );
            block_stage::<A, BLOCKS, 4>(
                ar,
                &mut x,
                &stage_twiddles(ar, tw, n, g, 4, false),
                Bfly::Inv,
            );
            for (b, x) in x.iter().enumerate() {
                for (k, &x) in x.iter().enumerate() {
                    ar.store(p.add(64 * b + 8 * k), x);
                }
            }
        }
    }
}
