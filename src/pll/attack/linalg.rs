//! Small dense linear algebra for the extraction analysis, row-major f64: a blocked
//! matrix product on the worker pool, blocked Cholesky and triangular solves (normal equations up
//! to d = 4096 in about a minute), Jacobi eigenvalues of small symmetric matrices, and the
//! best rank-r approximation by subspace iteration.

use rayon::prelude::*;

/// A dense row-major matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Mat {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f64>,
}

impl Mat {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f64] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn transpose(&self) -> Self {
        let mut t = Self::zeros(self.cols, self.rows);
        const B: usize = 32;
        for i0 in (0..self.rows).step_by(B) {
            for j0 in (0..self.cols).step_by(B) {
                for i in i0..(i0 + B).min(self.rows) {
                    for j in j0..(j0 + B).min(self.cols) {
                        t.data[j * self.rows + i] = self.data[i * self.cols + j];
                    }
                }
            }
        }
        t
    }

    /// self · other.
    pub fn mul(&self, other: &Mat) -> Mat {
        let mut c = Mat::zeros(self.rows, other.cols);
        gemm(
            Dims {
                m: self.rows,
                n: other.cols,
                k: self.cols,
            },
            1.0,
            (&self.data, self.cols),
            (&other.data, other.cols),
            (&mut c.data, other.cols),
        );
        c
    }

    pub fn frobenius(&self) -> f64 {
        self.data.iter().map(|v| v * v).sum::<f64>().sqrt()
    }
}

