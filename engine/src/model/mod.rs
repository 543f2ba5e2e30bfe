//! Base models: configuration, weights from GGUF files or Hugging Face directories, the
//! tokenizer and chat template, and the forward pass with a hook at every adapted
//! projection (where the LoRA delta, in plaintext or encrypted, is added).

mod attention;
pub mod cache;
pub mod chatglm;
pub mod config;
pub mod forward;
pub mod hook;
mod layer;
mod linear;
pub mod llama;
pub mod presets;
mod rope;
pub mod sampling;
pub mod weights;

pub use cache::KvCache;
pub use config::{Architecture, ModelConfig};
pub use forward::Model;
pub use hook::{input_sites, InputSite, LoraHook, NoHook};
pub use sampling::Sampler;
pub use weights::ModelWeights;
