// Fast base conversion between RNS bases (Halevi–Polyakov–Shoup), the device side of
// `BaseConverter::convert` in src/ring/basis_extension.rs and of its scalar kernels
// (`mul_const_to`, `overshoot`, `hat_sum`, `center_reduce` in src/ring/kernels/scalar.rs):
// same formulas in the same order, so the same bits. ModUp (one digit of Q_l → the other
// limbs of Q_l ∪ P) and ModDown (P → Q_l) are both this conversion on coefficient-form rows.
//
// Two steps for k > 1 source primes, so no thread keeps a per-source array:
//   base_convert_scale: y_i = [x_i·(S/s_i)^-1]_{s_i} (k rows) and u = round(Σ y_i/s_i) (1 row);
//   base_convert_sum:   target row j = Σ_i y_i·(S/s_i) − u·S mod t_j.
// One source prime: base_convert_center (the centered residue reduced mod each target).
//
// Layout: rows of N = 2^log_n u64. Sources are `sources` contiguous rows of `in`; target j is
// written to row out_rows[j] of `out` (the targets of a ModUp skip the digit's own limbs).
// Launch shape (all three): 1-D, any gridDim.x / blockDim.x, grid-stride loops.

#include "modarith.cuh"

#define GRID_STRIDE(i, total)                                                         \
    for (u64 i = (u64)blockIdx.x * blockDim.x + threadIdx.x; i < (total);            \
         i += (u64)gridDim.x * blockDim.x)

// y[i][c] = in[i][c]·inv_hat_i mod s_i (Shoup, as `mul_const_to`) and u[c] = round(Σ_i
// y_i[c]·inv_from_i), summed in order i = 0, 1, … in f64 (as `overshoot`). The explicit
// _rn operations keep the compiler from fusing the product into the sum (an FMA rounds
// once, the CPU twice), which could change u near a rounding boundary.
extern "C" __global__ void base_convert_scale(u64* y, u64* u, const u64* in,
                                              const RnsModulus* from, const u64* inv_hat,
                                              const u64* inv_hat_shoup,
                                              const double* inv_from, u32 sources,
                                              u32 log_n) {
    const u64 n = 1ull << log_n;
    GRID_STRIDE(c, n) {
        double acc = 0.0;
        for (u32 i = 0; i < sources; ++i) {
            const u64 v = mul_shoup(in[i * n + c], inv_hat[i], inv_hat_shoup[i], from[i].value);
            y[i * n + c] = v;
            acc = __dadd_rn(acc, __dmul_rn((double)v, inv_from[i]));
        }
        // Rust's f64::round (half away from zero) and `as u64`; acc ≥ 0 and small.
        u[c] = (u64)round(acc);
    }
}

// Target row j: −u·S + Σ_i y_i·(S/s_i) mod t_j, starting from −u·S and adding the sources
// in order (`hat_sum`). hat/hat_shoup are row-major by target: [j·sources + i].
extern "C" __global__ void base_convert_sum(u64* out, const u32* out_rows, const u64* y,
                                            const u64* u, const RnsModulus* to,
                                            const u64* hat, const u64* hat_shoup,
                                            const u64* prod, const u64* prod_shoup,
                                            u32 sources, u32 targets, u32 log_n) {
    const u64 n = 1ull << log_n;
    GRID_STRIDE(i, (u64)targets << log_n) {
        const u32 j = (u32)(i >> log_n);
        const u64 c = i & (n - 1);
        const u64 t = to[j].value;
        u64 o = mod_neg(mul_shoup(u[c], prod[j], prod_shoup[j], t), t);
        const u64* h = hat + (u64)j * sources;
        const u64* hs = hat_shoup + (u64)j * sources;
        for (u32 k = 0; k < sources; ++k) {
            o = mod_add(o, mul_shoup(y[k * n + c], h[k], hs[k], t), t);
        }
        out[(u64)out_rows[j] * n + c] = o;
    }
}

// One source prime s: the centered representative of x ∈ [0, s) reduced mod each target
// (`center_reduce`).
extern "C" __global__ void base_convert_center(u64* out, const u32* out_rows, const u64* in,
                                               u64 s, const RnsModulus* to, u32 targets,
                                               u32 log_n) {
    const u64 n = 1ull << log_n;
    const u64 half = s / 2;
    GRID_STRIDE(i, (u64)targets << log_n) {
        const u32 j = (u32)(i >> log_n);
        const u64 c = i & (n - 1);
        const RnsModulus& t = to[j];
        const u64 x = in[c];
        out[(u64)out_rows[j] * n + c] =
            x > half ? mod_neg(barrett_reduce_64(s - x, t.value, t.barrett_hi), t.value)
                     : barrett_reduce_64(x, t.value, t.barrett_hi);
    }
}