/// Shape of a product C (m × n) += A (m × k) · B (k × n).
#[derive(Clone, Copy)]
pub(crate) struct Dims {
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// Below this many multiply-adds a product runs on one thread.
const PARALLEL_WORK: usize = 1 << 22;

/// C += alpha·A·B; each operand is (data, leading dimension).
pub(crate) fn gemm(
    dims: Dims,
    alpha: f64,
    a: (&[f64], usize),
    b: (&[f64], usize),
    c: (&mut [f64], usize),
) {
    let Dims { m, n, k } = dims;
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    if threads < 2 || m * n * k < PARALLEL_WORK || m < 8 {
        gemm_serial(dims, alpha, a, b, c);
        return;
    }
    // Row blocks of C (multiples of 4 rows), one task each on the worker pool.
    let per = m.div_ceil(threads).div_ceil(4) * 4;
    let (c_data, ldc) = c;
    let blocks: Vec<(usize, &mut [f64])> = c_data
        .chunks_mut(per * ldc)
        .enumerate()
        .map(|(i, block)| (i * per, block))
        .take_while(|&(row, _)| row < m)
        .collect();
    blocks.into_par_iter().for_each(|(row, block)| {
        let rows = per.min(m - row);
        let sub = Dims { m: rows, n, k };
        gemm_serial(sub, alpha, (&a.0[row * a.1..], a.1), b, (block, ldc));
    });
}

fn gemm_serial(
    dims: Dims,
    alpha: f64,
    (a, lda): (&[f64], usize),
    (b, ldb): (&[f64], usize),
    (c, ldc): (&mut [f64], usize),
) {
    // Blocks of B that stay in L2; four rows of C share each row of B (register reuse).
    const KB: usize = 128;
    const NB: usize = 512;
    let Dims { m, n, k } = dims;
    for k0 in (0..k).step_by(KB) {
        let k1 = (k0 + KB).min(k);
        for j0 in (0..n).step_by(NB) {
            let j1 = (j0 + NB).min(n);
            let mut i = 0;
            while i + 4 <= m {
                let block = &mut c[i * ldc..(i + 3) * ldc + j1];
                let (r0, rest) = block.split_at_mut(ldc);
                let (r1, rest) = rest.split_at_mut(ldc);
                let (r2, r3) = rest.split_at_mut(ldc);
                let (c0, c1, c2, c3) = (
                    &mut r0[j0..j1],
                    &mut r1[j0..j1],
                    &mut r2[j0..j1],
                    &mut r3[j0..j1],
                );
                for kk in k0..k1 {
                    let brow = &b[kk * ldb + j0..kk * ldb + j1];
                    let a0 = alpha * a[i * lda + kk];
                    let a1 = alpha * a[(i + 1) * lda + kk];
                    let a2 = alpha * a[(i + 2) * lda + kk];
                    let a3 = alpha * a[(i + 3) * lda + kk];
                    for ((((x0, x1), x2), x3), &bv) in c0
                        .iter_mut()
                        .zip(c1.iter_mut())
                        .zip(c2.iter_mut())
                        .zip(c3.iter_mut())
                        .zip(brow)
                    {
                        *x0 += a0 * bv;
                        *x1 += a1 * bv;
                        *x2 += a2 * bv;
                        *x3 += a3 * bv;
                    }
                }
                i += 4;
            }
            for i in i..m {
                let crow = &mut c[i * ldc + j0..i * ldc + j1];
                for kk in k0..k1 {
                    let av = alpha * a[i * lda + kk];
                    let brow = &b[kk * ldb + j0..kk * ldb + j1];
                    crow.iter_mut().zip(brow).for_each(|(x, &bv)| *x += av * bv);
                }
            }
        }
    }
}

/// Cholesky block size.
const NB: usize = 64;

/// In place: the lower triangle of the symmetric positive definite `g` becomes L with
/// g = L·Lᵀ (the upper triangle is left as scratch). Err(j): pivot j is not positive.
pub fn cholesky(g: &mut Mat) -> Result<(), usize> {
    let n = g.rows;
    for k0 in (0..n).step_by(NB) {
        let k1 = (k0 + NB).min(n);
        // Columns k0..k1, already updated by every earlier block.
        for j in k0..k1 {
            let row_j = &g.data[j * n..j * n + n];
            let d = row_j[j] - row_j[k0..j].iter().map(|v| v * v).sum::<f64>();
            if !(d > 0.0 && d.is_finite()) {
                return Err(j);
            }
            let ljj = d.sqrt();
            g.data[j * n + j] = ljj;
            for i in j + 1..n {
                let (head, tail) = g.data.split_at_mut(i * n);
                let row_j = &head[j * n..j * n + n];
                let row_i = &mut tail[..n];
                let dot: f64 = row_i[k0..j]
                    .iter()
                    .zip(&row_j[k0..j])
                    .map(|(x, y)| x * y)
                    .sum();
                row_i[j] = (row_i[j] - dot) / ljj;
            }
        }
        // Trailing update G[k1.., k1..] −= P·Pᵀ, P = L[k1.., k0..k1].
        if k1 < n {
            let rows = n - k1;
            let width = k1 - k0;
            let mut panel = Mat::zeros(rows, width);
            for i in 0..rows {
                panel
                    .row_mut(i)
                    .copy_from_slice(&g.data[(k1 + i) * n + k0..(k1 + i) * n + k1]);
            }
            let panel_t = panel.transpose();
            gemm(
                Dims {
                    m: rows,
                    n: rows,
                    k: width,
                },
                -1.0,
                (&panel.data, width),
                (&panel_t.data, rows),
                (&mut g.data[k1 * n + k1..], n),
            );
        }
    }
    Ok(())
}

/// Solves L·Lᵀ·X = R in place of `rhs` (n × m), L from [`cholesky`].
pub fn cholesky_solve(l: &Mat, rhs: &mut Mat) {
    let n = l.rows;
    let m = rhs.cols;
    // Forward: L·Z = R.
    for b0 in (0..n).step_by(NB) {
        let b1 = (b0 + NB).min(n);
        let (done, todo) = rhs.data.split_at_mut(b0 * m);
        gemm(
            Dims {
                m: b1 - b0,
                n: m,
                k: b0,
            },
            -1.0,
            (&l.data[b0 * n..], n),
            (done, m),
            (todo, m),
        );
        for i in b0..b1 {
            let (above, below) = rhs.data.split_at_mut(i * m);
            let row_i = &mut below[..m];
            for p in b0..i {
                let f = l.data[i * n + p];
                row_i
                    .iter_mut()
                    .zip(&above[p * m..p * m + m])
                    .for_each(|(x, &y)| *x -= f * y);
            }
            let d = l.data[i * n + i];
            row_i.iter_mut().for_each(|x| *x /= d);
        }
    }
    // Backward: Lᵀ·X = Z.
    let starts: Vec<usize> = (0..n).step_by(NB).collect();
    for &b0 in starts.iter().rev() {
        let b1 = (b0 + NB).min(n);
        if b1 < n {
            let mut lt = Mat::zeros(b1 - b0, n - b1);
            for p in b1..n {
                for (j, i) in (b0..b1).enumerate() {
                    lt.data[j * (n - b1) + (p - b1)] = l.data[p * n + i];
                }
            }
            let (head, solved) = rhs.data.split_at_mut(b1 * m);
            gemm(
                Dims {
                    m: b1 - b0,
                    n: m,
                    k: n - b1,
                },
                -1.0,
                (&lt.data, n - b1),
                (solved, m),
                (&mut head[b0 * m..], m),
            );
        }
        for i in (b0..b1).rev() {
            let (head, below) = rhs.data.split_at_mut((i + 1) * m);
            let row_i = &mut head[i * m..];
            for p in i + 1..b1 {
                let f = l.data[p * n + i];
                row_i
                    .iter_mut()
                    .zip(&below[(p - i - 1) * m..(p - i) * m])
                    .for_each(|(x, &y)| *x -= f * y);
            }
            let d = l.data[i * n + i];
            row_i.iter_mut().for_each(|x| *x /= d);
        }
    }
}

/// Eigenvalues of a small symmetric n × n matrix (cyclic Jacobi), unordered.
pub(crate) fn symmetric_eigenvalues(mut a: Vec<f64>, n: usize) -> Vec<f64> {
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag.max(f64::MIN_POSITIVE) {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
            }
        }
    }
    (0..n).map(|i| a[i * n + i]).collect()
}

