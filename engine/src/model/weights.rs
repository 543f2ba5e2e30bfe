//! A loaded model: its configuration and its tensors, f32, under Hugging Face names and
//! in Hugging Face layout whatever the file format (GGUF's permuted q/k rows are
//! un-permuted on load), so forward passes and PEFT adapters see one convention.

use super::ModelConfig;
use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor};
use std::collections::HashMap;

pub struct ModelWeights {
    pub config: ModelConfig,
    pub tensors: HashMap<String, Tensor>,
    pub device: Device,
}

impl ModelWeights {
    /// The tensor called `name`, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| anyhow!("the model has no tensor {name}"))?;
        if t.dims() != shape {
            bail!(
                "tensor {name} has shape {:?}, the configuration implies {:?}",
                t.dims(),
                shape
            );
        }
        Ok(t)
    }

    /// As [`get`](Self::get) for a tensor that may be absent (biases).
    pub fn get_optional(&self, name: &str, shape: &[usize]) -> Result<Option<&Tensor>> {
        if self.tensors.contains_key(name) {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}
