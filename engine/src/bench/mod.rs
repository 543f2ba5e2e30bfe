//! `helora bench`: timings of the HE core on this machine.

pub mod clock;
pub mod cuda;
pub mod device_lora;
pub mod device_ops;
pub mod device_report;
pub mod floor;
pub mod full_model;
pub mod hardware;
pub mod keys;
pub mod lora;
pub mod machine;
pub mod ops;
pub mod plaintext;
pub mod plot;
pub mod provenance;
pub mod published;
pub mod random_model;
pub mod report;
pub mod series;
pub mod sweep;
pub mod timing;
pub mod token;
