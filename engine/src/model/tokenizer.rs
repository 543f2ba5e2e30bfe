//! Text ↔ token ids, from a Hugging Face `tokenizer.json` or rebuilt from the vocabulary a
//! GGUF file carries in its metadata, with the model's BOS and end-of-generation tokens
//! and a streaming decoder for generated text.

use super::gguf::Metadata;
use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::Value as GgufValue;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TOKEN_CONTROL: i64 = 3;
const TOKEN_USER_DEFINED: i64 = 4;

/// The split before byte-level BPE for Llama 3 (`tokenizer.ggml.pre = llama-bpe`), as in
/// its tokenizer.json.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The same for Qwen2 (`qwen2`): digits one by one.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

pub struct TextTokenizer {
    inner: Arc<Tokenizer>,
    /// Let tokenizer.json's post-processor add what the model wants (Hugging Face
    /// directories); GGUF tokenizers have none and use `prepend_bos` instead.
    post_process: bool,
    prepend_bos: bool,
    bos: Option<u32>,
    eos: Vec<u32>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl TextTokenizer {
    /// The tokenizer of a Hugging Face model directory: `tokenizer.json`, with BOS/EOS from
    /// `tokenizer_config.json`, `generation_config.json` and `config.json` where present.
    pub fn from_hf_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            bail!(
                "{}: no tokenizer.json (helora reads tokenizers in the Hugging Face `tokenizers` \
                 format only)",
                dir.display()
            );
        }
        let inner = Tokenizer::from_file(&path)
            .map_err(|e| anyhow!("{} is not a valid tokenizer: {e}", path.display()))?;
        let tokenizer_config = read_optional_json(&dir.join("tokenizer_config.json"))?;
        let generation_config = read_optional_json(&dir.join("generation_config.json"))?;
        let model_config = read_optional_json(&dir.join("config.json"))?;

        let named = |key: &str| -> Result<Option<(String, u32)>> {
            let Some((file, config)) = &tokenizer_config else {
                return Ok(None);
            };
            let Some(token) = special_token_text(config, key) else {
                return Ok(None);
            };
            let id = inner.token_to_id(&token).ok_or_else(|| {
                anyhow!(
                    "{}: {key} {token:?} is not in the vocabulary of {}",
                    file.display(),
                    path.display()
                )
            })?;
            Ok(Some((token, id)))
        };
        let listed = |key: &str| -> Result<Vec<u32>> {
            let mut ids = Vec::new();
            for (file, config) in [&generation_config, &model_config].into_iter().flatten() {
                ids.extend(token_ids(config, key, file)?);
            }
            Ok(ids)
        };

        let bos_named = named("bos_token")?;
        let bos = match &bos_named {
            Some((_, id)) => Some(*id),
            None => listed("bos_token_id")?.first().copied(),
        };
        let eos_named = named("eos_token")?;
        let mut eos: Vec<u32> = eos_named.iter().map(|(_, id)| *id).collect();
        for id in listed("eos_token_id")? {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
        let vocab = inner.get_vocab_size(true);
        if let Some(bad) = bos.iter().chain(&eos).find(|&&id| id as usize >= vocab) {
            bail!(
                "{}: special token id {bad} is outside the vocabulary of {vocab} tokens",
                dir.display()
            );
        }
        let bos_token = bos_named
            .map(|(t, _)| t)
            .or_else(|| bos.and_then(|id| inner.id_to_token(id)));
        let eos_token = eos_named
            .map(|(t, _)| t)
            .or_else(|| eos.first().and_then(|&id| inner.id_to_token(id)));
        Ok(Self {
            inner: Arc::new(inner),
            post_process: true,
            prepend_bos: false,
            bos,
            eos,
            bos_token,
            eos_token,
        })
    }

