//! Ciphertext × plaintext products for low-rank layers: LoRA plans.

mod layout;
mod lora;
mod matrix;
mod random;
mod reply;

pub use layout::{InputLayout, OutputLayout};
pub use lora::{GroupOutput, LoraGroup, LoraPlan, OpCounts, OutputDiagonals, MAX_RANK};
pub use matrix::Matrix;
pub use random::random_lora_factors;
pub use reply::reply_widths;

use crate::ckks::{CkksError, EncodeError};

#[derive(Debug, thiserror::Error)]
pub enum LinearError {
    #[error("shape: {0}")]
    Shape(String),
    #[error("level {level} is not usable here (plan levels go up to {max}, and a plan needs 2)")]
    Level { level: usize, max: usize },
    #[error(transparent)]
    Ckks(#[from] CkksError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
