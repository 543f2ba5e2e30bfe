// Batched negacyclic NTT over Z_q[X]/(X^N + 1), many limbs and polynomials per launch.
//
// The butterflies, twiddles and lazy ranges are those of `NttTable::forward_scalar` and
// `inverse_scalar` in src/ring/ntt.rs, so every intermediate value (and the output) is the
// CPU's, bit for bit. Forward output order: out[i] = a(ψ^(2·bitrev(i)+1)).
//
// Data: `rows` polynomials of N = 2^log_n u64 each, back to back; row r is limb
// (r mod limbs) of polynomial (r / limbs), i.e. limb-major `[poly][limb][coeff]`.
// Twiddles: per table t, N entries at t·N, exactly `NttTable::twiddles()`: ψ^bitrev(i)
// (forward) or ψ^-bitrev(i) (inverse), each with its Shoup constant. `table_of_limb[l]`
// picks limb l's table, so a basis (Q_l ∪ P, say) reuses the context's tables in place.
// Values: input and output in [0, q).
//
// Why two kernels: a butterfly stage at half-span t pairs elements t apart. The first
// log_outer stages (the largest spans) only mix elements whose index agrees mod
// C = N / 2^log_outer: "outer" loads 2^log_outer strided rows of a few adjacent columns into
// shared memory and runs those stages there. The remaining stages only mix elements
// within one contiguous chunk of C: "inner" loads a chunk into shared memory and runs them.
// Each element thus crosses global memory once per kernel.
//
// Choosing log_outer: 0 runs the whole transform in one "inner" launch (needs N·8 bytes of
// shared memory: N ≤ 4096 within the default 48 KiB); otherwise log_outer = log_n / 2
// (N = 2^16: 256 × 256) keeps both kernels' shared memory at or below 32 KiB up to N = 2^17.
// Forward: outer then inner. Inverse: inner then outer (the reverse stage order); the
// factor 1/N is applied by whichever runs last.
//
// Launch shapes (any blockDim.x, a power of two up to 1024; 128–256 is a good default):
//   inner: gridDim.x = rows · 2^log_outer (one block per chunk),
//          dynamic shared memory = (N >> log_outer) · 8 bytes.
//   outer: gridDim.x = rows · (C / cols), cols = min(16, C), C = N >> log_outer,
//          dynamic shared memory = 2^log_outer · cols · 8 bytes. Requires log_outer ≥ 1.

#include "modarith.cuh"

// Adjacent columns per "outer" block: 16 u64 = 128 bytes, one coalesced segment per row.
#define NTT_OUTER_COLS 16u

// Cooley–Tukey butterfly of the forward transform: x, y in [0, 4q) stay in [0, 4q).
__device__ __forceinline__ void ct_butterfly(u64& x, u64& y, u64 w, u64 w_shoup, u64 q) {
    const u64 two_q = 2 * q;
    u64 u = x;
    if (u >= two_q) {
        u -= two_q;
    }
    const u64 v = mul_shoup_lazy(y, w, w_shoup, q);
    x = u + v;
    y = u + two_q - v;
}

// Gentleman–Sande butterfly of the inverse transform: x, y in [0, 2q) stay in [0, 2q).
__device__ __forceinline__ void gs_butterfly(u64& x, u64& y, u64 w, u64 w_shoup, u64 q) {
    const u64 two_q = 2 * q;
    const u64 u = x;
    const u64 v = y;
    u64 s = u + v;
    if (s >= two_q) {
        s -= two_q;
    }
    x = s;
    y = mul_shoup_lazy(u + two_q - v, w, w_shoup, q);
}

// [0, 4q) → [0, q), the forward transform's last step.
__device__ __forceinline__ u64 reduce_4q(u64 v, u64 q) {
    if (v >= 2 * q) {
        v -= 2 * q;
    }
    return v >= q ? v - q : v;
}

// Stages whose half-span t is below the chunk length C = N >> log_outer, on one chunk.
// Stage m (m = N / 2t groups) gives chunk b's local group g the global group
// b · (m >> log_outer) + g, whose twiddle is tw[m + that].
template <bool Forward>
__device__ __forceinline__ void ntt_inner(u64* data, const u64* tw, const u64* tw_shoup,
                                          const RnsModulus* mods, const u32* table_of_limb,
                                          const u64* n_inv, const u64* n_inv_shoup, u32 limbs,
                                          u32 log_n, u32 log_outer) {
    extern __shared__ u64 s[];
    const u32 log_chunk = log_n - log_outer;
    const u32 chunk_len = 1u << log_chunk;
    const u32 half = chunk_len >> 1;
    const u64 row = blockIdx.x >> log_outer;
    const u32 b = blockIdx.x & ((1u << log_outer) - 1);
    const u32 table = table_of_limb[(u32)row % limbs];
    const u64 q = mods[table].value;
    const u64 n = 1ull << log_n;
    u64* x = data + row * n + ((u64)b << log_chunk);
    const u64* w = tw + (u64)table * n;
    const u64* ws = tw_shoup + (u64)table * n;

    for (u32 i = threadIdx.x; i < chunk_len; i += blockDim.x) {
        s[i] = x[i];
    }
    __syncthreads();
    // Forward: t = C/2 down to 1; inverse: t = 1 up to C/2.
    for (u32 k = 0; k < log_chunk; ++k) {
        const u32 log_t = Forward ? log_chunk - 1 - k : k;
        const u32 t = 1u << log_t;
        const u32 m = (u32)(n >> (log_t + 1));
        const u32 base = m + b * (m >> log_outer);
        for (u32 bf = threadIdx.x; bf < half; bf += blockDim.x) {
            const u32 g = bf >> log_t;
            const u32 xi = (g << (log_t + 1)) + (bf & (t - 1));
            const u64 tw_i = w[base + g];
            const u64 tws_i = ws[base + g];
            if (Forward) {
                ct_butterfly(s[xi], s[xi + t], tw_i, tws_i, q);
            } else {
                gs_butterfly(s[xi], s[xi + t], tw_i, tws_i, q);
            }
        }
        __syncthreads();
    }
    // The last kernel of a transform leaves canonical residues, as the CPU does.
    const bool last = Forward || log_outer == 0;
    for (u32 i = threadIdx.x; i < chunk_len; i += blockDim.x) {
        u64 v = s[i];
        if (last) {
            v = Forward ? reduce_4q(v, q) : mul_shoup(v, n_inv[table], n_inv_shoup[table], q);
        }
        x[i] = v;
    }
}

