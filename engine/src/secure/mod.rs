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
