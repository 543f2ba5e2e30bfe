//! Base models: configuration, weights from GGUF files or Hugging Face directories, the
//! tokenizer and chat template, and the forward pass with a hook at every adapted
//! projection (where the LoRA delta, in plaintext or encrypted, is added).

pub mod chat;
pub mod config;
pub mod fetch;
pub mod gguf;
pub mod hf;
pub mod hook;
pub mod load;
pub mod names;
pub mod tokenizer;
pub mod weights;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Architecture, ModelConfig};
pub use hook::{InputSite, LoraHook, NoHook};
pub use load::{load_model, LoadedModel};
pub use tokenizer::{StreamDecoder, TextTokenizer};
pub use weights::ModelWeights;
