//! `secure` mode: the client encrypts each adapted projection's input, the server applies
//! the LoRA plan with the PLL on the ciphertext, the client decrypts and adds the result.
//!
//! The two roles are separate types with separate state. The server never sees the
//! secret key: it receives only the serialized evaluation keys, the public key (for
//! re-randomisation) and seeded ciphertexts, and answers with compact ciphertexts. In this
//! in-process mode the roles still talk in serialized bytes, so the byte counts are those
//! a network would carry.

pub mod client;
pub mod hook;
pub mod manifest;
pub mod server;

pub use client::{KeyUpload, SecureClient};
pub use hook::{HeStats, SecureHook};
pub use manifest::{Manifest, ProjectionShape};
pub use server::{Reply, Request, SecureServer};

use helora::ckks::{ParamSpec, Params};

/// The CKKS parameters both roles use: N = 2^13, three 40–50-bit primes (depth 2, what the
/// plan consumes) and one special prime, 128-bit secure.
pub fn parameters() -> anyhow::Result<Params> {
    Ok(Params::new(ParamSpec::n13_depth2())?)
}

/// Both roles in one process with the client registered: what `generate` and
/// `bench token` run. They still talk only in serialized bytes.
pub struct InProcess {
    pub client: SecureClient,
    pub server: SecureServer,
    pub id: helora::pll::ClientId,
    /// Evaluation and public key bytes the client sent.
    pub key_upload_bytes: usize,
    /// Encoding the adapter, key generation and registration.
    pub setup: std::time::Duration,
}

impl InProcess {
    /// A server for `adapter` (the PLL on or off) and a fresh client registered with it.
    pub fn start(adapter: &crate::adapter::LoraAdapter, pll: bool) -> anyhow::Result<Self> {
        let params = parameters()?;
        let settings = if pll {
            helora::pll::PllSettings::default()
        } else {
            helora::pll::PllSettings::off()
        };
        let start = std::time::Instant::now();
        let mut server = SecureServer::new(&params, adapter, settings)?;
        let (client, keys) = SecureClient::new(&params, server.manifest().clone())?;
        let id = helora::pll::ClientId(1);
        server.register_client(id, &keys.eval_keys, &keys.public_key)?;
        Ok(Self {
            client,
            server,
            id,
            key_upload_bytes: keys.eval_keys.len() + keys.public_key.len(),
            setup: start.elapsed(),
        })
    }

    /// The forward pass's hook over these roles, counting from zero.
    pub fn hook(&mut self) -> SecureHook<'_> {
        SecureHook {
            client: &mut self.client,
            server: &mut self.server,
            id: self.id,
            stats: HeStats::default(),
        }
    }
}
