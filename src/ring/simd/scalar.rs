//! Portable reference kernels: the fallback where AVX-512 is missing (or a modulus is too
//! wide for a vector path), and the definition the vector kernels are tested against.
//! Every output is the canonical residue in `[0, q)`.

use crate::math::Modulus;

/// a += b
pub(crate) fn add(m: &Modulus, a: &mut [u64], b: &[u64]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.add(*x, y));
}

/// a −= b
pub(crate) fn sub(m: &Modulus, a: &mut [u64], b: &[u64]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.sub(*x, y));
}

/// a = −a
pub(crate) fn neg(m: &Modulus, a: &mut [u64]) {
    a.iter_mut().for_each(|x| *x = m.neg(*x));
}

/// a += c for a constant c < q.
pub(crate) fn add_const(m: &Modulus, a: &mut [u64], c: u64) {
    a.iter_mut().for_each(|x| *x = m.add(*x, c));
}

/// a *= b
pub(crate) fn mul(m: &Modulus, a: &mut [u64], b: &[u64]) {
    a.iter_mut().zip(b).for_each(|(x, &y)| *x = m.mul(*x, y));
}

/// acc += a·b
pub(crate) fn mul_add(m: &Modulus, acc: &mut [u64], a: &[u64], b: &[u64]) {
    for ((z, &x), &y) in acc.iter_mut().zip(a).zip(b) {
        *z = m.mul_add(x, y, *z);
    }
}

/// out = x·w for a constant w < q (Shoup); `x` may hold any u64.
pub(crate) fn mul_const_to(m: &Modulus, x: &[u64], out: &mut [u64], w: u64) {
    let ws = m.shoup(w);
    for (o, &x) in out.iter_mut().zip(x) {
        *o = m.mul_shoup(x, w, ws);
    }
}

/// a *= w for a constant w < q (Shoup).
pub(crate) fn mul_const(m: &Modulus, a: &mut [u64], w: u64) {
    let ws = m.shoup(w);
    a.iter_mut().for_each(|x| *x = m.mul_shoup(*x, w, ws));
}

/// out = (x − out)·w for a constant w < q: the last step of ModDown and rescale.
pub(crate) fn sub_mul_const(m: &Modulus, x: &[u64], out: &mut [u64], w: u64) {
    let ws = m.shoup(w);
    for (o, &x) in out.iter_mut().zip(x) {
        *o = m.mul_shoup(m.sub(x, *o), w, ws);
    }
}

/// out = (v mod q) − h mod q for any u64 `v` and a constant h < q.
pub(crate) fn reduce_sub_const(m: &Modulus, v: &[u64], h: u64, out: &mut [u64]) {
    for (o, &v) in out.iter_mut().zip(v) {
        *o = m.sub(m.reduce(v), h);
    }
}

/// The centered representative of each x ∈ [0, s) (in (−s/2, s/2]) reduced modulo t.
pub(crate) fn center_reduce(s: &Modulus, t: &Modulus, x: &[u64], out: &mut [u64]) {
    let (s, half) = (s.value(), s.value() / 2);
    for (o, &x) in out.iter_mut().zip(x) {
        *o = if x > half {
            t.neg(t.reduce(s - x))
        } else {
            t.reduce(x)
        };
    }
}

/// out_h[i] = Σ_j x_j[src(i)] · keys_h[j][i] mod q for both halves h, with src(i) = perm[i]
/// (or i without a permutation). `x` and `keys` hold values below q; the caller guarantees
/// that `x.len()` products below q² fit in 128 bits.
pub(crate) fn inner_product(
    m: &Modulus,
    x: &[&[u64]],
    perm: Option<&[u32]>,
    keys: [&[&[u64]]; 2],
    out: [&mut [u64]; 2],
) {
    let [k0, k1] = keys;
    let [o0, o1] = out;
    for i in 0..o0.len() {
        let src = perm.map_or(i, |p| p[i] as usize);
        let (mut a0, mut a1) = (0u128, 0u128);
        for j in 0..x.len() {
            let v = x[j][src] as u128;
            a0 += v * k0[j][i] as u128;
            a1 += v * k1[j][i] as u128;
        }
        o0[i] = m.reduce_u128(a0);
        o1[i] = m.reduce_u128(a1);
    }
}

/// out[i] = x[perm[i]].
pub(crate) fn permute(x: &[u64], perm: &[u32], out: &mut [u64]) {
    for (o, &p) in out.iter_mut().zip(perm) {
        *o = x[p as usize];
    }
}

/// u[i] = round(Σ_j y_j[i] · inv[j]) in f64, summed in order j = 0, 1, …: the number of
/// source products the plain sum of a fast base conversion overshoots by.
pub(crate) fn overshoot(y: &[&[u64]], inv: &[f64], u: &mut [u64]) {
    let mut acc = vec![0f64; u.len()];
    for (y, &inv) in y.iter().zip(inv) {
        for (acc, &v) in acc.iter_mut().zip(y.iter()) {
            *acc += v as f64 * inv;
        }
    }
    for (u, v) in u.iter_mut().zip(acc) {
        *u = v.round() as u64;
    }
}

/// out[i] = Σ_j y_j[i]·h_j − u[i]·s mod t, with constants (h_j, Shoup) and (s, Shoup) below t:
/// one target of a fast base conversion. `u` is small (at most the number of sources).
pub(crate) fn hat_sum(
    t: &Modulus,
    y: &[&[u64]],
    hats: &[(u64, u64)],
    u: &[u64],
    s: (u64, u64),
    out: &mut [u64],
) {
    let (sp, sps) = s;
    // Start from −u·S; u is tiny, so the Shoup product is exact.
    for (o, &v) in out.iter_mut().zip(u) {
        *o = t.neg(t.mul_shoup(v, sp, sps));
    }
    // Shoup products are exact for any 64-bit multiplicand, so y_j ≥ t is fine.
    for (y, &(h, hs)) in y.iter().zip(hats) {
        for (o, &v) in out.iter_mut().zip(y.iter()) {
            *o = t.add(*o, t.mul_shoup(v, h, hs));
        }
    }
}