// The first log_outer stages (half-span t ≥ C), on `cols` adjacent columns of the
// 2^log_outer × C matrix view of one row: element r·C + c sits at s[r·cols + c - c0].
// In that view stage m is an NTT of length 2^log_outer over rows with local half-span
// 2^log_outer / 2m, and local group g is global group g: twiddle tw[m + g].
template <bool Forward>
__device__ __forceinline__ void ntt_outer(u64* data, const u64* tw, const u64* tw_shoup,
                                          const RnsModulus* mods, const u32* table_of_limb,
                                          const u64* n_inv, const u64* n_inv_shoup, u32 limbs,
                                          u32 log_n, u32 log_outer) {
    extern __shared__ u64 s[];
    const u32 log_chunk = log_n - log_outer;
    const u32 chunk_len = 1u << log_chunk;
    const u32 cols = chunk_len < NTT_OUTER_COLS ? chunk_len : NTT_OUTER_COLS;
    const u32 log_cols = __ffs(cols) - 1;
    const u32 blocks_per_row = chunk_len >> log_cols;
    const u64 row = blockIdx.x / blocks_per_row;
    const u32 c0 = (blockIdx.x % blocks_per_row) << log_cols;
    const u32 table = table_of_limb[(u32)row % limbs];
    const u64 q = mods[table].value;
    const u64 n = 1ull << log_n;
    u64* x = data + row * n + c0;
    const u64* w = tw + (u64)table * n;
    const u64* ws = tw_shoup + (u64)table * n;
    const u32 count = cols << log_outer;

    // Consecutive threads take consecutive columns: each row segment is one coalesced read.
    for (u32 i = threadIdx.x; i < count; i += blockDim.x) {
        s[i] = x[((u64)(i >> log_cols) << log_chunk) + (i & (cols - 1))];
    }
    __syncthreads();
    const u32 half = count >> 1;
    for (u32 k = 0; k < log_outer; ++k) {
        // Local half-span lt = 2^log_lt rows; forward runs the largest span first.
        const u32 log_lt = Forward ? log_outer - 1 - k : k;
        const u32 m = 1u << (log_outer - 1 - log_lt);
        for (u32 bf = threadIdx.x; bf < half; bf += blockDim.x) {
            const u32 c = bf & (cols - 1);
            const u32 pair = bf >> log_cols;
            const u32 g = pair >> log_lt;
            const u32 r = (g << (log_lt + 1)) + (pair & ((1u << log_lt) - 1));
            const u32 xi = (r << log_cols) + c;
            const u32 yi = xi + (cols << log_lt);
            if (Forward) {
                ct_butterfly(s[xi], s[yi], w[m + g], ws[m + g], q);
            } else {
                gs_butterfly(s[xi], s[yi], w[m + g], ws[m + g], q);
            }
        }
        __syncthreads();
    }
    // The inverse's outer kernel runs last: apply 1/N there. The forward's runs first and
    // leaves its lazy [0, 4q) values to the inner kernel.
    for (u32 i = threadIdx.x; i < count; i += blockDim.x) {
        u64 v = s[i];
        if (!Forward) {
            v = mul_shoup(v, n_inv[table], n_inv_shoup[table], q);
        }
        x[((u64)(i >> log_cols) << log_chunk) + (i & (cols - 1))] = v;
    }
}

// All four entry points share one signature so the host launches them alike; the forward
// ones ignore n_inv / n_inv_shoup (pass the same arrays, or null).
#define NTT_ARGS                                                                            \
    u64 *data, const u64 *tw, const u64 *tw_shoup, const RnsModulus *mods,                   \
        const u32 *table_of_limb, const u64 *n_inv, const u64 *n_inv_shoup, u32 limbs,       \
        u32 log_n, u32 log_outer
#define NTT_PASS data, tw, tw_shoup, mods, table_of_limb, n_inv, n_inv_shoup, limbs, log_n, log_outer

extern "C" __global__ void ntt_forward_outer(NTT_ARGS) { ntt_outer<true>(NTT_PASS); }
extern "C" __global__ void ntt_forward_inner(NTT_ARGS) { ntt_inner<true>(NTT_PASS); }
extern "C" __global__ void ntt_inverse_inner(NTT_ARGS) { ntt_inner<false>(NTT_PASS); }
extern "C" __global__ void ntt_inverse_outer(NTT_ARGS) { ntt_outer<false>(NTT_PASS); }
