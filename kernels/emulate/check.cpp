// Host check of kernels/*.cu through shim.h (see there for what it does and does not show).
// Built and run by the `kernels_emulated_on_host` test in src/backend/kernels.rs:
//   c++ -std=c++20 -O2 -pthread -I kernels -I kernels/emulate kernels/emulate/check.cpp
// References are plain 128-bit arithmetic and the NTT's definition, out[i] =
// a(ψ^(2·bitrev(i)+1)); results are canonical residues, so agreeing with the definition
// means agreeing with the CPU backend bit for bit. Prints one line; exit status 1 on failure.

#include "shim.h"

#include "automorphism.cu"
#include "ntt.cu"
#include "pointwise.cu"

#include <cstdio>
#include <random>

typedef unsigned __int128 u128;

static std::mt19937_64 rng(20261101);
static int failures = 0;

#define CHECK(cond, ...)                                         \
    do {                                                         \
        if (!(cond) && failures++ < 10) {                        \
            printf("FAIL line %d: ", __LINE__);                  \
            printf(__VA_ARGS__);                                 \
            printf("\n");                                        \
        }                                                        \
    } while (0)

static u64 pow_mod(u64 b, u64 e, u64 q) {
    u64 r = 1 % q;
    for (b %= q; e; e >>= 1) {
        if (e & 1) r = (u128)r * b % q;
        b = (u128)b * b % q;
    }
    return r;
}

static bool is_prime(u64 n) {
    const u64 bases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    if (n < 2) return false;
    for (u64 p : bases) {
        if (n % p == 0) return n == p;
    }
    u64 d = n - 1;
    int r = 0;
    for (; d % 2 == 0; d /= 2) ++r;
    for (u64 a : bases) {  // deterministic Miller–Rabin below 2^64
        u64 x = pow_mod(a, d, n);
        bool composite = x != 1 && x != n - 1;
        for (int i = 1; i < r && composite; ++i) {
            x = (u128)x * x % n;
            composite = x != n - 1;
        }
        if (composite) return false;
    }
    return true;
}

// The largest prime q < 2^bits with q ≡ 1 mod 2N (an NTT-friendly prime).
static u64 ntt_prime(int bits, u64 two_n) {
    u64 q = ((1ull << bits) - 1) / two_n * two_n + 1;
    while (!is_prime(q)) q -= two_n;
    return q;
}

// A primitive 2N-th root of unity mod q: ψ^N = -1.
static u64 root_2n(u64 q, u64 two_n) {
    for (u64 g = 2;; ++g) {
        u64 w = pow_mod(g, (q - 1) / two_n, q);
        if (pow_mod(w, two_n / 2, q) == q - 1) return w;
    }
}

static u32 bit_rev(u32 x, u32 bits) { return bits ? __brev(x) >> (32 - bits) : 0; }
static u64 shoup(u64 w, u64 q) { return (u64)(((u128)w << 64) / q); }
static RnsModulus rns_modulus(u64 q) {
    u128 r = ~(u128)0 / q;  // floor(2^128 / q) for q not a power of two, as `Modulus::new`
    return {q, (u64)(r >> 64), (u64)r};
}

// Per prime: N twiddles each, laid out as `NttTable::twiddles()`.
struct Tables {
    std::vector<u64> tw, tw_shoup, itw, itw_shoup, n_inv, n_inv_shoup;
    std::vector<RnsModulus> mods;
};

static Tables make_tables(const std::vector<u64>& primes, u32 log_n) {
    const u64 n = 1ull << log_n;
    Tables t;
    for (u64 q : primes) {
        const u64 psi = root_2n(q, 2 * n), psi_inv = pow_mod(psi, q - 2, q);
        std::vector<u64> fwd(n), inv(n);
        u64 p = 1, ip = 1;
        for (u64 i = 0; i < n; ++i) {
            fwd[bit_rev(i, log_n)] = p;
            inv[bit_rev(i, log_n)] = ip;
            p = (u128)p * psi % q;
            ip = (u128)ip * psi_inv % q;
        }
        for (u64 i = 0; i < n; ++i) {
            t.tw.push_back(fwd[i]);
            t.tw_shoup.push_back(shoup(fwd[i], q));
            t.itw.push_back(inv[i]);
            t.itw_shoup.push_back(shoup(inv[i], q));
        }
        const u64 ni = pow_mod(n, q - 2, q);
        t.n_inv.push_back(ni);
        t.n_inv_shoup.push_back(shoup(ni, q));
        t.mods.push_back(rns_modulus(q));
    }
    return t;
}

