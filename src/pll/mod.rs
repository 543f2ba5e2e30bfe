//! Private Linear Layer: what the server adds around a LoRA plan so that the client, who
//! holds the secret key and chooses its inputs, learns x·A·B up to protection noise and
//! nothing more, and can only ask so many times. See `docs/security.md` for the argument.
//!
//! Per query, for every adapter applied:
//! 1. noise ([`noise`]): step 3 runs on B + E with E fresh and complex,
//!    E_jc ~ σ_E·(N(0,1) + i·N(0,1)) for every row j and every column c of the output
//!    ciphertexts, σ_E = σ·rms(B) (sampled as Gaussian polynomials added to the encoded
//!    diagonals). The output is u·(B + E), u = x·A: an error of relative size ≈ σ on every
//!    result, proportional to ‖u‖, so scaling x does not shrink it; the slots outside the
//!    result and the imaginary parts carry the same-size mask;
//! 2. flooding ([`flooding`]): the result is re-randomised with a fresh public-key
//!    encryption of zero and a discrete Gaussian of std σ_f is added to c0, so that the
//!    error the client can read after decryption hides the circuit's own error;
//! 3. budget ([`server`]): each client id may query each adapter `budget` times.
//!
//! With [`PllSettings::off`] the plain plan runs unchanged (bit for bit).

mod adapter;
pub mod attack;
mod bound;
mod evaluate;
mod flooding;
mod noise;
mod server;
mod settings;

/// The generator of a query's noise (seedable: a server that derives it per request answers a
/// re-sent request identically).
pub use crate::math::sampling::NoiseRng;
pub use adapter::Adapter;
pub use bound::{
    least_squares_error, low_rank_error, noise_for_target, queries_needed,
    random_least_squares_error, shape_factor, ExtractionBound,
};
pub use flooding::flood_std;
pub use server::{AdapterId, ClientId, PllServer, PreparedClient};
pub use settings::PllSettings;

use crate::ckks::{CkksError, EncodeError};
use crate::linear::LinearError;
use crate::math::sampling::EntropyError;

#[derive(Debug, thiserror::Error)]
pub enum PllError {
    #[error("unknown client id {0}")]
    UnknownClient(u64),
    #[error("client id {0} is already registered")]
    DuplicateClient(u64),
    #[error("the server already holds the maximum of {max} clients")]
    TooManyClients { max: usize },
    #[error("evaluation keys of {bytes} bytes exceed the limit of {max} bytes per client")]
    KeysTooLarge { bytes: usize, max: usize },
    #[error(
        "the client's keys were not made from the key seed this server handed out (their `a` \
         halves must come from the server's seed, not the client's)"
    )]
    WrongKeySeed,
    #[error("the client's keys lack the rotation by {step} that adapter {adapter} needs")]
    MissingRotationKey { adapter: usize, step: i64 },
    #[error("unknown adapter id {0}")]
    UnknownAdapter(usize),
    #[error(
        "query budget exhausted: client {client} has used all {budget} queries to adapter {adapter}"
    )]
    BudgetExhausted {
        client: u64,
        adapter: usize,
        budget: u64,
    },
    #[error("invalid PLL settings: {0}")]
    Settings(String),
    #[error("invalid attack configuration: {0}")]
    InvalidAttack(String),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Linear(#[from] LinearError),
    #[error(transparent)]
    Ckks(#[from] CkksError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Entropy(#[from] EntropyError),
}
