//! Galois elements of the slot permutations: X → X^(5^k) rotates the slot vector left by
//! k, X → X^(2N-1) conjugates every slot (the encoder's slot order is built on this).

/// The Galois element rotating slots left by `step` (negative steps rotate right).
pub fn rotation_element(step: i64, n: usize) -> u64 {
    let two_n = 2 * n as u64;
    let slots = (n / 2) as i64;
    // 5 has order N/2 modulo 2N, so steps wrap at the slot count.
    let k = step.rem_euclid(slots) as u64;
    let mut acc = 1u64;
    let mut base = 5u64;
    let mut e = k;
    while e > 0 {
        if e & 1 == 1 {
            acc = acc * base % two_n;
        }
        base = base * base % two_n;
        e >>= 1;
    }
    acc
}

/// The Galois element of complex conjugation.
pub fn conjugation_element(n: usize) -> u64 {
    2 * n as u64 - 1
}

/// The distinct Galois elements needing keys for `rotations` (and conjugation if asked),
/// in first-seen order; rotations that are the identity need none.
pub fn galois_elements(rotations: &[i64], conjugation: bool, n: usize) -> Vec<u64> {
    let mut elements = Vec::new();
    for g in rotations
        .iter()
        .map(|&k| rotation_element(k, n))
        .chain(conjugation.then(|| conjugation_element(n)))
    {
        if g != 1 && !elements.contains(&g) {
            elements.push(g);
        }
    }
    elements
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_elements_compose() {
        let n = 1 << 12;
        let two_n = 2 * n as u64;
        assert_eq!(rotation_element(0, n), 1);
        assert_eq!(rotation_element(1, n), 5);
        for (a, b) in [(3, 7), (-5, 5), (100, -37), (2047, 1)] {
            assert_eq!(
                rotation_element(a, n) * rotation_element(b, n) % two_n,
                rotation_element(a + b, n)
            );
        }
        assert_eq!(rotation_element(n as i64 / 2, n), 1);
        for log_n in 10..=17 {
            let n = 1usize << log_n;
            for step in [1i64, 3, 17] {
                let g = rotation_element(step, n);
                assert_eq!(
                    g * rotation_element(-step, n) % (2 * n as u64),
                    1,
                    "inverse rotation"
                );
            }
            assert_eq!(conjugation_element(n), 2 * n as u64 - 1);
        }
    }
}
