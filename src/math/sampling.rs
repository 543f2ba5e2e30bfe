//! Randomness for key generation and encryption: ChaCha20 streams, AES-128-CTR for the
//! bulk private noise and for the `a` half of a seeded ciphertext (regenerated from 32
//! bytes by both sides), uniform residues, ternary secrets and discrete Gaussian errors.

use rand::SeedableRng;
pub use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use std::sync::OnceLock;

/// Standard deviation of the error distribution (the HE standard's value).
pub const ERROR_STD_DEV: f64 = 3.2;
/// Errors are cut at ~6σ; larger values have probability below 2^-26 each.
const ERROR_BOUND: usize = 20;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct EntropyError(String);

/// A fresh 32-byte seed from the operating system.
pub fn os_seed() -> Result<[u8; 32], EntropyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| EntropyError(e.to_string()))?;
    Ok(seed)
}

/// A ChaCha20 generator seeded from the operating system.
pub fn os_rng() -> Result<ChaCha20Rng, EntropyError> {
    Ok(ChaCha20Rng::from_seed(os_seed()?))
}

/// The generator for bulk private randomness (errors, masks, flooding, perturbations).
pub type NoiseRng = super::AesCtrRng;

/// A [`NoiseRng`] seeded from the operating system.
pub fn os_noise_rng() -> Result<NoiseRng, EntropyError> {
    Ok(NoiseRng::from_seed(os_seed()?))
}

/// The public stream that expands a seeded ciphertext's `a` (format version 2: AES-128-CTR,
/// see docs/format.md).
pub fn expansion_rng(seed: [u8; 32]) -> super::AesCtrRng {
    super::AesCtrRng::from_seed(seed)
}

/// The deterministic stream for a public seed (both sides derive the same values).
pub fn seeded_rng(seed: [u8; 32]) -> ChaCha20Rng {
    ChaCha20Rng::from_seed(seed)
}

/// A generator of type `G` seeded from `rng`'s output: an independent stream for a worker
/// thread, drawn from the caller's.
pub fn fork<G: SeedableRng<Seed = [u8; 32]>>(rng: &mut impl RngCore) -> G {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    G::from_seed(seed)
}

/// Uniform value in `[0, q)` by rejection (no modulo bias).
#[inline]
pub fn uniform_below<R: RngCore>(rng: &mut R, q: u64) -> u64 {
    let mask = u64::MAX >> q.leading_zeros();
    loop {
        let v = rng.next_u64() & mask;
        if v < q {
            return v;
        }
    }
}

/// `n` coefficients uniform in {-1, 0, 1}.
pub fn ternary<R: RngCore>(rng: &mut R, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut bytes = [0u8; 64];
        rng.fill_bytes(&mut bytes);
        // 255 = 3·85 values map evenly onto three classes; reject the last one.
        out.extend(
            bytes
                .iter()
                .filter(|&&b| b < 255)
                .map(|&b| (b % 3) as i64 - 1)
                .take(n - out.len()),
        );
    }
    out
}

/// Cumulative distribution of |x| for the rounded Gaussian, scaled to 2^64.
fn gaussian_cdt(sigma: f64) -> [u64; ERROR_BOUND + 1] {
    let weight = |x: usize| (-((x * x) as f64) / (2.0 * sigma * sigma)).exp();
    let total: f64 = weight(0) + 2.0 * (1..=ERROR_BOUND).map(weight).sum::<f64>();
    let mut cdt = [0u64; ERROR_BOUND + 1];
    let mut acc = 0.0;
    for (x, slot) in cdt.iter_mut().enumerate() {
        acc += if x == 0 { weight(0) } else { 2.0 * weight(x) } / total;
        *slot = if x == ERROR_BOUND {
            u64::MAX
        } else {
            (acc * 2f64.powi(64)).min(u64::MAX as f64) as u64
        };
    }
    cdt
}

/// The magnitude a uniform `u` draws from the table: the index of the first entry above
/// `u`, counted without branches (the table is increasing), so its time does not depend
/// on the secret sample.
#[inline]
fn cdt_magnitude(cdt: &[u64; ERROR_BOUND + 1], u: u64) -> i64 {
    cdt[..ERROR_BOUND].iter().map(|&c| (c <= u) as i64).sum()
}

