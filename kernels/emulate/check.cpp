// Host check of kernels/*.cu through shim.h (see there for what it does and does not show).
// Built and run by the `kernels_emulated_on_host` test in src/backend/cuda/sources.rs:
//   c++ -std=c++20 -O2 -pthread -I kernels -I kernels/emulate kernels/emulate/check.cpp
// References are plain 128-bit arithmetic and the NTT's definition, out[i] =
// a(ψ^(2·bitrev(i)+1)); results are canonical residues, so agreeing with the definition
// means agreeing with the CPU backend bit for bit. Prints one line; exit status 1 on failure.

#include "shim.h"

#include "automorphism.cu"
#include "basis_conversion.cu"
#include "key_switch.cu"
#include "ntt.cu"
#include "pointwise.cu"
#include "rescale.cu"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>

typedef unsigned __int128 u128;

// The by-value structs as the Rust launchers lay them out (src/backend/cuda/).
static_assert(sizeof(KeySwitchBatch) == 3072);
static_assert(sizeof(AutomorphismBatch) == 384);

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

// `psis` (one per prime) picks the 2N-th roots, as the CPU's `NttTable::psi()`; by default
// the first one found.
static Tables make_tables(const std::vector<u64>& primes, u32 log_n,
                          const std::vector<u64>& psis = {}) {
    const u64 n = 1ull << log_n;
    Tables t;
    for (size_t k = 0; k < primes.size(); ++k) {
        const u64 q = primes[k];
        const u64 psi = psis.empty() ? root_2n(q, 2 * n) : psis[k];
        const u64 psi_inv = pow_mod(psi, q - 2, q);
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

    // The batched NTT-domain automorphism against one launch per element, conjugation
    // (2N − 1) and the identity among them.
    const u32 elements[] = {galois, (u32)(2 * n - 1), 1, (u32)(5 % (2 * n)), (u32)(25 % (2 * n))};
    const u32 count = sizeof elements / sizeof elements[0];
    std::vector<std::vector<u64>> batch(count, std::vector<u64>(total));
    AutomorphismBatch ops{};
    for (u32 k = 0; k < count; ++k) {
        ops.out[k] = batch[k].data();
        ops.galois[k] = elements[k];
    }
    launch(3, 5, [&] { automorphism_ntt_batch(ops, spectrum.data(), log_n, total); }, count);
    for (u32 k = 0; k < count; ++k) {
        launch(2, 7, [&] { automorphism_ntt(ntt.data(), spectrum.data(), elements[k], log_n, total); });
        bad = 0;
        for (u64 i = 0; i < total; ++i) bad += batch[k][i] != ntt[i];
        CHECK(bad == 0, "automorphism_ntt_batch element %u (σ_%u) differs at %llu places, N=2^%u",
              k, elements[k], (unsigned long long)bad, log_n);
    }
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
        LimbScalars ws{};
        for (u32 l = 0; l < limbs; ++l) {
            ws.value[l] = w[l];
            ws.shoup[l] = w_shoup[l];
        }
        x = a;
        launch(2, 3, [&] { poly_mul_scalar(x.data(), ws, m.data(), limbs, log_n, total); });
        for (u64 i = 0; i < total; ++i) {
            CHECK(x[i] == (u128)a[i] * w[(i >> log_n) % limbs] % q(i), "poly_mul_scalar");
        }
        x = c;
        launch(3, 2, [&] {
            poly_sub_mul_scalar(x.data(), a.data(), w.data(), w_shoup.data(), m.data(), limbs,
                                log_n, total);
        });
        for (u64 i = 0; i < total; ++i) {
            const u64 qi = q(i);
            CHECK(x[i] == (u128)((a[i] + qi - c[i]) % qi) * w[(i >> log_n) % limbs] % qi,
                  "poly_sub_mul_scalar");
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

// ---- Composite operations against the Rust CPU backend ----------------------------------
//
// The `kernels_emulated_on_host` test writes cases computed by the CPU backend (random
// inputs, its outputs) to a file of little-endian u64 and passes its path. Each case runs
// here through the kernels in the launch sequence the CUDA backend uses (src/backend/cuda/),
// and must match bit for bit.

struct Reader {
    std::vector<u64> words;
    size_t at = 0;
    bool ok = true;
    u64 next() {
        if (at >= words.size()) {
            ok = false;
            return 0;
        }
        return words[at++];
    }
    std::vector<u64> take(u64 count) {
        std::vector<u64> v(count);
        for (auto& x : v) x = next();
        return v;
    }
};

static u64 inv_mod(u64 a, u64 q) { return pow_mod(a, q - 2, q); }

// The backend's NTT split: one inner launch up to N = 4096, else outer + inner at log_n / 2.
static u32 backend_log_outer(u32 log_n) { return log_n <= 12 ? 0 : log_n / 2; }

// NTT of `rows` consecutive rows at `data`, row r with table table_of_row[r].
static void ntt_rows(bool forward, u64* data, const Tables& t, const std::vector<u32>& table_of_row,
                     u32 log_n) {
    const u32 rows = table_of_row.size();
    if (rows == 0) return;
    const u32 log_outer = backend_log_outer(log_n);
    const u32 chunk = 1u << (log_n - log_outer), cols = chunk < 16 ? chunk : 16;
    const unsigned block = 128;
    const u64* tw = forward ? t.tw.data() : t.itw.data();
    const u64* tws = forward ? t.tw_shoup.data() : t.itw_shoup.data();
    auto outer = [&] {
        launch(rows * (chunk / cols), block, [&] {
            (forward ? ntt_forward_outer : ntt_inverse_outer)(
                data, tw, tws, t.mods.data(), table_of_row.data(), t.n_inv.data(),
                t.n_inv_shoup.data(), rows, log_n, log_outer);
        });
    };
    auto inner = [&] {
        launch(rows << log_outer, block, [&] {
            (forward ? ntt_forward_inner : ntt_inverse_inner)(
                data, tw, tws, t.mods.data(), table_of_row.data(), t.n_inv.data(),
                t.n_inv_shoup.data(), rows, log_n, log_outer);
        });
    };
    if (forward) {
        if (log_outer) outer();
        inner();
    } else {
        inner();
        if (log_outer) outer();
    }
}

static std::vector<u32> range_u32(u32 from, u32 to) {
    std::vector<u32> v;
    for (u32 i = from; i < to; ++i) v.push_back(i);
    return v;
}

// A fast base conversion of `sources` coefficient rows at `in` (primes src) to the rows
// out_rows of `out` (primes dst), as the backend launches it.
static void convert(u64* out, const std::vector<u32>& out_rows, const u64* in,
                    const std::vector<u64>& src, const std::vector<u64>& dst, u32 log_n) {
    const u64 n = 1ull << log_n;
    const u32 k = src.size(), targets = dst.size();
    std::vector<RnsModulus> to;
    for (u64 t : dst) to.push_back(rns_modulus(t));
    if (k == 1) {
        launch(5, 64, [&] {
            base_convert_center(out, out_rows.data(), in, src[0], to.data(), targets, log_n);
        });
        return;
    }
    std::vector<RnsModulus> from;
    std::vector<u64> inv_hat, inv_hat_shoup, hat, hat_shoup, prod, prod_shoup;
    std::vector<double> inv_from;
    for (u32 i = 0; i < k; ++i) {
        u64 h = 1;
        for (u32 j = 0; j < k; ++j) {
            if (j != i) h = (u128)h * (src[j] % src[i]) % src[i];
        }
        from.push_back(rns_modulus(src[i]));
        inv_hat.push_back(inv_mod(h, src[i]));
        inv_hat_shoup.push_back(shoup(inv_hat.back(), src[i]));
        inv_from.push_back(1.0 / (double)src[i]);
    }
    for (u64 t : dst) {
        u64 p = 1;
        for (u32 i = 0; i < k; ++i) {
            u64 h = 1;
            for (u32 j = 0; j < k; ++j) {
                if (j != i) h = (u128)h * (src[j] % t) % t;
            }
            hat.push_back(h);
            hat_shoup.push_back(shoup(h, t));
            p = (u128)p * (src[i] % t) % t;
        }
        prod.push_back(p);
        prod_shoup.push_back(shoup(p, t));
    }
    std::vector<u64> y(k * n), u(n);
    launch(3, 64, [&] {
        base_convert_scale(y.data(), u.data(), in, from.data(), inv_hat.data(),
                           inv_hat_shoup.data(), inv_from.data(), k, log_n);
    });
    launch(7, 32, [&] {
        base_convert_sum(out, out_rows.data(), y.data(), u.data(), to.data(), hat.data(),
                         hat_shoup.data(), prod.data(), prod_shoup.data(), k, targets, log_n);
    });
}

static void compare(const char* what, const std::vector<u64>& got, const std::vector<u64>& want) {
    u64 bad = 0;
    for (size_t i = 0; i < want.size(); ++i) bad += got[i] != want[i];
    CHECK(got.size() == want.size() && bad == 0, "%s: %llu of %zu words differ from the CPU",
          what, (unsigned long long)bad, want.size());
}

// RESCALE: log_n, limbs, primes, psis, x (NTT), want (limbs − 1 rows, NTT).
static void case_rescale(Reader& r) {
    const u32 log_n = r.next(), limbs = r.next();
    const u64 n = 1ull << log_n;
    const auto primes = r.take(limbs), psis = r.take(limbs);
    const auto x = r.take(limbs * n), want = r.take((limbs - 1) * n);
    if (!r.ok) return;
    const Tables t = make_tables(primes, log_n, psis);
    const u32 last = limbs - 1;
    const u64 ql = primes[last], half = ql / 2;
    std::vector<u64> rr(x.begin() + last * n, x.end());
    ntt_rows(false, rr.data(), t, {last}, log_n);
    std::vector<u64> out(last * n), half_mod, w, ws;
    for (u32 i = 0; i < last; ++i) {
        half_mod.push_back(half % primes[i]);
        w.push_back(inv_mod(ql % primes[i], primes[i]));
        ws.push_back(shoup(w.back(), primes[i]));
    }
    launch(4, 64, [&] {
        rescale_spread(out.data(), rr.data(), ql, half, t.mods.data(), half_mod.data(), last, log_n);
    });
    ntt_rows(true, out.data(), t, range_u32(0, last), log_n);
    launch(4, 64, [&] {
        poly_sub_mul_scalar(out.data(), x.data(), w.data(), ws.data(), t.mods.data(), last, log_n,
                            last * n);
    });
    compare("rescale", out, want);
}

// MOD_UP: log_n, q, p, primes (q + p), psis, digit start, digit end, c (q rows, NTT), want
// (q + p rows, NTT).
static void case_mod_up(Reader& r) {
    const u32 log_n = r.next(), q = r.next(), p = r.next();
    const u64 n = 1ull << log_n, limbs = q + p;
    const auto primes = r.take(limbs), psis = r.take(limbs);
    const u32 start = r.next(), end = r.next();
    const auto c = r.take(q * n), want = r.take(limbs * n);
    if (!r.ok) return;
    const Tables t = make_tables(primes, log_n, psis);
    std::vector<u64> coeff = c, out(limbs * n);
    ntt_rows(false, coeff.data(), t, range_u32(0, q), log_n);
    std::vector<u32> out_rows;
    std::vector<u64> src(primes.begin() + start, primes.begin() + end), dst;
    for (u32 i = 0; i < limbs; ++i) {
        if (i < start || i >= end) {
            out_rows.push_back(i);
            dst.push_back(primes[i]);
        }
    }
    convert(out.data(), out_rows, coeff.data() + start * n, src, dst, log_n);
    ntt_rows(true, out.data(), t, range_u32(0, start), log_n);
    ntt_rows(true, out.data() + end * n, t, range_u32(end, limbs), log_n);
    std::copy(c.begin() + start * n, c.begin() + end * n, out.begin() + start * n);
    compare("mod_up", out, want);
}

// MOD_DOWN: log_n, q, p, primes (q + p), psis, x (q + p rows, NTT), want (q rows, NTT).
static void case_mod_down(Reader& r) {
    const u32 log_n = r.next(), q = r.next(), p = r.next();
    const u64 n = 1ull << log_n, limbs = q + p;
    const auto primes = r.take(limbs), psis = r.take(limbs);
    const auto x = r.take(limbs * n), want = r.take(q * n);
    if (!r.ok) return;
    const Tables t = make_tables(primes, log_n, psis);
    std::vector<u64> p_part(x.begin() + q * n, x.end()), out(q * n), w, ws;
    ntt_rows(false, p_part.data(), t, range_u32(q, limbs), log_n);
    std::vector<u64> src(primes.begin() + q, primes.end()), dst(primes.begin(), primes.begin() + q);
    convert(out.data(), range_u32(0, q), p_part.data(), src, dst, log_n);
    ntt_rows(true, out.data(), t, range_u32(0, q), log_n);
    for (u32 i = 0; i < q; ++i) {
        u64 pm = 1;
        for (u64 s : src) pm = (u128)pm * (s % primes[i]) % primes[i];
        w.push_back(inv_mod(pm, primes[i]));
        ws.push_back(shoup(w.back(), primes[i]));
    }
    launch(4, 64, [&] {
        poly_sub_mul_scalar(out.data(), x.data(), w.data(), ws.data(), t.mods.data(), q, log_n,
                            q * n);
    });
    compare("mod_down", out, want);
}

// KEY_SWITCH: log_n, q, p, key_q, digits, galois (0: none), primes (q + p), then the digits
// (q + p rows each), keys (b_j then a_j, key_q + p rows each), want0, want1 (q + p rows).
static void case_key_switch(Reader& r) {
    const u32 log_n = r.next(), q = r.next(), p = r.next(), key_q = r.next(), d = r.next();
    const u32 galois = r.next();
    const u64 n = 1ull << log_n, limbs = q + p;
    const auto primes = r.take(limbs);
    std::vector<std::vector<u64>> digits, k0, k1;
    for (u32 j = 0; j < d; ++j) digits.push_back(r.take(limbs * n));
    for (u32 j = 0; j < d; ++j) {
        k0.push_back(r.take((key_q + p) * n));
        k1.push_back(r.take((key_q + p) * n));
    }
    const auto want0 = r.take(limbs * n), want1 = r.take(limbs * n);
    if (!r.ok || d > KEY_SWITCH_MAX_DIGITS) return;
    KeySwitchOperands ops{};
    for (u32 j = 0; j < d; ++j) {
        ops.digit[j] = digits[j].data();
        ops.key0[j] = k0[j].data();
        ops.key1[j] = k1[j].data();
    }
    std::vector<RnsModulus> mods;
    for (u64 m : primes) mods.push_back(rns_modulus(m));
    std::vector<u64> o0(limbs * n), o1(limbs * n);
    launch(6, 64, [&] {
        key_switch_inner_product(o0.data(), o1.data(), ops, d, mods.data(), q, limbs, key_q,
                                 galois, log_n);
    });
    compare(galois ? "key_switch_inner_product (galois)" : "key_switch_inner_product", o0, want0);
    compare(galois ? "key_switch_inner_product (galois), a half" : "key_switch_inner_product, a half",
            o1, want1);
}

// KEY_SWITCH_BATCH: log_n, q, p, digits, steps, then per step its galois (0: none) and key_q,
// primes (q + p), the digits (q + p rows each), per step its keys (b_j then a_j for each
// digit, key_q + p rows each), then per step want0, want1 (q + p rows). Run in launches of at
// most KEY_SWITCH_BATCH_STEPS steps and KEY_SWITCH_BATCH_KEYS keys, as the backend splits.
static void case_key_switch_batch(Reader& r) {
    const u32 log_n = r.next(), q = r.next(), p = r.next(), d = r.next(), steps = r.next();
    const u64 n = 1ull << log_n, limbs = q + p;
    std::vector<u32> galois(steps), key_q(steps);
    for (u32 s = 0; s < steps; ++s) {
        galois[s] = r.next();
        key_q[s] = r.next();
    }
    const auto primes = r.take(limbs);
    std::vector<std::vector<u64>> digits, k0, k1, want0, want1;
    for (u32 j = 0; j < d; ++j) digits.push_back(r.take(limbs * n));
    for (u32 s = 0; s < steps; ++s) {
        for (u32 j = 0; j < d; ++j) {
            k0.push_back(r.take((key_q[s] + p) * n));
            k1.push_back(r.take((key_q[s] + p) * n));
        }
    }
    for (u32 s = 0; s < steps; ++s) {
        want0.push_back(r.take(limbs * n));
        want1.push_back(r.take(limbs * n));
    }
    CHECK(d >= 1 && d <= KEY_SWITCH_MAX_DIGITS, "key_switch_inner_products: %u digits", d);
    if (!r.ok || d == 0 || d > KEY_SWITCH_MAX_DIGITS) return;
    std::vector<RnsModulus> mods;
    for (u64 m : primes) mods.push_back(rns_modulus(m));
    std::vector<std::vector<u64>> o0(steps, std::vector<u64>(limbs * n)), o1 = o0;
    const u32 per_launch = std::min<u32>(KEY_SWITCH_BATCH_STEPS, KEY_SWITCH_BATCH_KEYS / d);
    for (u32 at = 0; at < steps; at += per_launch) {
        const u32 count = std::min(per_launch, steps - at);
        KeySwitchBatch ops{};
        for (u32 j = 0; j < d; ++j) ops.digit[j] = digits[j].data();
        for (u32 s = 0; s < count; ++s) {
            for (u32 j = 0; j < d; ++j) {
                ops.key0[s * d + j] = k0[(at + s) * d + j].data();
                ops.key1[s * d + j] = k1[(at + s) * d + j].data();
            }
            ops.out0[s] = o0[at + s].data();
            ops.out1[s] = o1[at + s].data();
            ops.galois[s] = galois[at + s];
            ops.key_q[s] = key_q[at + s];
        }
        launch(3, 64, [&] { key_switch_inner_products(ops, d, mods.data(), q, limbs, log_n); },
               count);
    }
    char what[96];
    for (u32 s = 0; s < steps; ++s) {
        snprintf(what, sizeof what, "key_switch_inner_products step %u of %u (galois %u)", s,
                 steps, galois[s]);
        compare(what, o0[s], want0[s]);
        snprintf(what, sizeof what, "key_switch_inner_products step %u of %u (galois %u), a half",
                 s, steps, galois[s]);
        compare(what, o1[s], want1[s]);
    }
}

// Runs every case of the file; returns how many ran.
static int run_vectors(const char* path) {
    std::ifstream f(path, std::ios::binary);
    Reader r;
    u64 w;
    while (f.read(reinterpret_cast<char*>(&w), sizeof w)) r.words.push_back(w);
    int cases = 0;
    while (r.ok && r.at < r.words.size()) {
        switch (r.next()) {
            case 1: case_rescale(r); break;
            case 2: case_mod_up(r); break;
            case 3: case_mod_down(r); break;
            case 4: case_key_switch(r); break;
            case 5: case_key_switch_batch(r); break;
            default: r.ok = false;
        }
        ++cases;
    }
    CHECK(r.ok && cases > 0, "%s: malformed case file (after %d cases)", path, cases);
    return cases;
}

int main(int argc, char** argv) {
    int vectors = argc > 1 ? run_vectors(argv[1]) : 0;
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
    printf("kernels on the host: %s (%d failures; %d cases against the CPU backend)\n",
           failures ? "FAILED" : "ok", failures, vectors);
    return failures != 0;
}
