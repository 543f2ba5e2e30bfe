//! Key generation for the benchmarks, one switching key at a time so that progress can be
//! shown (N = 2^16 takes a while).

use crate::progress::Progress;
use anyhow::{Context, Result};
use helora::ckks::{galois_elements, EvaluationKeys, KeyGenerator, Params, PublicKey, SecretKey};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub struct BenchKeys {
    pub secret: SecretKey,
    pub public: PublicKey,
    pub eval: EvaluationKeys,
    /// Secret, public, relinearisation and rotation keys together.
    pub elapsed: Duration,
    /// Number of switching keys (relinearisation + rotations).
    pub switching_keys: usize,
}

/// Generates a secret key, a public key, a relinearisation key and one rotation key per
/// distinct non-trivial step in `rotations` (as `KeyGenerator::evaluation_keys` does, one
/// key at a time so that progress can be shown).
pub fn generate(params: &Params, rotations: &[i64]) -> Result<BenchKeys> {
    let start = Instant::now();
    let elements = galois_elements(rotations, false, params.n());
    let progress = Progress::start(
        &format!(
            "generating {} switching keys (N = {})",
            1 + elements.len(),
            params.n()
        ),
        1 + elements.len() as u64,
    );
    let mut keygen = KeyGenerator::new(params).context("creating the secret key")?;
    let public = keygen.public_key();
    let relin = keygen.relinearization_key();
    progress.advance();
    let mut galois = BTreeMap::new();
    for g in elements {
        let key = keygen
            .galois_key(g)
            .with_context(|| format!("rotation key for Galois element {g}"))?;
        galois.insert(g, key);
        progress.advance();
    }
    progress.finish();
    let eval = EvaluationKeys {
        params_id: params.id(),
        a_seed: keygen.key_seed(),
        relin: Some(relin),
        galois,
    };
    let switching_keys = 1 + eval.galois.len();
    Ok(BenchKeys {
        secret: keygen.secret_key().clone(),
        public,
        eval,
        elapsed: start.elapsed(),
        switching_keys,
    })
}
