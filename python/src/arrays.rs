//! NumPy arrays in and out: activations arrive as `[tokens, d_in]` float32 arrays, deltas
//! leave as `[tokens, d_out]` float32 arrays.

use crate::error::helora_error;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

/// `x` as a 2-D float32 array, or a `HeloraError` naming what was expected.
pub fn matrix_arg<'py>(x: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray2<'py, f32>> {
    x.extract().map_err(|_| {
        helora_error(format!(
            "{what} must be a 2-D numpy array of float32, got {}",
            describe(x)
        ))
    })
}

/// `x` as a 1-D float32 array, or a `HeloraError` naming what was expected.
pub fn vector_arg<'py>(x: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArray1<'py, f32>> {
    x.extract().map_err(|_| {
        helora_error(format!(
            "{what} must be a 1-D numpy array of float32, got {}",
            describe(x)
        ))
    })
}

/// The type of `x`, with its dtype and shape for an array.
fn describe(x: &Bound<'_, PyAny>) -> String {
    let kind = x
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "an object".into());
    match (x.getattr("dtype"), x.getattr("shape")) {
        (Ok(dtype), Ok(shape)) => format!("{kind} of {dtype} with shape {shape}"),
        _ => kind,
    }
}

/// The rows of `x` (any memory layout), checked to have `d_in` columns.
pub fn rows_of(x: &PyReadonlyArray2<'_, f32>, d_in: usize, what: &str) -> PyResult<Vec<Vec<f32>>> {
    let x = x.as_array();
    if x.ncols() != d_in {
        return Err(helora_error(format!(
            "{what} takes {d_in} inputs per token; the array has {} columns",
            x.ncols()
        )));
    }
    Ok(x.rows().into_iter().map(|row| row.to_vec()).collect())
}

/// `values` (tokens × d_out, row after row) as a `[tokens, d_out]` array.
pub fn matrix<'py>(
    py: Python<'py>,
    values: Vec<f32>,
    tokens: usize,
    d_out: usize,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let array = Array2::from_shape_vec((tokens, d_out), values)
        .map_err(|e| helora_error(format!("a delta of the wrong size: {e}")))?;
    Ok(array.into_pyarray(py))
}
