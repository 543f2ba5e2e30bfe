//! The published scheme helora is measured against.

/// ChatGLM2-6B, LoRA rank 8, CPU CKKS: the published reference's decode time per token.
pub const PAPER_MS_PER_TOKEN: f64 = 1610.0;
