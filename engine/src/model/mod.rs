//! Base models: configuration, weights from GGUF files or Hugging Face directories, the
//! tokenizer and chat template, and the forward pass with a hook at every adapted
//! projection (where the LoRA delta, in plaintext or encrypted, is added).

mod attention;
pub mod cache;
pub mod chat;
pub mod chat_process;
pub mod chatglm;
pub mod config;
pub mod fetch;
pub mod forward;
pub mod gguf;
mod gguf_dtype;
pub mod hf;
pub mod hook;
mod layer;
mod linear;
pub mod llama;
pub mod load;
pub mod names;
pub mod presets;
mod rope;
pub mod sampling;
pub mod tokenizer;
pub mod weights;

pub use cache::KvCache;
pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Architecture, ModelConfig};
pub use forward::Model;
pub use hook::{input_sites, InputSite, LoraHook, NoHook};
pub use load::{load_model, LoadedModel};
pub use sampling::Sampler;
pub use tokenizer::{StreamDecoder, TextTokenizer};
pub use weights::ModelWeights;
