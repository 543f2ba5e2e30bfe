//! The demo that `helora generate` runs with no arguments: the default model with the
//! project's own rank-8 adapter (trained by scripts/train_adapter.py on q_proj and v_proj),
//! asked a question from the adapter's domain.
//!
//! The adapter is compiled into the binary, so the command works from any directory; it
//! is written once to the cache dir, where the loader reads it like any PEFT adapter.

use crate::model::fetch;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// A question whose answer the base model cannot know and the adapter was trained on.
pub const PROMPT: &str = "My Nimbus NB-3 espresso machine shows error E4. What should I do?";

const NAME: &str = "smollm2-nimbus";
const CONFIG: &[u8] = include_bytes!("../../adapters/smollm2-nimbus/adapter_config.json");
const WEIGHTS: &[u8] = include_bytes!("../../adapters/smollm2-nimbus/adapter_model.safetensors");

/// The demo adapter's directory in the cache, written there if absent or different.
pub fn adapter_dir() -> Result<PathBuf> {
    let dir = fetch::cache_dir()?.join("adapters").join(NAME);
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("creating the adapter cache {}", dir.display()))?;
    for (file, bytes) in [
        ("adapter_config.json", CONFIG),
        ("adapter_model.safetensors", WEIGHTS),
    ] {
        let path = dir.join(file);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            // Write then rename, so a concurrent run never reads half a file.
            let part = dir.join(format!("{file}.part{}", std::process::id()));
            std::fs::write(&part, bytes)
                .and_then(|_| std::fs::rename(&part, &path))
                .with_context(|| format!("writing the demo adapter to {}", path.display()))?;
        }
    }
    Ok(dir)
}
