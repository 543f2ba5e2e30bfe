//! `helora bench`: timings of the HE core on this machine.

pub mod cuda;
#[cfg(feature = "cuda")]
mod cuda_lora;
#[cfg(feature = "cuda")]
mod cuda_ops;
pub mod cuda_report;
pub mod floor;
pub mod keys;
pub mod lora;
pub mod machine;
pub mod ops;
pub mod plaintext;
pub mod report;
pub mod timing;
pub mod token;
