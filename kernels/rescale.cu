// Rescaling by the last prime q_l, the device side of `ring::rescale` (NTT form in and out):
//   1. r = INTT(x_l) (the NTT kernels, one row);
//   2. rescale_spread: row i = [(r + h mod q_l) mod q_i] − [h]_{q_i} mod q_i, h = ⌊q_l/2⌋
//      (the CPU's `add_const` then `reduce_sub_const`);
//   3. NTT of those rows;
//   4. poly_sub_mul_scalar (pointwise.cu): row i = (x_i − row i)·q_l^-1 mod q_i.
//
// Layout: `r` is one row of N = 2^log_n u64, `out` holds `limbs` rows; `mods[i]` and
// `half_mod[i]` = h mod q_i belong to output row i.
// Launch shape: 1-D, any gridDim.x / blockDim.x, grid-stride loop.

#include "modarith.cuh"

extern "C" __global__ void rescale_spread(u64* out, const u64* r, u64 q_last, u64 half,
                                          const RnsModulus* mods, const u64* half_mod,
                                          u32 limbs, u32 log_n) {
    const u64 n = 1ull << log_n;
    const u64 total = (u64)limbs << log_n;
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (u64)gridDim.x * blockDim.x) {
        const u32 l = (u32)(i >> log_n);
        const RnsModulus& m = mods[l];
        const u64 v = mod_add(r[i & (n - 1)], half, q_last);
        out[i] = mod_sub(barrett_reduce_64(v, m.value, m.barrett_hi), half_mod[l], m.value);
    }
}
