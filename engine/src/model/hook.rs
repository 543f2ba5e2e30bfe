//! Where the LoRA delta enters the forward pass. At every place where projections read an
//! input, the forward pass hands that input to a [`LoraHook`], which may return a delta
//! for each of those projections; the delta is added to the projection's output (after
//! its bias). `plain` mode uses [`NoHook`], `lora` mode adds x·A·B·scale in plaintext,
//! `secure` mode encrypts x and asks the server.

use super::Architecture;
use anyhow::Result;
use candle_core::Tensor;

/// The projections that read one input, in the order their deltas are returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputSite {
    pub layer: usize,
    /// PEFT module names, e.g. `["q_proj", "k_proj", "v_proj"]`.
    pub modules: &'static [&'static str],
}

/// Every input site of `layer`, in forward order.
pub fn input_sites(arch: Architecture, layer: usize) -> Vec<InputSite> {
    use super::{chatglm, llama};
    let modules = match arch {
        Architecture::Llama => [llama::QKV, llama::OUTPUT, llama::GATE_UP, llama::DOWN],
        Architecture::ChatGlm2 => [
            chatglm::QKV,
            chatglm::OUTPUT,
            chatglm::GATE_UP,
            chatglm::DOWN,
        ],
    };
    modules
        .iter()
        .map(|&modules| InputSite { layer, modules })
        .collect()
}

pub trait LoraHook {
    /// `x` is the shared input, `[tokens, d_in]` f32, one row per position of this forward
    /// call. Returns one entry per module of `site`: `Some(delta)` of shape
    /// `[tokens, d_out]` f32 to add to that projection's output, or `None`.
    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>>;

    /// Whether any module of `site` is adapted (lets the forward pass skip the call).
    fn wants(&self, site: InputSite) -> bool;

    /// Called with the same `x` before the forward pass queues `site`'s base projections:
    /// a hook that needs `x` on the host copies it here, so that on a GPU the copy does not
    /// wait for those projections, which then run while the hook works in `deltas`.
    fn stage(&mut self, site: InputSite, x: &Tensor) -> Result<()> {
        let _ = (site, x);
        Ok(())
    }
}

/// The base model alone.
pub struct NoHook;

impl LoraHook for NoHook {
    fn deltas(&mut self, site: InputSite, _x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![None; site.modules.len()])
    }

    fn wants(&self, _site: InputSite) -> bool {
        false
    }
}
