//! Keeping every encrypted value inside the modulus: the client divides each input by a
//! power of two sized from a bound the server publishes per projection, and multiplies the
//! decrypted delta back; a decrypted value beyond its bound is a wrap and is refused.
//!
//! With Δ = 2^50 and a 60-bit q_0 (≥ 2^59) the reply holds |y| < q_0/2Δ, at least 2^8 (a
//! wrap adds q_0/Δ ≥ 2^9 to the slots); x·A must stay below 2^58 at level 2 (the floor
//! below keeps it under 2^48). Cauchy–Schwarz
//! bounds every partial sum of the plan: |x·A| ≤ ‖x‖·‖A‖₂ and |x·A·(B + E)|_∞ ≤
//! ‖x‖·‖A‖₂·max_c ‖(B + E)_c‖, with ‖A‖₂² ≤ max_j Σ_k |(AᵀA)_jk| (Gershgorin: about the
//! largest column norm for LoRA's near-orthogonal columns, where ‖A‖_F is √r times more).
//! The server publishes ⌈log2⌉ of g = ‖A‖₂-bound·max(max_c ‖B_c‖ + tail(E), 2^−41) (one
//! power of two per projection is all it reveals of its factors), and the client scales x
//! so that ‖x‖·g ≤ 2^7, a factor 2 below the wrap: scaling is exact in f64 and CKKS is
//! linear, so only the absolute precision changes, in proportion to the bound.

use anyhow::{bail, Result};
use helora::linear::Matrix;

/// The normalised bound ‖x‖·g the client aims at: 2^7, against the wrap at ≥ 2^8.
const TARGET_LOG2: i32 = 7;
/// Standard deviations of the norm of E's column beyond its mean: a chance e^−50 per column
/// that E alone exceeds the bound (then the check below refuses the reply).
const NOISE_TAIL: f64 = 10.0;
/// g's floor: keeps ‖x·A‖ ≤ 2^(7 + 41) where B is (near) zero.
const FLOOR_LOG2: i32 = -41;
/// Decoded values up to this multiple of the bound (plus one) are accepted; a wrap moves a
/// value of at most 2^7 by at least 2^9, beyond 2·2^7 + 1.
const CHECK_FACTOR: f64 = 2.0;

/// The same product A·B with comparable factors: A·2^k and B·2^−k, 2^k ≈ √(‖B‖_F/‖A‖_F).
/// The plan's roundings of x·A are multiplied by B, and so is the circuit's error that the
/// PLL's flood must cover: an adapter whose α/r makes B large (α up to 10⁶) would pay for it
/// in precision. A power of two keeps the product exact, and g below is unchanged.
pub fn balanced(a: &Matrix, b: &Matrix) -> Result<(Matrix, Matrix)> {
    let (na, nb) = (a.frobenius_norm(), b.frobenius_norm());
    if na == 0.0 || nb == 0.0 {
        return Ok((a.clone(), b.clone()));
    }
    let k = (0.5 * (nb / na).log2()).round() as i32;
    Ok((a.scaled_by_power_of_two(k)?, b.scaled_by_power_of_two(-k)?))
}

/// ⌈log2 g⌉ for a projection with factors `a` (d_in × r), `b` (r × d_out, α/r included)
/// whose B is perturbed per query by complex Gaussian entries of std `noise_std` per real
/// component over `rank_padded` rows.
pub fn projection_bound_log2(
    a: &Matrix,
    b: &Matrix,
    noise_std: f64,
    rank_padded: usize,
) -> Result<i32> {
    let a_norm = spectral_bound(a);
    let b_column = (0..b.cols())
        .map(|c| frobenius(b, 0..b.rows(), c..c + 1))
        .fold(0.0, f64::max);
    let noise = noise_std * ((2 * rank_padded) as f64).sqrt() + noise_std * NOISE_TAIL;
    let g = a_norm * (b_column + noise).max(2f64.powi(FLOOR_LOG2));
    if !g.is_finite() {
        bail!("the adapter's factors are too large to bound (‖A‖·‖B‖ is not finite)");
    }
    Ok(g.log2().ceil() as i32)
}

/// An upper bound on A's largest singular value: √(max_j Σ_k |(AᵀA)_jk|).
fn spectral_bound(a: &Matrix) -> f64 {
    let r = a.cols();
    let mut gram = vec![0.0; r * r];
    for i in 0..a.rows() {
        for j in 0..r {
            let aij = a.get(i, j);
            for k in 0..r {
                gram[j * r + k] += aij * a.get(i, k);
            }
        }
    }
    gram.chunks(r.max(1))
        .map(|row| row.iter().map(|g| g.abs()).sum::<f64>())
        .fold(0.0, f64::max)
        .sqrt()
}

fn frobenius(m: &Matrix, rows: std::ops::Range<usize>, cols: std::ops::Range<usize>) -> f64 {
    rows.flat_map(|i| cols.clone().map(move |j| (i, j)))
        .map(|(i, j)| m.get(i, j).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The normalisation of one request's input: x is sent as x·2^−shift, the delta comes
/// back as y·2^−shift, with every decrypted value at most `bound` in magnitude.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputScaling {
    pub shift: u32,
    /// Bound on every decrypted value (normalised units); infinite when unchecked.
    pub bound: f64,
}

impl Default for InputScaling {
    /// No normalisation and no check.
    fn default() -> Self {
        Self {
            shift: 0,
            bound: f64::INFINITY,
        }
    }
}

impl InputScaling {
    /// The scaling for an input `x` sent to projections whose largest published
    /// exponent is `bound_log2`.
    pub fn for_input(x: &[f64], bound_log2: i32) -> Result<Self> {
        let norm = x.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !norm.is_finite() {
            bail!("the input to encrypt is not finite (‖x‖ = {norm})");
        }
        if norm == 0.0 {
            return Ok(Self {
                shift: 0,
                bound: 0.0,
            });
        }
        let log2 = norm.log2().ceil() as i32 + bound_log2;
        let shift = (log2 - TARGET_LOG2).max(0);
        Ok(Self {
            shift: shift as u32,
            bound: 2f64.powi(log2 - shift),
        })
    }

    /// 2^−shift: what the input is multiplied by.
    pub fn input_factor(&self) -> f64 {
        2f64.powi(-(self.shift as i32))
    }

    /// 2^shift: what the decrypted delta is multiplied by.
    pub fn output_factor(&self) -> f64 {
        2f64.powi(self.shift as i32)
    }

    /// Refuses decrypted (normalised) values beyond the bound: only a wrap puts them there.
    pub fn check(&self, decoded: &[f64], layer: usize, module: &str) -> Result<()> {
        let limit = CHECK_FACTOR * self.bound + 1.0;
        let worst = decoded.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        if worst > limit || decoded.iter().any(|v| v.is_nan()) {
            bail!(
                "layer {layer} {module}: a decrypted value ({worst:.3e}) exceeds its bound \
                 ({limit:.3e}): the encrypted result wrapped around the modulus; refusing \
                 a wrong delta"
            );
        }
        Ok(())
    }
}
