// Arithmetic modulo a word-sized prime q < 2^62, on the device.
//
// Every function is a line-by-line transcription of src/math/modulus.rs (`Modulus`), so a
// kernel built from these returns the same bits as the CPU backend, lazy intermediates
// included. Keep the two in step: a change there is a change here.
//
// No #include: NVRTC compiles this without the system headers.
#pragma once

typedef unsigned long long u64;
typedef unsigned int u32;

// One RNS prime with its Barrett constant floor(2^128 / q) as (hi, lo) 64-bit words, as
// `Modulus` stores them. The host fills an array of these in the same field order.
struct RnsModulus {
    u64 value;
    u64 barrett_hi;
    u64 barrett_lo;
};

// (a + b) mod q for a, b < q: q < 2^62, so the sum cannot wrap.
__device__ __forceinline__ u64 mod_add(u64 a, u64 b, u64 q) {
    u64 s = a + b;
    return s >= q ? s - q : s;
}

// (a - b) mod q for a, b < q.
__device__ __forceinline__ u64 mod_sub(u64 a, u64 b, u64 q) {
    return a >= b ? a - b : a + q - b;
}

// (-a) mod q for a < q; zero stays zero (q - 0 would not be reduced).
__device__ __forceinline__ u64 mod_neg(u64 a, u64 q) {
    return a == 0 ? 0 : q - a;
}

// a mod q for any 64-bit a: one Barrett step with floor(2^128/q)'s high word is enough
// because q < 2^62 (`Modulus::reduce`).
__device__ __forceinline__ u64 barrett_reduce_64(u64 a, u64 q, u64 barrett_hi) {
    u64 quot = __umul64hi(a, barrett_hi);
    u64 r = a - quot * q;
    return r >= q ? r - q : r;
}

// (hi·2^64 + lo) mod q (`Modulus::reduce_u128`): the quotient estimate floor(a·r / 2^128)
// from the three partial products that reach the top word. The sum `mid` below is at most
// (2^64-1)^2 + 2·(2^64-1) < 2^128, so tracking its carries into the high word is exact.
__device__ __forceinline__ u64 barrett_reduce_128(u64 lo, u64 hi, u64 q, u64 barrett_hi,
                                                  u64 barrett_lo) {
    // mid = lo·r_hi + floor(lo·r_lo / 2^64) + low64(hi·r_lo), as (mid_hi, mid_lo).
    u64 mid_lo = lo * barrett_hi;
    u64 mid_hi = __umul64hi(lo, barrett_hi);
    u64 lo_lo_carry = __umul64hi(lo, barrett_lo);
    u64 hi_lo_lo = hi * barrett_lo;
    u64 hi_lo_hi = __umul64hi(hi, barrett_lo);
    mid_lo += lo_lo_carry;
    mid_hi += mid_lo < lo_lo_carry;
    mid_lo += hi_lo_lo;
    mid_hi += mid_lo < hi_lo_lo;
    // Only the low word of the quotient matters: r is computed mod 2^64 and lands in [0, 3q).
    u64 quot = hi * barrett_hi + hi_lo_hi + mid_hi;
    u64 r = lo - quot * q;
    // The estimate is at most 2 short.
    while (r >= q) {
        r -= q;
    }
    return r;
}

// a·b mod q for a, b < q (`Modulus::mul`).
__device__ __forceinline__ u64 mod_mul(u64 a, u64 b, const RnsModulus& m) {
    return barrett_reduce_128(a * b, __umul64hi(a, b), m.value, m.barrett_hi, m.barrett_lo);
}

// (a·b + c) mod q for a, b, c < q (`Modulus::mul_add`): the 128-bit sum cannot wrap.
__device__ __forceinline__ u64 mod_mul_add(u64 a, u64 b, u64 c, const RnsModulus& m) {
    u64 lo = a * b;
    u64 hi = __umul64hi(a, b);
    lo += c;
    hi += lo < c;
    return barrett_reduce_128(lo, hi, m.value, m.barrett_hi, m.barrett_lo);
}

// a·w mod q in [0, 2q) for any 64-bit a, given w < q and w_shoup = floor(w·2^64 / q)
// (`Modulus::mul_shoup_lazy`). Both products wrap mod 2^64 on purpose: their difference is
// the true remainder plus at most one q.
__device__ __forceinline__ u64 mul_shoup_lazy(u64 a, u64 w, u64 w_shoup, u64 q) {
    u64 quot = __umul64hi(a, w_shoup);
    return a * w - quot * q;
}

// a·w mod q in [0, q) (`Modulus::mul_shoup`).
__device__ __forceinline__ u64 mul_shoup(u64 a, u64 w, u64 w_shoup, u64 q) {
    u64 r = mul_shoup_lazy(a, w, w_shoup, q);
    return r >= q ? r - q : r;
}
