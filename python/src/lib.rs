//! `helora._native`: the Python bindings over the engine's client role (and, for timing
//! from Python, the HE steps of one LoRA projection). A thin layer: every operation is the
//! engine's (`SecureClient`, `SecureServer`, `RemoteServer`); this crate converts arrays and
//! errors. The Python package (`python/helora/`) builds the torch integration on top.

mod arrays;
mod client;
mod error;
mod he;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HeloraError", m.py().get_type::<error::HeloraError>())?;
    m.add_class::<client::Client>()?;
    m.add_class::<he::Server>()?;
    m.add_class::<he::Client>()?;
    m.add_class::<he::KeyUpload>()?;
    m.add_class::<he::Request>()?;
    m.add_class::<he::Reply>()?;
    m.add_function(wrap_pyfunction!(he::parameters, m)?)?;
    m.add_function(wrap_pyfunction!(he::keygen, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
