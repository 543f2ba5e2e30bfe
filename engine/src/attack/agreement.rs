//! How far a copy behaves like the true adapter on held-out prompts. The reference is the
//! true adapter's greedy answer (in plaintext); a model's **token agreement** is the share
//! of the answer's positions where, teacher-forced on the reference's tokens, its own
//! greedy choice is the reference's token. Its greedy answer equals the reference's
//! exactly when it agrees at every position (EOS included): that is **answer agreement**.

use crate::model::{ChatMessage, ChatTemplate, LoraHook, Model, Sampler, TextTokenizer};
use anyhow::{bail, Result};
use serde::Serialize;

/// A prompt's token ids as a client sends it: rendered with the chat template if the model
/// has one (as `generate` does), else raw.
pub fn encode_prompt(
    tokenizer: &TextTokenizer,
    chat: Option<&ChatTemplate>,
    prompt: &str,
) -> Result<Vec<u32>> {
    let ids = match chat {
        Some(template) => {
            tokenizer.encode_chat(&template.render(&[ChatMessage::new("user", prompt)], true)?)?
        }
        None => tokenizer.encode(prompt)?,
    };
    if ids.is_empty() {
        bail!("the prompt {prompt:?} encodes to no tokens");
    }
    Ok(ids)
}

/// A held-out prompt and the true adapter's greedy answer to it.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    pub prompt: String,
    #[serde(skip)]
    pub prompt_ids: Vec<u32>,
    pub answer: String,
    pub answer_ids: Vec<u32>,
}

/// Greedy decoding of `prompt_ids` with `hook`: at most `max_new` tokens, ending at an EOS
/// (kept) or at the model's context.
pub fn greedy_answer(
    model: &Model,
    hook: &mut dyn LoraHook,
    eos: &[u32],
    prompt_ids: &[u32],
    max_new: usize,
) -> Result<Vec<u32>> {
    let context = model.config().max_positions;
    if prompt_ids.len() >= context {
        bail!(
            "a held-out prompt's {} tokens leave no room in the model's context of {context}",
            prompt_ids.len()
        );
    }
    let mut sampler = Sampler::greedy();
    let mut cache = model.new_cache();
    let mut logits = model.forward(prompt_ids, &mut cache, hook)?;
    let mut answer = Vec::new();
    loop {
        let next = sampler.sample(&logits)?;
        answer.push(next);
        if eos.contains(&next) || answer.len() >= max_new || cache.len() >= context {
            return Ok(answer);
        }
        logits = model.forward(&[next], &mut cache, hook)?;
    }
}

/// Positions of `reference`'s answer where `hook`'s greedy choice, teacher-forced on the
/// reference's earlier tokens, is the reference's token.
pub fn matching_tokens(
    model: &Model,
    hook: &mut dyn LoraHook,
    reference: &Reference,
) -> Result<usize> {
    let answer = &reference.answer_ids;
    let mut sequence = reference.prompt_ids.clone();
    sequence.extend(&answer[..answer.len().saturating_sub(1)]);
    let mut cache = model.new_cache();
    let logits = model.forward_all(&sequence, &mut cache, hook)?;
    let mut sampler = Sampler::greedy();
    let first = reference.prompt_ids.len() - 1;
    let mut matched = 0;
    for (step, &token) in answer.iter().enumerate() {
        if sampler.sample(&logits.get(first + step)?)? == token {
            matched += 1;
        }
    }
    Ok(matched)
}

/// One model's agreement with the references, prompt by prompt.
#[derive(Clone, Debug, Serialize)]
pub struct Agreement {
    /// Σ matching positions / Σ answer tokens.
    pub token_agreement: f64,
    /// Prompts whose greedy answer is the reference's.
    pub answers_equal: usize,
    pub answer_agreement: f64,
    /// Per prompt, the matching positions (of the reference answer's length).
    pub matched: Vec<usize>,
}

pub fn agreement(
    model: &Model,
    hook: &mut dyn LoraHook,
    references: &[Reference],
) -> Result<Agreement> {
    let matched = references
        .iter()
        .map(|r| matching_tokens(model, hook, r))
        .collect::<Result<Vec<_>>>()?;
    let tokens: usize = references.iter().map(|r| r.answer_ids.len()).sum();
    let answers_equal = references
        .iter()
        .zip(&matched)
        .filter(|(r, &m)| m == r.answer_ids.len())
        .count();
    Ok(Agreement {
        token_agreement: matched.iter().sum::<usize>() as f64 / tokens.max(1) as f64,
        answers_equal,
        answer_agreement: answers_equal as f64 / references.len().max(1) as f64,
        matched,
    })
}
