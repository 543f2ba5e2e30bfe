//! The emulated device's memory.
pub mod heap;
