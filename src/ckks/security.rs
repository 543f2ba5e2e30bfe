//! The Homomorphic Encryption Standard's 128-bit classical security table for ternary
//! secrets (homomorphicencryption.org, 2018), extended to N = 2^16 with the value the
//! OpenFHE library uses (1772 bits), which comes from the same lattice estimator.

/// (log2 N, largest log2(Q·P) at 128-bit classical security, ternary secret).
const TERNARY_128_CLASSIC: [(u32, u32); 7] = [
    (10, 27),
    (11, 54),
    (12, 109),
    (13, 218),
    (14, 438),
    (15, 881),
    (16, 1772),
];

/// Largest total modulus bit count (Q·P, the key-switching modulus) for `log_n`, or
/// `None` when the table has no entry for that degree.
pub fn max_modulus_bits_128(log_n: u32) -> Option<u32> {
    TERNARY_128_CLASSIC
        .iter()
        .find(|&&(l, _)| l == log_n)
        .map(|&(_, b)| b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_monotone_and_covers_supported_degrees() {
        for w in TERNARY_128_CLASSIC.windows(2) {
            assert_eq!(w[1].0, w[0].0 + 1);
            assert!(w[1].1 > 2 * w[0].1 - 10, "bounds roughly double with N");
        }
        assert_eq!(max_modulus_bits_128(13), Some(218));
        assert_eq!(max_modulus_bits_128(17), None);
    }
}
