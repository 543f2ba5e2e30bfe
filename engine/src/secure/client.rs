//! The user's side: the secret key (which never leaves this type), seeded encryption of a
//! projection's input and decryption of the server's compact replies.

use super::manifest::Manifest;
use super::scaling::InputScaling;
use super::server::{Reply, Request};
use crate::progress::Progress;
use anyhow::{anyhow, bail, Context, Result};
use helora::ckks::{
    galois_elements, CompactCiphertext, Decryptor, Encoder, EvaluationKeys, KeyGenerator, Params,
    Serializable, SymmetricEncryptor,
};
use rayon::prelude::*;
use std::collections::BTreeMap;

fn check_params(params: &Params, manifest: &Manifest) -> Result<()> {
    if manifest.params_id != params.id() {
        bail!("the server uses other CKKS parameters than this client");
    }
    Ok(())
}

/// What the client sends once, before its first request.
pub struct KeyUpload {
    pub eval_keys: Vec<u8>,
    pub public_key: Vec<u8>,
}

pub struct SecureClient {
    params: Params,
    encoder: Encoder,
    encryptor: SymmetricEncryptor,
    decryptor: Decryptor,
    manifest: Manifest,
}

impl SecureClient {
    /// Makes a secret key and the evaluation keys `manifest` asks for.
    pub fn new(params: &Params, manifest: Manifest) -> Result<(Self, KeyUpload)> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|e| anyhow!("no OS randomness: {e}"))?;
        Self::with_keys(params, manifest, &seed)
    }

    /// The secret key grown from `seed` (as secret as the key; a client that keeps it on its
    /// own disk gets the same key back), and the evaluation keys `manifest` asks for.
    pub fn with_keys(
        params: &Params,
        manifest: Manifest,
        seed: &[u8; 32],
    ) -> Result<(Self, KeyUpload)> {
        check_params(params, &manifest)?;
        let elements = galois_elements(&manifest.rotation_steps, false, params.n());
        let progress = Progress::start(
            &format!("generating {} rotation keys", elements.len()),
            elements.len() as u64 + 1,
        );
        let mut keygen = KeyGenerator::from_seed(params, *seed);
        keygen.set_key_seed(manifest.key_seed);
        let public_key = keygen.public_key();
        progress.advance();
        // LoRA plans multiply by plaintexts only: no relinearisation key is needed.
        let mut galois = BTreeMap::new();
        for g in elements {
            galois.insert(g, keygen.galois_key(g)?);
            progress.advance();
        }
        progress.finish();
        let keys = EvaluationKeys {
            params_id: params.id(),
            a_seed: manifest.key_seed,
            relin: None,
            galois,
        };
        let upload = KeyUpload {
            eval_keys: keys.to_bytes(params)?,
            public_key: public_key.to_bytes(params)?,
        };
        Ok((Self::from_keygen(params, manifest, &keygen)?, upload))
    }

    /// The client of a key set made before from `seed` (registered with the server
    /// already): no evaluation keys are made.
    pub fn from_seed(params: &Params, manifest: Manifest, seed: &[u8; 32]) -> Result<Self> {
        check_params(params, &manifest)?;
        Self::from_keygen(params, manifest, &KeyGenerator::from_seed(params, *seed))
    }

    fn from_keygen(params: &Params, manifest: Manifest, keygen: &KeyGenerator) -> Result<Self> {
        Ok(Self {
            params: params.clone(),
            encoder: Encoder::new(params.n())?,
            encryptor: SymmetricEncryptor::new(params, keygen.secret_key())?,
            decryptor: Decryptor::new(params, keygen.secret_key())?,
            manifest,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Encrypts one token's input `x` to the projections `modules` of `layer`, which must
    /// all be adapted and share one input layout.
    pub fn encrypt(&mut self, layer: usize, modules: &[&str], x: &[f32]) -> Result<Request> {
        let first = modules
            .first()
            .ok_or_else(|| anyhow!("no module to encrypt for"))?;
        let shape = self
            .manifest
            .find(layer, first)
            .ok_or_else(|| anyhow!("the server does not adapt layer {layer} {first}"))?;
        let layout = shape.input_layout(self.params.slots())?;
        for m in &modules[1..] {
            let other = self
                .manifest
                .find(layer, m)
                .ok_or_else(|| anyhow!("the server does not adapt layer {layer} {m}"))?;
            if other.input_layout(self.params.slots())? != layout || other.level != shape.level {
                bail!("layer {layer}: {first} and {m} do not share an input layout");
            }
        }
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        // The widest bound of the projections sharing this input sizes its normalisation.
        let bound_log2 = modules
            .iter()
            .filter_map(|m| self.manifest.find(layer, m))
            .map(|p| p.bound_log2)
            .max()
            .unwrap_or(shape.bound_log2);
        let scaling = InputScaling::for_input(&x, bound_log2)
            .with_context(|| format!("layer {layer} {first}"))?;
        let x: Vec<f64> = x.iter().map(|v| v * scaling.input_factor()).collect();
        let scale = self.params.default_scale();
        let inputs = layout
            .pack(&x)?
            .iter()
            .map(|slots| {
                let pt = self
                    .encoder
                    .encode_at(&self.params, slots, shape.level, scale)?;
                let seeded = self.encryptor.encrypt_seeded(&pt)?;
                Ok(seeded.to_bytes(&self.params)?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Request {
            layer,
            modules: modules.iter().map(|m| m.to_string()).collect(),
            inputs,
            scaling,
        })
    }

    /// The deltas of a reply to `request`, one vector of d_out values per module.
    pub fn decrypt(&self, request: &Request, reply: &Reply) -> Result<Vec<Vec<f32>>> {
        if reply.outputs.len() != request.modules.len() {
            bail!(
                "the reply holds {} outputs for {} projections",
                reply.outputs.len(),
                request.modules.len()
            );
        }
        // Every output ciphertext decrypts and decodes on its own core (the FFT and the
        // CRT dominate the client's share of a token).
        let decoded = reply
            .outputs
            .par_iter()
            .map(|cts| {
                cts.par_iter()
                    .map(|bytes| {
                        let ct = CompactCiphertext::from_bytes(&self.params, bytes)
                            .context("reply ciphertext")?;
                        let pt = self.decryptor.decrypt_compact(&ct)?;
                        Ok(self.encoder.decode_plaintext(&self.params, &pt)?)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        request
            .modules
            .iter()
            .zip(decoded)
            .map(|(module, decoded)| {
                let shape = self
                    .manifest
                    .find(request.layer, module)
                    .ok_or_else(|| anyhow!("reply for unknown layer {} {module}", request.layer))?;
                // Every slot, the unused ones included: a wrap shows in all of them.
                for slots in &decoded {
                    request.scaling.check(slots, request.layer, module)?;
                }
                let layout = shape.output_layout(self.params.slots())?;
                let y = layout.unpack(&decoded)?;
                let factor = request.scaling.output_factor();
                Ok(y.into_iter().map(|v| (v * factor) as f32).collect())
            })
            .collect()
    }
}
