//! helora-engine: models, the client and server roles and the `helora` command on top of
//! the `helora` HE crate.
//!
//! Modules, each using only those listed before it (and `helora`'s public API):
//! - [`files`], [`stats`], [`progress`], [`switch`], [`chart`]: input-path checks, summary
//!   statistics, progress bars, an on/off flag, what every chart shares;
//! - [`device`]: where the base model runs (`--device`);
//! - [`model`]: configs, weights (GGUF, Hugging Face), tokenizer, forward passes with a
//!   LoRA hook at every input site;
//! - [`adapter`]: PEFT LoRA adapters; [`demo`]: the demo adapter and its question;
//! - [`plain_lora`], [`secure`]: the hooks of the `lora` and `secure` modes; `secure` holds
//!   the client and server roles;
//! - [`serve`]: `helora serve` (the server over gRPC, its durable state) and the remote
//!   client (a `secure::Serve` over the network);
//! - [`generate`]: the `generate` command;
//! - [`attack`], [`bench`]: the measurements (they use the product, never the reverse);
//! - [`cli`]: arguments and dispatch.

pub mod adapter;
pub mod attack;
pub mod bench;
pub mod chart;
pub mod cli;
pub mod demo;
pub mod device;
pub mod files;
pub mod generate;
pub mod model;
pub mod plain_lora;
pub mod progress;
pub mod secure;
pub mod serve;
pub mod stats;
pub mod switch;