// Forward NTT against the definition on sampled slots, the round trip, and the NTT-domain
// automorphism against the coefficient-domain one, for `polys` polynomials of `limbs` limbs.
static void check_ntt(u32 log_n, u32 log_outer, unsigned block, u32 limbs, u32 polys) {
    const u64 n = 1ull << log_n;
    const std::vector<u64> primes = {ntt_prime(62, 2 * n), ntt_prime(50, 2 * n),
                                     ntt_prime(36, 2 * n)};
    const Tables t = make_tables(primes, log_n);
    // Limb l uses table (2l + 1) mod 3, so the indirection is not the identity.
    std::vector<u32> table_of_limb(limbs);
    std::vector<RnsModulus> limb_mods(limbs);
    for (u32 l = 0; l < limbs; ++l) {
        table_of_limb[l] = (2 * l + 1) % 3;
        limb_mods[l] = t.mods[table_of_limb[l]];
    }
    const u64 rows = (u64)limbs * polys, total = rows * n;
    std::vector<u64> orig(total);
    for (u64 i = 0; i < total; ++i) orig[i] = rng() % limb_mods[(i >> log_n) % limbs].value;

    const u32 chunk = 1u << (log_n - log_outer), cols = chunk < 16 ? chunk : 16;
    auto forward = [&](std::vector<u64>& d) {
        if (log_outer) {
            launch(rows * (chunk / cols), block, [&] {
                ntt_forward_outer(d.data(), t.tw.data(), t.tw_shoup.data(), t.mods.data(),
                                  table_of_limb.data(), t.n_inv.data(), t.n_inv_shoup.data(),
                                  limbs, log_n, log_outer);
            });
        }
        launch(rows << log_outer, block, [&] {
            ntt_forward_inner(d.data(), t.tw.data(), t.tw_shoup.data(), t.mods.data(),
                              table_of_limb.data(), t.n_inv.data(), t.n_inv_shoup.data(), limbs,
                              log_n, log_outer);
        });
    };
    auto inverse = [&](std::vector<u64>& d) {
        launch(rows << log_outer, block, [&] {
            ntt_inverse_inner(d.data(), t.itw.data(), t.itw_shoup.data(), t.mods.data(),
                              table_of_limb.data(), t.n_inv.data(), t.n_inv_shoup.data(), limbs,
                              log_n, log_outer);
        });
        if (log_outer) {
            launch(rows * (chunk / cols), block, [&] {
                ntt_inverse_outer(d.data(), t.itw.data(), t.itw_shoup.data(), t.mods.data(),
                                  table_of_limb.data(), t.n_inv.data(), t.n_inv_shoup.data(),
                                  limbs, log_n, log_outer);
            });
        }
    };

    std::vector<u64> d = orig;
    forward(d);
    const std::vector<u64> spectrum = d;
    for (u64 r = 0; r < rows; ++r) {
        const u32 table = table_of_limb[r % limbs];
        const u64 q = primes[table];
        const u64 psi = t.tw[(u64)table * n + bit_rev(1, log_n)];  // ψ^bitrev(bitrev(1))
        for (int k = 0; k < 4; ++k) {
            const u64 i = rng() % n;
            const u64 x = pow_mod(psi, 2 * bit_rev(i, log_n) + 1, q);
            u64 want = 0, p = 1;
            for (u64 j = 0; j < n; ++j) {
                want = (want + (u128)orig[r * n + j] * p) % q;
                p = (u128)p * x % q;
            }
            CHECK(spectrum[r * n + i] == want, "forward N=2^%u log_outer=%u block=%u row %llu slot %llu",
                  log_n, log_outer, block, (unsigned long long)r, (unsigned long long)i);
        }
    }
    inverse(d);
    u64 bad = 0;
    for (u64 i = 0; i < total; ++i) bad += d[i] != orig[i];
    CHECK(bad == 0, "inverse(forward(a)) != a at %llu of %llu places, N=2^%u log_outer=%u block=%u",
          (unsigned long long)bad, (unsigned long long)total, log_n, log_outer, block);

    const u32 galois = (u32)((2 * (rng() % n) + 1) % (2 * n));
    std::vector<u64> coeff(total), ntt(total);
    launch(3, 5, [&] {
        automorphism_coeff(coeff.data(), orig.data(), galois, limb_mods.data(), limbs, log_n, total);
    });
    forward(coeff);
    launch(2, 7, [&] { automorphism_ntt(ntt.data(), spectrum.data(), galois, log_n, total); });
    bad = 0;
    for (u64 i = 0; i < total; ++i) bad += ntt[i] != coeff[i];
    CHECK(bad == 0, "NTT(σ_%u(a)) != σ_%u(NTT(a)) at %llu places, N=2^%u", galois, galois,
          (unsigned long long)bad, log_n);
}

