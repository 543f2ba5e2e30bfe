// Pointwise arithmetic on RNS polynomials, the device side of src/ring/arith.rs (whose
// scalar kernels are in src/ring/kernels/scalar.rs): same formulas, same results.
//
// Layout: `rows` rows of N = 2^log_n u64, row r is limb (r mod limbs) of polynomial
// (r / limbs), i.e. limb-major `[poly][limb][coeff]`; `total` = rows · N. `mods[l]` is limb
// l's prime (already selected for the operands' basis). Inputs are canonical ([0, q)) and so
// are the outputs. Operations are in place on the first argument, like the `Backend` trait.
//
// Launch shape (all kernels here): 1-D, any gridDim.x / blockDim.x; each thread walks the
// elements with a grid-sized stride, so e.g. blockDim.x = 256 and gridDim.x = a few blocks
// per SM cover any size. Memory-bound: one element per thread per step keeps loads coalesced.

#include "modarith.cuh"

// Limb of flat element `i`: its row modulo the limb count. Rows fit in 32 bits, and a
// 32-bit remainder is far cheaper than a 64-bit one on the GPU.
__device__ __forceinline__ u32 limb_of(u64 i, u32 log_n, u32 limbs) {
    return (u32)(i >> log_n) % limbs;
}

#define GRID_STRIDE(i, total)                                                         \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (total);            \
         i += (u64)gridDim.x * blockDim.x)

// a += b
extern "C" __global__ void poly_add(u64* a, const u64* b, const RnsModulus* mods, u32 limbs,
                                    u32 log_n, u64 total) {
    GRID_STRIDE(i, total) {
        a[i] = mod_add(a[i], b[i], mods[limb_of(i, log_n, limbs)].value);
    }
}

// a -= b
extern "C" __global__ void poly_sub(u64* a, const u64* b, const RnsModulus* mods, u32 limbs,
                                    u32 log_n, u64 total) {
    GRID_STRIDE(i, total) {
        a[i] = mod_sub(a[i], b[i], mods[limb_of(i, log_n, limbs)].value);
    }
}

// a = -a
extern "C" __global__ void poly_neg(u64* a, const RnsModulus* mods, u32 limbs, u32 log_n,
                                    u64 total) {
    GRID_STRIDE(i, total) {
        a[i] = mod_neg(a[i], mods[limb_of(i, log_n, limbs)].value);
    }
}

// a *= b (a ring product in the NTT domain), Barrett as `Modulus::mul`.
extern "C" __global__ void poly_mul(u64* a, const u64* b, const RnsModulus* mods, u32 limbs,
                                    u32 log_n, u64 total) {
    GRID_STRIDE(i, total) {
        a[i] = mod_mul(a[i], b[i], mods[limb_of(i, log_n, limbs)]);
    }
}

// acc += a · b, as `Modulus::mul_add(a, b, acc)`: one reduction of the 128-bit a·b + acc.
extern "C" __global__ void poly_mul_add(u64* acc, const u64* a, const u64* b,
                                        const RnsModulus* mods, u32 limbs, u32 log_n,
                                        u64 total) {
    GRID_STRIDE(i, total) {
        acc[i] = mod_mul_add(a[i], b[i], acc[i], mods[limb_of(i, log_n, limbs)]);
    }
}

// Per-limb constants passed by value (kernel parameters), so that a multiplication by a
// host-side constant needs no upload: at most POLY_MAX_SCALAR_LIMBS limbs.
#define POLY_MAX_SCALAR_LIMBS 64

struct LimbScalars {
    u64 value[POLY_MAX_SCALAR_LIMBS];
    u64 shoup[POLY_MAX_SCALAR_LIMBS];
};

// a *= w_l on limb l, a constant per limb with its Shoup constant (`Modulus::shoup(w_l)`,
// computed on the host), as the CPU's `mul_const`.
extern "C" __global__ void poly_mul_scalar(u64* a, LimbScalars w, const RnsModulus* mods,
                                           u32 limbs, u32 log_n, u64 total) {
    GRID_STRIDE(i, total) {
        const u32 l = limb_of(i, log_n, limbs);
        a[i] = mul_shoup(a[i], w.value[l], w.shoup[l], mods[l].value);
    }
}

// out = (x − out)·w_l on limb l, as the CPU's `sub_mul_const`: the last step of rescale
// (w = q_l^-1) and ModDown (w = P^-1). `w`, `w_shoup` are per-limb tables in device memory.
extern "C" __global__ void poly_sub_mul_scalar(u64* out, const u64* x, const u64* w,
                                               const u64* w_shoup, const RnsModulus* mods,
                                               u32 limbs, u32 log_n, u64 total) {
    GRID_STRIDE(i, total) {
        const u32 l = limb_of(i, log_n, limbs);
        const u64 q = mods[l].value;
        out[i] = mul_shoup(mod_sub(x[i], out[i], q), w[l], w_shoup[l], q);
    }
}
