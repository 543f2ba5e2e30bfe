//! The input sites an attack targets: per layer, the adapted projections that read one
//! input (q_proj and v_proj of the demo adapter share theirs), so one query to the server
//! answers for all of them.

use super::copy::ProjectionKey;
use crate::adapter::LoraAdapter;
use crate::model::{input_sites, ModelConfig};
use anyhow::{bail, Result};
use std::ops::Range;

#[derive(Clone, Debug)]
pub struct Site {
    pub layer: usize,
    /// The adapted projections reading this input, in forward order.
    pub modules: Vec<&'static str>,
    pub d_in: usize,
    /// Per module.
    pub d_out: Vec<usize>,
}

impl Site {
    pub fn keys(&self) -> impl Iterator<Item = ProjectionKey> + '_ {
        self.modules.iter().map(|m| (self.layer, m.to_string()))
    }
}

/// The adapted sites of `layers`.
pub fn attacked_sites(
    adapter: &LoraAdapter,
    config: &ModelConfig,
    layers: &Range<usize>,
) -> Result<Vec<Site>> {
    if layers.start >= layers.end || layers.end > config.num_layers {
        bail!(
            "--layers {}..{} is not a non-empty range within the model's {} layers",
            layers.start,
            layers.end,
            config.num_layers
        );
    }
    let mut sites = Vec::new();
    for layer in layers.clone() {
        for site in input_sites(config.arch, layer) {
            let modules: Vec<&'static str> = site
                .modules
                .iter()
                .copied()
                .filter(|m| adapter.get(layer, m).is_some())
                .collect();
            let Some(first) = modules.first() else {
                continue;
            };
            let d_in = adapter.get(layer, first).map_or(0, |f| f.a.dims()[0]);
            let d_out = modules
                .iter()
                .map(|m| adapter.get(layer, m).map_or(0, |f| f.b.dims()[1]))
                .collect();
            sites.push(Site {
                layer,
                modules,
                d_in,
                d_out,
            });
        }
    }
    if sites.is_empty() {
        bail!(
            "the adapter adapts no projection in layers {}..{}",
            layers.start,
            layers.end
        );
    }
    Ok(sites)
}

/// `A..B` (B excluded) or a single layer `A`.
pub fn parse_layers(value: &str) -> Result<Range<usize>, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("{value:?} is not a layer range such as 0..2"))
    };
    match value.split_once("..") {
        Some((a, b)) => Ok(number(a)?..number(b)?),
        None => {
            let a = number(value)?;
            Ok(a..a + 1)
        }
    }
}