// The pointwise kernels and the modular primitives against 128-bit arithmetic, on the
// widest (62-bit), a Mersenne (61-bit) and a 41-bit prime, including the extremes.
static void check_pointwise() {
    const u32 limbs = 3, log_n = 5;
    const u64 n = 1ull << log_n, total = 2 * limbs * n;
    const std::vector<RnsModulus> m = {rns_modulus(ntt_prime(62, 2 * n)),
                                       rns_modulus((1ull << 61) - 1),
                                       rns_modulus(1099511922689ull)};
    auto q = [&](u64 i) { return m[(i >> log_n) % limbs].value; };
    std::vector<u64> a(total), b(total), c(total), w(limbs), w_shoup(limbs), x;
    for (int rep = 0; rep < 100; ++rep) {
        for (u64 i = 0; i < total; ++i) {
            a[i] = rep == 0 ? q(i) - 1 : rep == 1 ? 0 : rng() % q(i);
            b[i] = rep == 0 ? q(i) - 1 : rng() % q(i);
            c[i] = rep == 0 ? q(i) - 1 : rng() % q(i);
        }
        for (u32 l = 0; l < limbs; ++l) {
            w[l] = rep == 0 ? m[l].value - 1 : rng() % m[l].value;
            w_shoup[l] = shoup(w[l], m[l].value);
        }
        x = a;
        launch(2, 3, [&] { poly_add(x.data(), b.data(), m.data(), limbs, log_n, total); });
        for (u64 i = 0; i < total; ++i) CHECK(x[i] == ((u128)a[i] + b[i]) % q(i), "poly_add");
        x = a;
        launch(2, 3, [&] { poly_sub(x.data(), b.data(), m.data(), limbs, log_n, total); });
        for (u64 i = 0; i < total; ++i) CHECK(x[i] == ((u128)a[i] + q(i) - b[i]) % q(i), "poly_sub");
        x = a;
        launch(2, 3, [&] { poly_neg(x.data(), m.data(), limbs, log_n, total); });
        for (u64 i = 0; i < total; ++i) CHECK(x[i] == (q(i) - a[i]) % q(i), "poly_neg");
        x = a;
        launch(2, 3, [&] { poly_mul(x.data(), b.data(), m.data(), limbs, log_n, total); });
        for (u64 i = 0; i < total; ++i) CHECK(x[i] == (u128)a[i] * b[i] % q(i), "poly_mul");
        x = c;
        launch(2, 3, [&] { poly_mul_add(x.data(), a.data(), b.data(), m.data(), limbs, log_n, total); });
        for (u64 i = 0; i < total; ++i) CHECK(x[i] == ((u128)a[i] * b[i] + c[i]) % q(i), "poly_mul_add");
        x = a;
        launch(2, 3, [&] {
            poly_mul_scalar(x.data(), w.data(), w_shoup.data(), m.data(), limbs, log_n, total);
        });
        for (u64 i = 0; i < total; ++i) {
            CHECK(x[i] == (u128)a[i] * w[(i >> log_n) % limbs] % q(i), "poly_mul_scalar");
        }
    }
    for (int rep = 0; rep < 100000; ++rep) {
        const RnsModulus& mm = m[rep % 3];
        const u64 lo = rng(), hi = rng(), wv = rng() % mm.value;
        CHECK(barrett_reduce_128(lo, hi, mm.value, mm.barrett_hi, mm.barrett_lo) ==
                  (u64)((((u128)hi << 64) | lo) % mm.value),
              "barrett_reduce_128");
        CHECK(barrett_reduce_64(lo, mm.value, mm.barrett_hi) == lo % mm.value, "barrett_reduce_64");
        const u64 lazy = mul_shoup_lazy(lo, wv, shoup(wv, mm.value), mm.value);
        CHECK(lazy < 2 * mm.value && lazy % mm.value == (u128)lo * wv % mm.value, "mul_shoup_lazy");
    }
}

int main() {
    check_pointwise();
    struct Case {
        u32 log_n, log_outer;
        unsigned block;
        u32 limbs, polys;
    };
    // One launch (log_outer = 0) and two (outer + inner), blocks smaller than, equal to and
    // larger than the butterfly count, chunks narrower than the 16 outer columns, N up to 2^16.
    const Case cases[] = {{1, 0, 1, 1, 1},   {2, 1, 2, 2, 1},   {4, 0, 4, 3, 2},
                          {4, 2, 3, 2, 2},   {6, 3, 8, 3, 1},   {8, 0, 32, 2, 2},
                          {8, 4, 16, 2, 2},  {9, 4, 32, 1, 2},  {10, 5, 64, 2, 1},
                          {12, 0, 128, 1, 1}, {12, 6, 64, 2, 1}, {13, 6, 128, 1, 1},
                          {16, 8, 32, 1, 1}};
    for (const Case& c : cases) check_ntt(c.log_n, c.log_outer, c.block, c.limbs, c.polys);
    printf("kernels on the host: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures != 0;
}
