//! `helora bench`: timings of the HE core on this machine.

pub mod keys;
pub mod lora;
pub mod machine;
pub mod ops;
pub mod plaintext;
pub mod report;
pub mod timing;
pub mod token;
