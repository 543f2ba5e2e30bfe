//! NTT-friendly primes (q ≡ 1 mod 2N) and primitive roots of unity.

use super::{MathError, Modulus};

/// Deterministic Miller–Rabin for 64-bit integers.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let (mut d, mut s) = (n - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    let mul = |a: u64, b: u64| (a as u128 * b as u128 % n as u128) as u64;
    let pow = |mut b: u64, mut e: u64| {
        let mut acc = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                acc = mul(acc, b);
            }
            b = mul(b, b);
            e >>= 1;
        }
        acc
    };
    // These bases are a proven deterministic set for all n < 2^64.
    'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// `count` distinct primes q ≡ 1 (mod 2n) with exactly `bits` bits, searched downward from
/// 2^bits and skipping any in `exclude`. Deterministic, so both parties derive the same chain.
pub fn ntt_primes(
    bits: u32,
    n: usize,
    count: usize,
    exclude: &[u64],
) -> Result<Vec<u64>, MathError> {
    if !(10..=super::MAX_MODULUS_BITS).contains(&bits) || !n.is_power_of_two() {
        return Err(MathError::NoPrimes { bits, n, count });
    }
    let step = 2 * n as u64;
    let top = 1u64 << bits;
    let floor = 1u64 << (bits - 1);
    let mut found = Vec::with_capacity(count);
    // Largest candidate ≡ 1 mod 2n below 2^bits.
    let mut candidate = top - step + 1;
    while found.len() < count {
        if candidate <= floor {
            return Err(MathError::NoPrimes { bits, n, count });
        }
        if is_prime(candidate) && !exclude.contains(&candidate) {
            found.push(candidate);
        }
        candidate -= step;
    }
    Ok(found)
}

/// Distinct NTT primes for degree `n`, one of each size in `q_bits` and then `p_bits`
/// (the ciphertext and special primes of a modulus chain). Each size takes the largest
/// unused prime below 2^bits, so a chain is a deterministic function of its sizes.
pub fn ntt_prime_chain(
    n: usize,
    q_bits: &[u32],
    p_bits: &[u32],
) -> Result<(Vec<u64>, Vec<u64>), MathError> {
    let mut taken: Vec<u64> = Vec::with_capacity(q_bits.len() + p_bits.len());
    for &bits in q_bits.iter().chain(p_bits) {
        let p = ntt_primes(bits, n, 1, &taken)?[0];
        taken.push(p);
    }
    let p = taken.split_off(q_bits.len());
    Ok((taken, p))
}

/// A primitive `order`-th root of unity modulo the prime `q` (order a power of two dividing q−1).
/// Returns the smallest one, so the choice is deterministic.
pub fn primitive_root_of_unity(q: &Modulus, order: u64) -> Result<u64, MathError> {
    let qv = q.value();
    if !order.is_power_of_two() || !(qv - 1).is_multiple_of(order) {
        return Err(MathError::NoRootOfUnity { q: qv, order });
    }
    let cofactor = (qv - 1) / order;
    let mut best: Option<u64> = None;
    for g in 2..qv.min(1 << 20) {
        let root = q.pow(g, cofactor);
        // Primitive iff root^(order/2) = -1.
        if q.pow(root, order / 2) == qv - 1 {
            // Pick the smallest primitive root among all powers root^(odd) for determinism.
            let mut r = root;
            let r2 = q.mul(root, root);
            let mut smallest = root;
            for _ in 0..order / 2 {
                smallest = smallest.min(r);
                r = q.mul(r, r2);
            }
            best = Some(smallest);
            break;
        }
    }
    best.ok_or(MathError::NoRootOfUnity { q: qv, order })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn miller_rabin_matches_trial_division() {
        let trial = |n: u64| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        for n in 0..20_000u64 {
            assert_eq!(is_prime(n), trial(n), "n = {n}");
        }
        assert!(is_prime((1 << 61) - 1));
        assert!(!is_prime(3_215_031_751)); // strong pseudoprime to bases 2, 3, 5, 7
    }

    #[test]
    fn primes_are_ntt_friendly() {
        for (bits, n) in [(30, 1 << 12), (50, 1 << 16), (60, 1 << 13), (62, 1 << 16)] {
            let ps = ntt_primes(bits, n, 4, &[]).unwrap();
            for &p in &ps {
                assert!(is_prime(p));
                assert_eq!(p % (2 * n as u64), 1);
                assert_eq!(64 - p.leading_zeros(), bits);
            }
            let more = ntt_primes(bits, n, 2, &ps).unwrap();
            assert!(more.iter().all(|p| !ps.contains(p)));
        }
    }

    #[test]
    fn roots_are_primitive() {
        let q = Modulus::new(ntt_primes(50, 1 << 13, 1, &[]).unwrap()[0]).unwrap();
        let psi = primitive_root_of_unity(&q, 1 << 14).unwrap();
        assert_eq!(q.pow(psi, 1 << 14), 1);
        assert_eq!(q.pow(psi, 1 << 13), q.value() - 1);
    }
}
