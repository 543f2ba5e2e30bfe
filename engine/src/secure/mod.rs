//! `secure` mode: the client encrypts each adapted projection's input, the server applies
//! the LoRA plan with the PLL on the ciphertext, the client decrypts and adds the result.
//!
//! The two roles are separate types with separate state. The server never sees the
//! secret key: it receives only the serialized evaluation keys, the public key (for
//! re-randomisation) and seeded ciphertexts, and answers with compact ciphertexts. In this
//! in-process mode the roles still talk in serialized bytes, so the byte counts are those
//! a network would carry.

pub mod client;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod hook;
pub mod manifest;
pub mod scaling;
pub mod server;

pub use client::{KeyUpload, SecureClient};
pub use hook::{HeStats, SecureHook};
pub use manifest::{Manifest, ProjectionShape};
pub use scaling::InputScaling;
pub use server::{
    parse_inputs, BadRequest, Job, NetworkStats, Reply, Request, SecureServer, Serve,
};

use crate::adapter::LoraAdapter;
use anyhow::Result;
use candle_core::Device;
use helora::ckks::{ParamSpec, Params};
use helora::pll::PllSettings;

/// The CKKS parameters both roles use: N = 2^13, three 40–50-bit primes (depth 2, what the
/// plan consumes) and one special prime, 128-bit secure.
pub fn parameters() -> anyhow::Result<Params> {
    Ok(Params::new(ParamSpec::n13_depth2())?)
}

/// Both roles in one process with the client registered: what `generate` and
/// `bench token` run. They still talk only in serialized bytes.
pub struct SecureSession {
    pub client: SecureClient,
    /// On the CPU backend, or on the base model's GPU ([`start_on`](Self::start_on)).
    pub server: Box<dyn Serve>,
    pub id: helora::pll::ClientId,
    /// Evaluation and public key bytes the client sent.
    pub key_upload_bytes: usize,
    /// Encoding the adapter, key generation and registration.
    pub setup: std::time::Duration,
}

impl SecureSession {
    /// A server for `adapter` (the PLL on or off) on the CPU backend and a fresh client
    /// registered with it.
    pub fn start(adapter: &LoraAdapter, pll: bool) -> Result<Self> {
        Self::start_on(adapter, pll, &Device::Cpu)
    }

    /// As [`start`](Self::start), with the server's HE work on `device`, the base model's:
    /// the CPU backend for the CPU, the CUDA backend on a stream of its own for a GPU (the
    /// full GPU build, module `gpu`).
    pub fn start_on(adapter: &LoraAdapter, pll: bool, device: &Device) -> Result<Self> {
        let params = parameters()?;
        let settings = if pll {
            PllSettings::default()
        } else {
            PllSettings::off()
        };
        let start = std::time::Instant::now();
        let mut server = server_on(&params, adapter, settings, device)?;
        let id = helora::pll::ClientId(1);
        let (client, key_upload_bytes) = register_new_client(&params, server.as_mut(), id)?;
        Ok(Self {
            client,
            server,
            id,
            key_upload_bytes,
            setup: start.elapsed(),
        })
    }

    /// The forward pass's hook over these roles, counting from zero.
    pub fn hook(&mut self) -> SecureHook<'_> {
        SecureHook::new(&mut self.client, self.server.as_mut(), self.id)
    }
}

/// A client with a fresh secret key for `server`, registered with it as `id`, and the bytes
/// of the evaluation and public keys it sent.
pub fn register_new_client(
    params: &Params,
    server: &mut dyn Serve,
    id: helora::pll::ClientId,
) -> Result<(SecureClient, usize)> {
    let (client, keys) = SecureClient::new(params, server.manifest().clone())?;
    server.register_client(id, &keys.eval_keys, &keys.public_key)?;
    Ok((client, keys.eval_keys.len() + keys.public_key.len()))
}

/// The server whose HE backend sits beside a base model on `device`.
fn server_on(
    params: &Params,
    adapter: &LoraAdapter,
    settings: PllSettings,
    device: &Device,
) -> Result<Box<dyn Serve>> {
    match device {
        Device::Cpu => Ok(Box::new(SecureServer::new(params, adapter, settings)?)),
        #[cfg(feature = "gpu")]
        Device::Cuda(cuda) => Ok(Box::new(gpu::server(params, adapter, settings, cuda)?)),
        other => anyhow::bail!(
            "secure mode has no HE backend for a base model on {}",
            crate::device::name(other)
        ),
    }
}