    /// The tokenizer described by a GGUF file's metadata (`source` names it in errors).
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`) only, with the pre-tokenization of
    /// `tokenizer.ggml.pre` = smollm, gpt2, llama-bpe or qwen2.
    pub fn from_gguf(metadata: &HashMap<String, GgufValue>, source: &Path) -> Result<Self> {
        let meta = Metadata {
            map: metadata,
            source,
        };
        let model = meta.string("tokenizer.ggml.model")?;
        match model {
            "gpt2" => {}
            "llama" => bail!(
                "{}: SentencePiece tokenizers (tokenizer.ggml.model = llama) are not supported yet; \
                 use the model's Hugging Face directory (with tokenizer.json) instead",
                source.display()
            ),
            other => bail!(
                "{}: tokenizer.ggml.model {other:?} is not supported (only gpt2, byte-level BPE)",
                source.display()
            ),
        }
        let pre = meta
            .optional_string("tokenizer.ggml.pre")?
            .unwrap_or("default");
        let tokens = meta.strings("tokenizer.ggml.tokens")?;
        let merges = meta.strings("tokenizer.ggml.merges")?;
        let types = meta.optional_ints("tokenizer.ggml.token_type")?;
        if let Some(types) = &types {
            if types.len() != tokens.len() {
                bail!(
                    "{}: {} token types for {} tokens",
                    source.display(),
                    types.len(),
                    tokens.len()
                );
            }
        }

        let mut vocab = Vocab::with_capacity(tokens.len());
        for (id, token) in tokens.iter().enumerate() {
            // A repeated spelling keeps its first id, as the lookup in llama.cpp does.
            vocab.entry(token.to_string()).or_insert(id as u32);
        }
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| {
                        anyhow!(
                            "{}: merge {i} ({m:?}) is not two tokens separated by a space",
                            source.display()
                        )
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        // Llama 3 looks whole words up before merging (its tokenizer.json says so too).
        let ignore_merges = matches!(pre, "llama-bpe" | "llama3" | "llama-v3");
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(ignore_merges)
            .build()
            .map_err(|e| anyhow!("{}: cannot build the BPE tokenizer: {e}", source.display()))?;

        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(pre_tokenizer(pre, source)?));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens (`<|im_start|>` …) must stay whole wherever they appear in the
        // text, as llama.cpp matches them; user-defined ones too, but are not special.
        if let Some(types) = &types {
            let added = |wanted: i64, special: bool| -> Vec<AddedToken> {
                tokens
                    .iter()
                    .zip(types)
                    .filter(|(_, &t)| t == wanted)
                    .map(|(token, _)| {
                        AddedToken::from(token.to_string(), special).normalized(false)
                    })
                    .collect()
            };
            inner.add_special_tokens(&added(TOKEN_CONTROL, true));
            inner.add_tokens(&added(TOKEN_USER_DEFINED, false));
        }

        let id = |key: &str| -> Result<Option<u32>> {
            match meta.optional_usize(key)? {
                None => Ok(None),
                Some(id) if id < tokens.len() => Ok(Some(id as u32)),
                Some(id) => bail!(
                    "{}: {key} {id} is outside the vocabulary of {} tokens",
                    source.display(),
                    tokens.len()
                ),
            }
        };
        let bos = id("tokenizer.ggml.bos_token_id")?;
        let mut eos = Vec::new();
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            if let Some(e) = id(key)? {
                if !eos.contains(&e) {
                    eos.push(e);
                }
            }
        }
        // llama.cpp's default when the file does not say: BOS for Llama 3, none otherwise.
        let prepend_bos = meta
            .optional_bool("tokenizer.ggml.add_bos_token")?
            .unwrap_or(ignore_merges);
        if prepend_bos && bos.is_none() {
            bail!(
                "{}: tokenizer.ggml.add_bos_token is set but there is no bos_token_id",
                source.display()
            );
        }
        let text = |id: u32| tokens[id as usize].to_string();
        Ok(Self {
            inner: Arc::new(inner),
            post_process: false,
            prepend_bos,
            bos,
            bos_token: bos.map(text),
            eos_token: eos.first().map(|&id| text(id)),
            eos,
        })
    }

    /// The ids of `text` as the model expects a raw prompt: with the BOS token when the
    /// model wants one (SmolLM2 does not), special tokens written in the text kept whole.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, self.post_process)
            .map_err(|e| anyhow!("cannot tokenize the text: {e}"))?;
        let mut ids = encoding.get_ids().to_vec();
        if self.prepend_bos {
            if let Some(bos) = self.bos {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// The ids of a prompt rendered by the chat template, which writes every special token
    /// it wants (BOS included) itself, so none is added.
    pub fn encode_chat(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("cannot tokenize the text: {e}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow!("cannot decode token ids: {e}"))
    }

    /// The tokens that end generation (EOS, and end-of-turn where the model has one).
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// The text of the BOS token (`bos_token` in chat templates).
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The text of the first end-of-generation token (`eos_token` in chat templates).
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// A decoder for ids produced one at a time.
    pub fn stream(&self) -> StreamDecoder {
        StreamDecoder {
            inner: Arc::clone(&self.inner),
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }
}

/// Turns generated ids into text as they come. A token may end inside a multi-byte UTF-8
/// character, and a decoder may render a token differently at the start of a text than
/// after others, so each step decodes a short window (the last emitted tokens as context
/// plus the new ones) and emits only what that adds, holding back text that ends in an
/// incomplete character.
pub struct StreamDecoder {
    inner: Arc<Tokenizer>,
    ids: Vec<u32>,
    /// `ids[prefix..read]` were emitted last and serve as context.
    prefix: usize,
    read: usize,
}

impl StreamDecoder {
    /// Adds one id; returns the text completed by it (often empty while a character is
    /// incomplete).
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        self.emit(false)
    }

    /// Returns whatever is still held back (an incomplete character decodes as U+FFFD).
    pub fn flush(&mut self) -> Result<String> {
        self.emit(true)
    }

    fn emit(&mut self, force: bool) -> Result<String> {
        let decode = |ids: &[u32]| {
            self.inner
                .decode(ids, false)
                .map_err(|e| anyhow!("cannot decode token ids: {e}"))
        };
        let before = decode(&self.ids[self.prefix..self.read])?;
        let now = decode(&self.ids[self.prefix..])?;
        if now.len() <= before.len() || (!force && now.ends_with('\u{FFFD}')) {
            return Ok(String::new());
        }
        let new = now.strip_prefix(&before).ok_or_else(|| {
            anyhow!(
                "decoding token {:?} changed text already emitted",
                self.ids.last()
            )
        })?;
        let new = new.to_string();
        self.ids.drain(..self.read);
        self.prefix = 0;
        self.read = self.ids.len();
        Ok(new)
    }
}

/// The parsed JSON file at `path` with its path, or `None` when absent.
fn read_optional_json(path: &Path) -> Result<Option<(std::path::PathBuf, Json)>> {
    if !path.exists() {
        return Ok(None);
    }
    crate::files::regular_file(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(Some((path.to_path_buf(), value)))
}

/// A special token in tokenizer_config.json: a string or an AddedToken object.
fn special_token_text(config: &Json, key: &str) -> Option<String> {
    match config.get(key)? {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

/// Token ids under `key`: one integer or a list of them.
fn token_ids(config: &Json, key: &str, file: &Path) -> Result<Vec<u32>> {
    let as_id = |v: &Json| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                anyhow!(
                    "{}: {key} is not a token id or a list of them",
                    file.display()
                )
            })
    };
    match config.get(key) {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items.iter().map(as_id).collect(),
        Some(v) => Ok(vec![as_id(v)?]),
    }
}

/// The split of text into words before byte-level BPE, as llama.cpp does for `pre`.
fn pre_tokenizer(pre: &str, source: &Path) -> Result<PreTokenizerWrapper> {
    // GPT-2's own regex, applied by ByteLevel itself.
    let gpt2 = || ByteLevel::new(false, true, true);
    let split_then_bytes = |regex: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| anyhow!("cannot compile the pre-tokenizer regex: {e}"))?;
        Ok(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])
        .into())
    };
    match pre {
        // SmolLM's tokenizer.json: every digit alone, then GPT-2's regex (llama.cpp:
        // `\p{N}` then the GPT-2 regex).
        "smollm" => Ok(Sequence::new(vec![Digits::new(true).into(), gpt2().into()]).into()),
        "gpt2" => Ok(gpt2().into()),
        "llama-bpe" | "llama3" | "llama-v3" => split_then_bytes(LLAMA3_SPLIT),
        "qwen2" => split_then_bytes(QWEN2_SPLIT),
        other => bail!(
            "{}: tokenizer.ggml.pre {other:?} is not supported (supported: smollm, gpt2, \
             llama-bpe, qwen2); use the model's Hugging Face directory (with tokenizer.json) \
             instead",
            source.display()
        ),
    }
}
