//! The adapters `helora attack behaviour` compares, applied in plaintext: each adapted
//! projection's delta is x times a product of matrices — the true adapter's (a, b), or a
//! fitted copy's single dense ΔŴ — and projections left out add nothing.

use crate::adapter::LoraAdapter;
use crate::model::{InputSite, LoraHook};
use anyhow::Result;
use candle_core::{Device, Tensor};
use helora::pll::attack::linalg::Mat;
use std::collections::BTreeMap;

/// (layer, PEFT module name).
pub type ProjectionKey = (usize, String);

pub struct ProductHook {
    factors: BTreeMap<ProjectionKey, Vec<Tensor>>,
}

impl ProductHook {
    /// The true adapter, without the projections `drop` names.
    pub fn adapter_without(adapter: &LoraAdapter, drop: &[ProjectionKey]) -> Self {
        let factors = adapter
            .layers
            .iter()
            .filter(|(key, _)| !drop.contains(key))
            .map(|(key, f)| (key.clone(), vec![f.a.clone(), f.b.clone()]))
            .collect();
        Self { factors }
    }

    /// The true adapter with the projections in `copies` replaced by their fitted deltas
    /// (d_in × d_out each).
    pub fn adapter_with(adapter: &LoraAdapter, copies: &[(ProjectionKey, Mat)]) -> Result<Self> {
        let mut hook = Self::adapter_without(adapter, &[]);
        for (key, delta) in copies {
            let values: Vec<f32> = delta.data.iter().map(|&v| v as f32).collect();
            let tensor = Tensor::from_vec(values, (delta.rows, delta.cols), &Device::Cpu)?;
            hook.factors.insert(key.clone(), vec![tensor]);
        }
        Ok(hook)
    }

    fn get(&self, layer: usize, module: &str) -> Option<&[Tensor]> {
        self.factors
            .get(&(layer, module.to_string()))
            .map(Vec::as_slice)
    }
}

impl LoraHook for ProductHook {
    fn wants(&self, site: InputSite) -> bool {
        site.modules
            .iter()
            .any(|m| self.get(site.layer, m).is_some())
    }

    fn deltas(&mut self, site: InputSite, x: &Tensor) -> Result<Vec<Option<Tensor>>> {
        site.modules
            .iter()
            .map(|m| {
                self.get(site.layer, m)
                    .map(|factors| {
                        factors
                            .iter()
                            .try_fold(x.clone(), |acc, f| acc.matmul(f))
                            .map_err(anyhow::Error::from)
                    })
                    .transpose()
            })
            .collect()
    }
}
