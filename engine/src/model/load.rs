//! One entry point for a model on disk, whatever its format: weights, tokenizer and chat
//! template together.

use super::{gguf, hf, ChatTemplate, ModelWeights, TextTokenizer};
use anyhow::{bail, Result};
use candle_core::Device;
use std::path::{Path, PathBuf};

pub struct LoadedModel {
    pub weights: ModelWeights,
    pub tokenizer: TextTokenizer,
    /// `None` when the model has no chat template (prompts are then used raw).
    pub chat: Option<ChatTemplate>,
    /// The file or directory it was read from.
    pub source: PathBuf,
}

/// Loads the model at `path`: a `.gguf` file, or a Hugging Face directory (with
/// `config.json`, `*.safetensors` and `tokenizer.json`). Weights are f32 on `device`; a
/// bar on stderr shows progress when `show_progress`.
pub fn load_model(path: &Path, device: &Device, show_progress: bool) -> Result<LoadedModel> {
    if !path.exists() {
        bail!("{} does not exist", path.display());
    }
    let model = if path.is_dir() {
        if !path.join("config.json").is_file() {
            bail!(
                "{} is a directory without config.json: expected a Hugging Face model directory \
                 or a .gguf file",
                path.display()
            );
        }
        load_hf(path, device, show_progress)?
    } else if !path.is_file() {
        crate::files::regular_file(path)?;
        bail!("{} is not a regular file", path.display());
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        load_gguf(path, device, show_progress)?
    } else {
        bail!(
            "{}: expected a .gguf file or a Hugging Face model directory (with config.json)",
            path.display()
        );
    };
    // Every id the tokenizer can produce must have a row in the embedding.
    let vocab = model.weights.config.vocab_size;
    if model.tokenizer.vocab_size() > vocab {
        bail!(
            "{}: the tokenizer has {} tokens, the model's vocabulary only {vocab}",
            path.display(),
            model.tokenizer.vocab_size()
        );
    }
    Ok(model)
}

fn load_gguf(path: &Path, device: &Device, show_progress: bool) -> Result<LoadedModel> {
    let content = gguf::read_header(path)?;
    let tokenizer = TextTokenizer::from_gguf(&content.metadata, path)?;
    let chat = ChatTemplate::from_gguf(
        &content.metadata,
        path,
        tokenizer.bos_token(),
        tokenizer.eos_token(),
    )?;
    let weights = gguf::load_weights(path, &content, device, show_progress)?;
    Ok(LoadedModel {
        weights,
        tokenizer,
        chat,
        source: path.to_path_buf(),
    })
}

fn load_hf(dir: &Path, device: &Device, show_progress: bool) -> Result<LoadedModel> {
    // The small files first, so a broken directory fails before the weights are read.
    hf::read_config(dir)?;
    let tokenizer = TextTokenizer::from_hf_dir(dir)?;
    let chat = ChatTemplate::from_hf_dir(dir, tokenizer.bos_token(), tokenizer.eos_token())?;
    let weights = hf::load_weights(dir, device, show_progress)?;
    Ok(LoadedModel {
        weights,
        tokenizer,
        chat,
        source: dir.to_path_buf(),
    })
}
