//! Galois automorphisms X → X^g (g odd) of Z[X]/(X^N + 1), in both domains.
//!
//! In the NTT domain the automorphism is a permutation of the evaluation points
//! (no sign changes), which is why ciphertexts stay in NTT form through rotations.

use super::simd::{self, SimdTier};
use super::{bit_reverse, RingContext, RnsPoly};

/// Whether `g` is a valid Galois element for degree `n` (odd, below 2N).
pub fn is_galois_element(g: u64, n: usize) -> bool {
    g % 2 == 1 && g < 2 * n as u64
}

/// Coefficient domain: coefficient i moves to i·g mod 2N, negated when it wraps past N.
pub fn automorphism_coeff(ctx: &RingContext, input: &RnsPoly, g: u64) -> RnsPoly {
    assert!(
        !input.ntt_form,
        "coefficient-domain automorphism on an NTT-form polynomial"
    );
    let n = input.n();
    assert!(is_galois_element(g, n), "invalid Galois element {g}");
    let mask = 2 * n - 1;
    let basis = input.basis();
    let mut out = RnsPoly::zero(n, basis, false);
    for limb in 0..basis.len() {
        let m = ctx.modulus(basis, limb);
        let dst = out.limb_mut(limb);
        for (i, &x) in input.limb(limb).iter().enumerate() {
            let j = (i * g as usize) & mask;
            if j < n {
                dst[j] = x;
            } else {
                dst[j - n] = m.neg(x);
            }
        }
    }
    out
}

/// The NTT-domain permutation of X → X^g: `out[i] = in[perm[i]]`.
pub fn automorphism_ntt_permutation(n: usize, g: u64) -> Vec<u32> {
    assert!(is_galois_element(g, n), "invalid Galois element {g}");
    let log_n = n.trailing_zeros();
    let two_n = 2 * n as u64;
    (0..n)
        .map(|i| {
            // Slot i evaluates at ψ^e with e = 2·bitrev(i)+1; σ_g(a)(ψ^e) = a(ψ^(e·g)).
            let e = 2 * bit_reverse(i, log_n) as u64 + 1;
            let eg = e * g % two_n;
            bit_reverse(((eg - 1) / 2) as usize, log_n) as u32
        })
        .collect()
}

/// NTT domain: applies a permutation from [`automorphism_ntt_permutation`] to every limb.
pub fn automorphism_ntt(input: &RnsPoly, perm: &[u32]) -> RnsPoly {
    assert!(
        input.ntt_form,
        "NTT-domain automorphism on a coefficient-form polynomial"
    );
    let mut out = RnsPoly::zero(input.n(), input.basis(), true);
    let path = SimdTier::best();
    for (dst, src) in out.limbs_mut().zip(input.limbs()) {
        simd::permute(path, src, perm, dst);
    }
    out
}
