//! Encryption (public-key, and seeded symmetric for the client's uploads) and decryption.

use super::ciphertext::{Ciphertext, Plaintext, SeededCiphertext};
use super::keygen::{gaussian_ntt, ternary_ntt, uniform_ntt};
use super::keys::{PublicKey, SecretKey};
use super::{CkksError, Params};
use crate::math::sampling::{self, NoiseRng};
use crate::ring::{arith, Basis, RnsPoly};
use rand_core::RngCore;

fn check_plaintext(params: &Params, pt: &Plaintext) -> Result<(), CkksError> {
    params.ensure_level_poly(&pt.poly, pt.level, "plaintext")
}

/// Public-key encryption: c = (b·u + e0 + m, a·u + e1).
pub struct Encryptor {
    params: Params,
    key: PublicKey,
    rng: NoiseRng,
}

impl Encryptor {
    pub fn new(params: &Params, key: PublicKey) -> Result<Self, CkksError> {
        params.ensure_id(key.params_id)?;
        Ok(Self {
            params: params.clone(),
            key,
            rng: sampling::os_noise_rng()?,
        })
    }

    pub fn encrypt(&mut self, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        encrypt_public(&self.params, &self.key, pt, &mut self.rng)
    }

    /// As [`encrypt`](Self::encrypt), with the randomness drawn from `rng` (a
    /// cryptographically secure stream the caller owns), so that one encryptor can serve
    /// several threads.
    pub fn encrypt_with(
        &self,
        pt: &Plaintext,
        rng: &mut impl RngCore,
    ) -> Result<Ciphertext, CkksError> {
        encrypt_public(&self.params, &self.key, pt, rng)
    }
}

/// c = (b·u + e0 + m, a·u + e1) under `key`, with randomness from `rng`.
fn encrypt_public(
    params: &Params,
    key: &PublicKey,
    pt: &Plaintext,
    rng: &mut impl RngCore,
) -> Result<Ciphertext, CkksError> {
    check_plaintext(params, pt)?;
    let ctx = params.ring();
    let basis = Basis::level(pt.level);
    let u = ternary_ntt(ctx, basis, rng);
    let mut c0 = gaussian_ntt(ctx, basis, rng);
    let mut c1 = gaussian_ntt(ctx, basis, rng);
    arith::mul_add_assign(ctx, &mut c0, &key.b.restricted(basis), &u);
    arith::mul_add_assign(ctx, &mut c1, &key.a.restricted(basis), &u);
    arith::add_assign(ctx, &mut c0, &pt.poly);
    Ok(Ciphertext {
        c0,
        c1,
        level: pt.level,
        scale: pt.scale,
    })
}

/// Secret-key encryption, whose `a` half is the expansion of a fresh 32-byte seed.
pub struct SymmetricEncryptor {
    params: Params,
    secret: SecretKey,
    rng: NoiseRng,
}

impl SymmetricEncryptor {
    pub fn new(params: &Params, secret: &SecretKey) -> Result<Self, CkksError> {
        params.ensure_id(secret.params_id)?;
        Ok(Self {
            params: params.clone(),
            secret: secret.clone(),
            rng: sampling::os_noise_rng()?,
        })
    }

    /// c0 = −a·s + e + m with a = expand(seed).
    pub fn encrypt_seeded(&mut self, pt: &Plaintext) -> Result<SeededCiphertext, CkksError> {
        check_plaintext(&self.params, pt)?;
        let ctx = self.params.ring().clone();
        let basis = Basis::level(pt.level);
        let seed = sampling::os_seed()?;
        let secret = &self.secret;
        let rng = &mut self.rng;
        // a·s and e are independent: two tasks.
        let (as_, mut c0) = rayon::join(
            || {
                let mut a = uniform_ntt(&ctx, basis, &mut sampling::expansion_rng(seed));
                arith::mul_assign(&ctx, &mut a, &secret.ntt.restricted(basis));
                a
            },
            || gaussian_ntt(&ctx, basis, rng),
        );
        arith::sub_assign(&ctx, &mut c0, &as_);
        arith::add_assign(&ctx, &mut c0, &pt.poly);
        Ok(SeededCiphertext {
            c0,
            seed,
            level: pt.level,
            scale: pt.scale,
        })
    }

    /// A full ciphertext (the seeded one, expanded).
    pub fn encrypt(&mut self, pt: &Plaintext) -> Result<Ciphertext, CkksError> {
        let seeded = self.encrypt_seeded(pt)?;
        expand_seeded(&self.params, &seeded)
    }
}

/// Regenerates `c1 = a` from the seed (what the server does on receipt).
pub fn expand_seeded(params: &Params, ct: &SeededCiphertext) -> Result<Ciphertext, CkksError> {
    let ctx = params.ring();
    let basis = Basis::level(ct.level);
    params.ensure_level_poly(&ct.c0, ct.level, "seeded ciphertext c0")?;
    let c1 = uniform_ntt(ctx, basis, &mut sampling::expansion_rng(ct.seed));
    Ok(Ciphertext {
        c0: ct.c0.clone(),
        c1,
        level: ct.level,
        scale: ct.scale,
    })
}

/// Decryption: m = c0 + c1·s.
pub struct Decryptor {
    params: Params,
    secret: SecretKey,
}

impl Decryptor {
    pub fn new(params: &Params, secret: &SecretKey) -> Result<Self, CkksError> {
        params.ensure_id(secret.params_id)?;
        Ok(Self {
            params: params.clone(),
            secret: secret.clone(),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub(crate) fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext, CkksError> {
        let ctx = self.params.ring();
        let basis = Basis::level(ct.level);
        self.params
            .ensure_level_poly(&ct.c0, ct.level, "ciphertext c0")?;
        self.params
            .ensure_level_poly(&ct.c1, ct.level, "ciphertext c1")?;
        let mut m: RnsPoly = ct.c1.clone();
        arith::mul_assign(ctx, &mut m, &self.secret.ntt.restricted(basis));
        arith::add_assign(ctx, &mut m, &ct.c0);
        Ok(Plaintext {
            poly: m,
            level: ct.level,
            scale: ct.scale,
        })
    }
}
