//! The model's own chat template (Jinja, from the GGUF metadata or the Hugging Face
//! directory) rendered with minijinja as transformers renders it: blocks trimmed, Python
//! string methods available, `raise_exception` failing the render. A model without a
//! template has no [`ChatTemplate`]; the caller then uses the raw prompt as is.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::Value as GgufValue;
use minijinja::{Environment, ErrorKind};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

const TEMPLATE_NAME: &str = "chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.to_string(),
            content: content.to_string(),
        }
    }
}

pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles the Jinja `source`; `bos_token`/`eos_token` are the texts templates see
    /// under those names (empty when the model has none).
    pub fn new(source: &str, bos_token: Option<&str>, eos_token: Option<&str>) -> Result<Self> {
        let mut env = Environment::new();
        // transformers renders with trim_blocks and lstrip_blocks.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<(), minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| anyhow!("the chat template does not compile: {e:#}"))?;
        Ok(Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.unwrap_or_default().to_string(),
            eos_token: eos_token.unwrap_or_default().to_string(),
        })
    }

    /// The template in a GGUF file's metadata (`tokenizer.chat_template`), if any.
    pub fn from_gguf(
        metadata: &HashMap<String, GgufValue>,
        source: &Path,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Option<Self>> {
        match metadata.get("tokenizer.chat_template") {
            None => Ok(None),
            Some(GgufValue::String(text)) => Self::new(text, bos_token, eos_token)
                .map(Some)
                .with_context(|| format!("{}: tokenizer.chat_template", source.display())),
            Some(_) => bail!(
                "{}: metadata tokenizer.chat_template is not a string",
                source.display()
            ),
        }
    }

    /// The template of a Hugging Face directory: `chat_template.jinja`, else
    /// `chat_template` in `tokenizer_config.json` (a string, or a list of named templates
    /// of which `default` is used), if any.
    pub fn from_hf_dir(
        dir: &Path,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
    ) -> Result<Option<Self>> {
        let jinja = dir.join("chat_template.jinja");
        if jinja.is_file() {
            let text = std::fs::read_to_string(&jinja)
                .with_context(|| format!("cannot read {}", jinja.display()))?;
            return Self::new(&text, bos_token, eos_token)
                .map(Some)
                .with_context(|| jinja.display().to_string());
        }
        let path = dir.join("tokenizer_config.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        let template = match config.get("chat_template") {
            None | Some(serde_json::Value::Null) => return Ok(None),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    anyhow!(
                        "{}: chat_template lists no template named \"default\"",
                        path.display()
                    )
                })?,
            Some(_) => bail!(
                "{}: chat_template is neither a string nor a list",
                path.display()
            ),
        };
        Self::new(&template, bos_token, eos_token)
            .map(Some)
            .with_context(|| format!("{}: chat_template", path.display()))
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn when
    /// `add_generation_prompt`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| anyhow!("the chat template is missing: {e}"))?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| anyhow!("the chat template failed to render: {e:#}"))
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }
}
