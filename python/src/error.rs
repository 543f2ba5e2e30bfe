//! helora's one Python exception type: every engine error reaches Python as a
//! `helora.HeloraError` carrying the engine's message with its context chain.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    helora,
    HeloraError,
    PyException,
    "An error from helora: bad input, a refused request, a broken connection."
);

/// The engine's error, as `HeloraError` with the whole context chain in its message.
pub fn to_py(e: anyhow::Error) -> PyErr {
    HeloraError::new_err(format!("{e:#}"))
}

/// A `HeloraError` with `message`.
pub fn helora_error(message: impl Into<String>) -> PyErr {
    HeloraError::new_err(message.into())
}