/// Orthonormalises the vectors in place (modified Gram–Schmidt, twice for stability).
fn orthonormalize(vectors: &mut [Vec<f64>]) {
    for _ in 0..2 {
        for k in 0..vectors.len() {
            let (done, rest) = vectors.split_at_mut(k);
            let v = &mut rest[0];
            for u in done.iter() {
                let dot: f64 = v.iter().zip(u).map(|(x, y)| x * y).sum();
                v.iter_mut().zip(u).for_each(|(x, &y)| *x -= dot * y);
            }
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
    }
}

/// The best rank-`rank` approximation of `w` (projection on its top left singular
/// vectors), by subspace iteration from the deterministic start `seed_vectors`.
pub fn low_rank_approximation(w: &Mat, rank: usize, iterations: usize) -> Mat {
    let rank = rank.min(w.rows).min(w.cols).max(1);
    // Start: rank vectors of length cols, a fixed pseudo-random pattern.
    let mut v: Vec<Vec<f64>> = (0..rank)
        .map(|k| {
            (0..w.cols)
                .map(|j| (((j * 7919 + k * 104_729) % 1009) as f64) / 1009.0 - 0.5)
                .collect()
        })
        .collect();
    let mut u: Vec<Vec<f64>> = vec![vec![0.0; w.rows]; rank];
    for _ in 0..iterations.max(1) {
        orthonormalize(&mut v);
        // u_k = W·v_k
        for (uk, vk) in u.iter_mut().zip(&v) {
            for (i, x) in uk.iter_mut().enumerate() {
                *x = w.row(i).iter().zip(vk).map(|(a, b)| a * b).sum();
            }
        }
        orthonormalize(&mut u);
        // v_k = Wᵀ·u_k
        for (vk, uk) in v.iter_mut().zip(&u) {
            vk.iter_mut().for_each(|x| *x = 0.0);
            for (i, &f) in uk.iter().enumerate() {
                vk.iter_mut().zip(w.row(i)).for_each(|(x, &a)| *x += f * a);
            }
        }
    }
    // W_r = Σ_k u_k·(Wᵀ u_k)ᵀ, with v_k = Wᵀ u_k from the last pass.
    let mut out = Mat::zeros(w.rows, w.cols);
    for (uk, vk) in u.iter().zip(&v) {
        for (i, &f) in uk.iter().enumerate() {
            out.row_mut(i)
                .iter_mut()
                .zip(vk)
                .for_each(|(x, &b)| *x += f * b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::sampling::{os_rng, standard_normal};

    fn random(rows: usize, cols: usize) -> Mat {
        let mut rng = os_rng().unwrap();
        Mat {
            rows,
            cols,
            data: (0..rows * cols)
                .map(|_| standard_normal(&mut rng))
                .collect(),
        }
    }

    fn naive_mul(a: &Mat, b: &Mat) -> Mat {
        let mut c = Mat::zeros(a.rows, b.cols);
        for i in 0..a.rows {
            for j in 0..b.cols {
                c.data[i * b.cols + j] = (0..a.cols).map(|k| a.row(i)[k] * b.row(k)[j]).sum();
            }
        }
        c
    }

    fn max_diff(a: &Mat, b: &Mat) -> f64 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
    }

    #[test]
    fn product_matches_the_naive_one_for_odd_shapes() {
        for &(m, k, n) in &[(1, 1, 1), (7, 130, 9), (203, 517, 66), (64, 64, 600)] {
            let (a, b) = (random(m, k), random(k, n));
            assert!(
                max_diff(&a.mul(&b), &naive_mul(&a, &b)) < 1e-10,
                "{m}×{k}×{n}"
            );
        }
    }

    #[test]
    fn cholesky_solves_normal_equations() {
        for &n in &[1usize, 5, 64, 150] {
            let x = random(n + 20, n);
            let mut g = x.transpose().mul(&x);
            let want = random(n, 3);
            let mut rhs = g.mul(&want);
            cholesky(&mut g).unwrap();
            cholesky_solve(&g, &mut rhs);
            assert!(max_diff(&rhs, &want) < 1e-8, "n = {n}");
        }
        let mut singular = Mat::zeros(3, 3);
        assert_eq!(cholesky(&mut singular), Err(0));
    }

    #[test]
    fn jacobi_finds_the_eigenvalues() {
        let mut ev = symmetric_eigenvalues(vec![2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0], 3);
        ev.sort_by(f64::total_cmp);
        for (got, want) in ev.iter().zip([1.0, 3.0, 5.0]) {
            assert!((got - want).abs() < 1e-12);
        }
    }

    #[test]
    fn low_rank_approximation_recovers_a_low_rank_matrix() {
        let w = random(80, 3).mul(&random(3, 60));
        let approx = low_rank_approximation(&w, 3, 30);
        assert!(max_diff(&approx, &w) < 1e-9);
    }
}
