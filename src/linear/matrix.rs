//! A dense row-major f64 matrix: the shape in which LoRA factors reach the plan.

use super::LinearError;

#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// Wraps row-major data; every value must be finite.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self, LinearError> {
        if rows == 0 || cols == 0 || rows.checked_mul(cols) != Some(data.len()) {
            return Err(LinearError::Shape(format!(
                "{} values do not form a {rows}×{cols} matrix",
                data.len()
            )));
        }
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(LinearError::Shape(format!(
                "entry ({}, {}) is not finite",
                i / cols,
                i % cols
            )));
        }
        Ok(Self { rows, cols, data })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    #[inline]
    pub fn get(&self, row: usize, col: usize) -> f64 {
        self.data[row * self.cols + col]
    }

    /// Entry (row, col), or 0 outside the matrix (the zero padding of the plan's layouts).
    #[inline]
    pub fn get_padded(&self, row: usize, col: usize) -> f64 {
        if row < self.rows && col < self.cols {
            self.get(row, col)
        } else {
            0.0
        }
    }

    /// ‖M‖_F.
    pub fn frobenius_norm(&self) -> f64 {
        self.data.iter().map(|v| v * v).sum::<f64>().sqrt()
    }

    /// 2^exponent·M: exact in floating point (barring overflow to infinity, refused).
    pub fn scaled_by_power_of_two(&self, exponent: i32) -> Result<Matrix, LinearError> {
        let factor = 2f64.powi(exponent);
        Matrix::new(
            self.rows,
            self.cols,
            self.data.iter().map(|v| v * factor).collect(),
        )
    }

    /// x·M for a row vector x.
    pub fn left_multiply(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0.0; self.cols];
        for (row, &xi) in self.data.chunks_exact(self.cols).zip(x) {
            for (o, &m) in out.iter_mut().zip(row) {
                *o += xi * m;
            }
        }
        out
    }
}
