//! The roles' types on the protocol's messages and back: the manifest, and the replies of a
//! site request. One place for each conversion, shared by the server, the remote client and
//! the C ABI (crate `helora-ffi`), which speak the same messages.

use super::proto;
use crate::secure::{Manifest, ProjectionShape, Reply};
use anyhow::{anyhow, Result};
use helora::ckks::KeySeed;
use helora::pll::PllSettings;

/// What the server tells a client about `adapter`: its manifest, the PLL's settings and
/// the client's budget.
pub fn manifest_reply(
    adapter: &str,
    manifest: &Manifest,
    settings: &PllSettings,
    budget: u64,
    queries_left: u64,
) -> Result<proto::ManifestReply> {
    let to_u32 = |v: usize| u32::try_from(v).map_err(|_| anyhow!("shape {v} out of range"));
    let projections = manifest
        .projections
        .iter()
        .map(|p| {
            Ok(proto::Projection {
                layer: to_u32(p.layer)?,
                module: p.module.clone(),
                d_in: to_u32(p.d_in)?,
                d_out: to_u32(p.d_out)?,
                rank_padded: to_u32(p.rank_padded)?,
                level: to_u32(p.level)?,
                bound_log2: p.bound_log2,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(proto::ManifestReply {
        adapter: adapter.to_string(),
        params_id: manifest.params_id,
        rotation_steps: manifest.rotation_steps.clone(),
        projections,
        noise: settings.noise,
        flooding: settings.flooding,
        budget,
        queries_left,
        key_seed: manifest.key_seed.0.to_vec(),
    })
}

/// The manifest a client reads off the server's reply.
pub fn manifest_of(reply: &proto::ManifestReply) -> Result<Manifest> {
    let projections = reply
        .projections
        .iter()
        .map(|p| ProjectionShape {
            layer: p.layer as usize,
            module: p.module.clone(),
            d_in: p.d_in as usize,
            d_out: p.d_out as usize,
            rank_padded: p.rank_padded as usize,
            level: p.level as usize,
            bound_log2: p.bound_log2,
        })
        .collect();
    let key_seed = reply.key_seed.as_slice().try_into().map_err(|_| {
        anyhow!(
            "the server's key seed has {} bytes, not 16 (a server older than the \
             registration challenge?)",
            reply.key_seed.len()
        )
    })?;
    Ok(Manifest {
        params_id: reply.params_id,
        rotation_steps: reply.rotation_steps.clone(),
        projections,
        key_seed: KeySeed(key_seed),
    })
}

/// The PLL settings a client reads off the server's reply.
pub fn settings_of(reply: &proto::ManifestReply) -> PllSettings {
    PllSettings {
        noise: reply.noise,
        flooding: reply.flooding,
        budget: reply.budget,
        ..PllSettings::default()
    }
}

/// One token's reply on the wire.
pub fn token_output(reply: Reply) -> proto::TokenOutput {
    proto::TokenOutput {
        modules: reply
            .outputs
            .into_iter()
            .map(|outputs| proto::ModuleOutput { outputs })
            .collect(),
    }
}

/// The replies of a site reply, one per token.
pub fn replies_of(reply: proto::SiteReply) -> Vec<Reply> {
    reply
        .tokens
        .into_iter()
        .map(|t| Reply {
            outputs: t.modules.into_iter().map(|m| m.outputs).collect(),
        })
        .collect()
}
