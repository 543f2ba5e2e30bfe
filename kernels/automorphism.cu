// Galois automorphisms X → X^g (g odd, g < 2N) of Z_q[X]/(X^N + 1), the device side of
// src/ring/automorphism.rs.
//
// Layout: `rows` rows of N = 2^log_n u64 (log_n ≥ 1), limb-major `[poly][limb][coeff]`,
// `total` = rows · N. Out of place: `out` and `in` must not overlap.
//
// Launch shape (`automorphism_ntt`, `automorphism_coeff`): 1-D, any gridDim.x / blockDim.x
// (e.g. 256 threads, a few blocks per SM); each thread walks the elements with a grid-sized
// stride. `automorphism_ntt_batch` adds gridDim.y, one per Galois element.

#include "modarith.cuh"

// bitrev of the low log_n bits of x (`ring::bit_reverse`), log_n in [1, 32].
__device__ __forceinline__ u32 bit_reverse(u32 x, u32 log_n) {
    return __brev(x) >> (32 - log_n);
}

#define GRID_STRIDE(i, total)                                                         \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (total);            \
         i += (u64)gridDim.x * blockDim.x)

// NTT domain: a permutation of the evaluation points, no signs. Slot i holds a(ψ^e) with
// e = 2·bitrev(i) + 1 and σ_g(a)(ψ^e) = a(ψ^(e·g)), so out[i] = in[bitrev((e·g mod 2N - 1)/2)]
// — `automorphism_ntt_permutation`, computed on the fly instead of read from a table (a
// table per Galois element would cost N·4 bytes of reads per limb; the index math is free
// next to the gather). 2N divides 2^32, so e·g may wrap in 32 bits before the mask.
__device__ __forceinline__ u64 ntt_source(u64 i, u32 galois, u32 log_n) {
    const u32 mask = (2u << log_n) - 1;
    const u32 slot = (u32)i & ((1u << log_n) - 1);
    const u32 e = 2 * bit_reverse(slot, log_n) + 1;
    const u32 eg = (e * galois) & mask;
    return i - slot + bit_reverse((eg - 1) >> 1, log_n);
}

extern "C" __global__ void automorphism_ntt(u64* out, const u64* in, u32 galois, u32 log_n,
                                            u64 total) {
    GRID_STRIDE(i, total) {
        out[i] = in[ntt_source(i, galois, log_n)];
    }
}

// `automorphism_ntt` of one input by several Galois elements in one launch (hoisted
// rotations rotate c0 by every step): blockIdx.y picks the element and its output, passed by
// value in `AutomorphismBatch`; blockIdx.x / gridDim.x stride over the elements as above.
#define AUTOMORPHISM_BATCH 32

struct AutomorphismBatch {
    u64* out[AUTOMORPHISM_BATCH];
    u32 galois[AUTOMORPHISM_BATCH];
};

extern "C" __global__ void automorphism_ntt_batch(AutomorphismBatch ops, const u64* in,
                                                  u32 log_n, u64 total) {
    const u32 galois = ops.galois[blockIdx.y];
    u64* const out = ops.out[blockIdx.y];
    GRID_STRIDE(i, total) {
        out[i] = in[ntt_source(i, galois, log_n)];
    }
}

// Coefficient domain (`automorphism_coeff`): coefficient j moves to j·g mod 2N, negated
// mod q when it lands past N (X^N = -1). A scatter: each thread reads one coefficient, so
// reads are coalesced and the writes, a permutation, never collide.
extern "C" __global__ void automorphism_coeff(u64* out, const u64* in, u32 galois,
                                              const RnsModulus* mods, u32 limbs, u32 log_n,
                                              u64 total) {
    const u32 n = 1u << log_n;
    const u32 mask = (2u << log_n) - 1;
    GRID_STRIDE(i, total) {
        const u32 j = (u32)i & (n - 1);
        const u64 row = i - j;
        const u32 dst = (j * galois) & mask;
        const u64 x = in[i];
        if (dst < n) {
            out[row + dst] = x;
        } else {
            const u64 q = mods[(u32)(i >> log_n) % limbs].value;
            out[row + dst - n] = mod_neg(x, q);
        }
    }
}
