//! The model's own chat template (Jinja, from the GGUF metadata or the Hugging Face
//! directory) rendered with minijinja as transformers renders it: blocks trimmed, Python
//! string methods available, `raise_exception` failing the render. A model without a
//! template has no [`ChatTemplate`]; the caller then uses the raw prompt as is. A render
//! runs in a child process with bounded memory and time (`chat_process.rs`).

use super::chat_process::{self, Request};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file::Value as GgufValue;
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

const TEMPLATE_NAME: &str = "chat_template";
/// Instructions one render may run: real templates need a few thousand for a chat, a
/// template that loops without end is stopped within a second.
const FUEL: u64 = 5_000_000;
/// Largest rendered prompt, in bytes.
const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Where the template came from, for errors.
    origin: String,
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
        env.set_fuel(Some(FUEL));
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
            origin: "the chat template".to_string(),
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
            Some(GgufValue::String(text)) => {
                let origin = format!("{}: tokenizer.chat_template", source.display());
                Self::new(text, bos_token, eos_token)
                    .map(|t| Some(t.named(&origin)))
                    .context(origin)
            }
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
            let origin = jinja.display().to_string();
            return Self::new(&text, bos_token, eos_token)
                .map(|t| Some(t.named(&origin)))
                .context(origin);
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
        let origin = format!("{}: chat_template", path.display());
        Self::new(&template, bos_token, eos_token)
            .map(|t| Some(t.named(&origin)))
            .context(origin)
    }

    /// Names where the template came from in render errors.
    pub(super) fn named(mut self, origin: &str) -> Self {
        self.origin = origin.to_string();
        self
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn when
    /// `add_generation_prompt`: rendered in a child run of the helora binary, whose memory
    /// and time are bounded; in this process only for a user of the library without that
    /// binary (then bounded in instructions and output only).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let Some(binary) = chat_process::renderer() else {
            return self.render_here(messages, add_generation_prompt);
        };
        let request = Request {
            source: Cow::Borrowed(&self.source),
            origin: Cow::Borrowed(&self.origin),
            bos_token: Cow::Borrowed(&self.bos_token),
            eos_token: Cow::Borrowed(&self.eos_token),
            messages: Cow::Borrowed(messages),
            add_generation_prompt,
        };
        chat_process::render_in_child(&binary, &request)
    }

    /// [`render`](Self::render) in this process.
    pub(super) fn render_here(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| anyhow!("the chat template is missing: {e}"))?;
        let mut out = Capped::default();
        let rendered = template.render_captured_to(
            minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            },
            &mut out,
        );
        match rendered {
            Ok(_) => String::from_utf8(out.bytes)
                .map_err(|_| anyhow!("{}: the rendered prompt is not UTF-8", self.origin)),
            Err(e) if e.kind() == ErrorKind::OutOfFuel => bail!(
                "{}: the template ran out of fuel ({FUEL} instructions) without finishing",
                self.origin
            ),
            Err(_) if out.overflowed => bail!(
                "{}: the rendered prompt exceeds {MAX_OUTPUT_BYTES} bytes",
                self.origin
            ),
            Err(e) => bail!("{}: the template failed to render: {e:#}", self.origin),
        }
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The rendered prompt, refusing to grow past [`MAX_OUTPUT_BYTES`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("output limit reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