/// `n` discrete Gaussian samples with standard deviation [`ERROR_STD_DEV`].
pub fn gaussian<R: RngCore>(rng: &mut R, n: usize) -> Vec<i64> {
    // Built once: every encryption draws from it several times.
    static CDT: OnceLock<[u64; ERROR_BOUND + 1]> = OnceLock::new();
    let cdt = CDT.get_or_init(|| gaussian_cdt(ERROR_STD_DEV));
    let mut out = Vec::with_capacity(n);
    // Signs come 64 to a draw (a sign of 0 is harmless).
    let mut signs = 0u64;
    for i in 0..n {
        if i % 64 == 0 {
            signs = rng.next_u64();
        }
        let magnitude = cdt_magnitude(cdt, rng.next_u64());
        let negative = (signs & 1) as i64;
        signs >>= 1;
        // −magnitude when negative, without a branch on a random bit.
        out.push((magnitude ^ -negative) + negative);
    }
    out
}

/// A uniform f64 in [0, 1) with 53 random bits.
pub fn uniform_unit<R: RngCore>(rng: &mut R) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A standard normal f64 (ziggurat), for noise that is not a lattice error: the LoRA
/// perturbation and the flooding term.
pub fn standard_normal<R: RngCore>(rng: &mut R) -> f64 {
    super::ziggurat::standard_normal(rng)
}

/// `n` samples of round(N(0, std²)): wide Gaussian noise for smudging (std up to ~2^56).
pub fn rounded_gaussian<R: RngCore>(rng: &mut R, std: f64, n: usize) -> Vec<i64> {
    // Adding and subtracting 1.5·2^52 rounds to the nearest integer below 2^51 without
    // a libm call; larger values (never at the PLL's sizes) take round().
    const ROUNDER: f64 = 6_755_399_441_055_744.0;
    let mut values = vec![0.0; n];
    super::ziggurat::fill_standard_normal(rng, &mut values);
    values
        .iter()
        .map(|&z| {
            let v = std * z;
            if v.abs() < (1u64 << 51) as f64 {
                ((v + ROUNDER) - ROUNDER) as i64
            } else {
                v.round() as i64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sampler's branch-free count is the index of the first CDT entry above u, at
    /// every edge.
    #[test]
    fn cdt_count_is_the_first_entry_above() {
        let cdt = gaussian_cdt(ERROR_STD_DEV);
        let edges = cdt
            .iter()
            .flat_map(|&c| [c.wrapping_sub(1), c, c.wrapping_add(1)])
            .chain([0, u64::MAX]);
        for u in edges {
            let first_above = cdt.iter().position(|&c| u < c).unwrap_or(ERROR_BOUND);
            assert_eq!(cdt_magnitude(&cdt, u), first_above as i64, "u = {u}");
        }
    }

    #[test]
    fn gaussian_has_the_stated_moments() {
        let mut rng = os_rng().unwrap();
        let xs = gaussian(&mut rng, 200_000);
        let mean = xs.iter().sum::<i64>() as f64 / xs.len() as f64;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(
            (var.sqrt() - ERROR_STD_DEV).abs() < 0.05,
            "std {}",
            var.sqrt()
        );
        assert!(xs.iter().all(|x| x.unsigned_abs() as usize <= ERROR_BOUND));
    }

    #[test]
    fn standard_normal_has_unit_moments() {
        let mut rng = os_rng().unwrap();
        let xs: Vec<f64> = (0..200_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn rounded_gaussian_has_the_asked_std() {
        let mut rng = os_rng().unwrap();
        let xs = rounded_gaussian(&mut rng, 1e6, 100_001);
        assert_eq!(xs.len(), 100_001);
        let var = xs.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!((var.sqrt() / 1e6 - 1.0).abs() < 0.02, "std {}", var.sqrt());
    }

    #[test]
    fn ternary_is_balanced() {
        let mut rng = os_rng().unwrap();
        let xs = ternary(&mut rng, 300_000);
        for v in -1..=1 {
            let share = xs.iter().filter(|&&x| x == v).count() as f64 / xs.len() as f64;
            assert!((share - 1.0 / 3.0).abs() < 0.01, "share of {v}: {share}");
        }
    }

    #[test]
    fn uniform_is_in_range_and_seeded_streams_repeat() {
        let q = (1u64 << 50) - 27;
        let mut a = seeded_rng([7; 32]);
        let mut b = seeded_rng([7; 32]);
        for _ in 0..1000 {
            let x = uniform_below(&mut a, q);
            assert!(x < q);
            assert_eq!(x, uniform_below(&mut b, q));
        }
    }
}
