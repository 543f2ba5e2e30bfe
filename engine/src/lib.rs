//! helora-engine: the `helora` command and, later, models, client/server roles and the
//! scheduler on top of the `helora` HE core.

pub mod adapter;
pub mod attack;
pub mod bench;
pub mod cli;
pub mod device;
pub mod files;
pub mod generate;
pub mod model;
pub mod plain_lora;
pub mod progress;
pub mod secure;
