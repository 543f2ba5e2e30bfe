//! Bit widths of a LoRA reply after modulus switching (see `ckks::CompactCiphertext`).
//!
//! The switch adds a rounding error whose slot-domain size grows like N (√N from r_1·s,
//! √N from decoding) relative to the scale 2^(c1_bits − 10) left at level 0 of a 50-bit q_0
//! with Δ = 2^40. c1 at 27 + log2(N) bits keeps that error near 2^-28 at N = 2^13 (relative
//! error ≈ 6e-5 on LoRA-sized outputs of RMS ≈ 0.03); c0 carries 4 bits fewer, which adds
//! only ≈ 5% to the error because its rounding is not multiplied by the secret.

use crate::ckks::Params;

/// (c0 bits, c1 bits) for replies under `params`, capped below q_0's width.
pub fn reply_widths(params: &Params) -> (u32, u32) {
    let q0_bits = params.ring().q()[0].bits();
    let c1 = (27 + params.spec().log_n).min(q0_bits - 1);
    (c1.saturating_sub(4).max(crate::ckks::MIN_COMPACT_BITS), c1)
}
