//! CKKS: encoding of complex/real vectors into ring elements (more to come).

mod complex;
mod encoder;

pub use complex::Complex;
pub use encoder::*;
