//! `lora` mode: the adapter applied in plaintext, delta = x·a·b. The reference `secure`
//! mode is checked against.

use crate::adapter::{LoraAdapter, LoraFactors};
use crate::model::{InputSite, LoraHook};
use anyhow::Result;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;

pub struct PlainLoraHook {
    factors: BTreeMap<(usize, String), LoraFactors>,
}

impl PlainLoraHook {
    /// Copies the factors to `device` once.
    pub fn new(adapter: &LoraAdapter, device: &Device) -> Result<Self> {
        let factors = adapter
            .layers
            .iter()
            .map(|(key, f)| {
                Ok((
                    key.clone(),
                    LoraFactors {
                        a: f.a.to_device(device)?,
                        b: f.b.to_device(device)?,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Self { factors })
    }

    fn get(&self, layer: usize, module: &str) -> Option<&LoraFactors> {
        self.factors.get(&(layer, module.to_string()))
    }
}

impl LoraHook for PlainLoraHook {
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
                    .map(|f| Ok(x.matmul(&f.a)?.matmul(&f.b)?))
                    .transpose()
            })
            .collect()
    }
}
