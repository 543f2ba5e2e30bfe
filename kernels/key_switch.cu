// The key-switching inner product with the Galois automorphism fused, the device side of
// `CpuBackend::key_switch_inner_product` (scalar reference: `inner_product` in
// src/ring/kernels/scalar.rs):
//   out_h[row][i] = Σ_j digit_j[row][src(i)] · key_h,j[key_row][i] mod q_row,  h = 0, 1,
// accumulated in 128 bits and reduced once (`Modulus::reduce_u128`), so it is bit-identical.
// src(i) is the NTT-domain permutation of X → X^galois (`automorphism_ntt_permutation`,
// computed on the fly as in automorphism.cu), or i when galois = 0.
//
// Layout: digits and outputs over Q_l ∪ P (`limbs` = q + p rows of N = 2^log_n); each key
// polynomial over Q_L ∪ P, so output row r reads key row r for r < q and key_q + (r − q) for
// the special primes. Pointers travel by value in `KeySwitchOperands` (no upload per call).
// The caller guarantees that `digits` products below q² fit in 128 bits (as on the CPU).
// Launch shape: 1-D, any gridDim.x / blockDim.x, grid-stride loop.
//
// `key_switch_inner_products` is the same sum for several steps (hoisted rotations: one
// decomposition, a key and a Galois element per step) in one launch: blockIdx.y is the step,
// blockIdx.x / gridDim.x stride over its limbs·N outputs as above. Its pointers, Galois
// elements and key bases travel by value too, in `KeySwitchBatch`.

#include "modarith.cuh"

#define KEY_SWITCH_MAX_DIGITS 32

struct KeySwitchOperands {
    const u64* digit[KEY_SWITCH_MAX_DIGITS];
    const u64* key0[KEY_SWITCH_MAX_DIGITS];
    const u64* key1[KEY_SWITCH_MAX_DIGITS];
};

// One launch of `key_switch_inner_products` covers at most this many steps and this many
// (step, digit) keys, so its operands stay near 3 KB of kernel parameters (under the 4 KB
// that every toolchain allows); the host splits larger batches.
#define KEY_SWITCH_BATCH_STEPS 32
#define KEY_SWITCH_BATCH_KEYS 128

struct KeySwitchBatch {
    const u64* digit[KEY_SWITCH_MAX_DIGITS];
    // Step s, digit j at s · digits + j.
    const u64* key0[KEY_SWITCH_BATCH_KEYS];
    const u64* key1[KEY_SWITCH_BATCH_KEYS];
    u64* out0[KEY_SWITCH_BATCH_STEPS];
    u64* out1[KEY_SWITCH_BATCH_STEPS];
    u32 galois[KEY_SWITCH_BATCH_STEPS];
    // Ciphertext limbs of each step's key basis (the special primes follow them).
    u32 key_q[KEY_SWITCH_BATCH_STEPS];
};

__device__ __forceinline__ u32 ks_bit_reverse(u32 x, u32 log_n) {
    return __brev(x) >> (32 - log_n);
}

// The input slot that X → X^galois brings to `slot` in the NTT domain (galois 0: `slot`).
__device__ __forceinline__ u32 ks_source_slot(u32 slot, u32 galois, u32 log_n) {
    if (galois == 0) {
        return slot;
    }
    const u32 mask = (2u << log_n) - 1;
    const u32 e = 2 * ks_bit_reverse(slot, log_n) + 1;
    return ks_bit_reverse((((e * galois) & mask) - 1) >> 1, log_n);
}

// (hi, lo) += a·b
__device__ __forceinline__ void mac128(u64& lo, u64& hi, u64 a, u64 b) {
    const u64 p_lo = a * b;
    lo += p_lo;
    hi += __umul64hi(a, b) + (lo < p_lo);
}

// Both halves of output element i (limb-major over `limbs` rows of N): the digits at the
// permuted slot times the keys at the same slot, reduced once. Shared by both entry points.
__device__ __forceinline__ void inner_product_at(u64 i, u64* out0, u64* out1,
                                                 const u64* const* digit,
                                                 const u64* const* key0,
                                                 const u64* const* key1, u32 digits,
                                                 const RnsModulus* mods, u32 q, u32 key_q,
                                                 u32 galois, u32 log_n) {
    const u32 n = 1u << log_n;
    const u32 slot = (u32)i & (n - 1);
    const u32 row = (u32)(i >> log_n);
    const u32 src = ks_source_slot(slot, galois, log_n);
    const u64 key_row = row < q ? row : key_q + (row - q);
    const u64 d_at = (u64)row * n + src;
    const u64 k_at = key_row * n + slot;
    u64 lo0 = 0, hi0 = 0, lo1 = 0, hi1 = 0;
    for (u32 j = 0; j < digits; ++j) {
        const u64 v = digit[j][d_at];
        mac128(lo0, hi0, v, key0[j][k_at]);
        mac128(lo1, hi1, v, key1[j][k_at]);
    }
    const RnsModulus& m = mods[row];
    out0[i] = barrett_reduce_128(lo0, hi0, m.value, m.barrett_hi, m.barrett_lo);
    out1[i] = barrett_reduce_128(lo1, hi1, m.value, m.barrett_hi, m.barrett_lo);
}

extern "C" __global__ void key_switch_inner_product(u64* out0, u64* out1,
                                                    KeySwitchOperands ops, u32 digits,
                                                    const RnsModulus* mods, u32 q, u32 limbs,
                                                    u32 key_q, u32 galois, u32 log_n) {
    const u64 total = (u64)limbs << log_n;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (u64)gridDim.x * blockDim.x) {
        inner_product_at(i, out0, out1, ops.digit, ops.key0, ops.key1, digits, mods, q, key_q,
                         galois, log_n);
    }
}

extern "C" __global__ void key_switch_inner_products(KeySwitchBatch ops, u32 digits,
                                                     const RnsModulus* mods, u32 q, u32 limbs,
                                                     u32 log_n) {
    const u32 step = blockIdx.y;
    const u64 total = (u64)limbs << log_n;
    // This step's keys: digit j at step · digits + j.
    const u64* const* key0 = ops.key0 + step * digits;
    const u64* const* key1 = ops.key1 + step * digits;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (u64)gridDim.x * blockDim.x) {
        inner_product_at(i, ops.out0[step], ops.out1[step], ops.digit, key0, key1, digits, mods,
                         q, ops.key_q[step], ops.galois[step], log_n);
    }
}
