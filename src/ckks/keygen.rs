//! Key generation (client side): secret, public, relinearisation and Galois keys.

use super::galois::galois_elements;
use super::key_seed::{KeyPart, KeySeed};
use super::keys::{EvaluationKeys, PublicKey, SecretKey, SwitchingKey};
use super::{CkksError, Params};
use crate::math::sampling::{self, ChaCha20Rng};
use crate::ring::{arith, automorphism, Basis, RingContext, RnsPoly};
use rand_core::{RngCore, SeedableRng};
use zeroize::Zeroize;

/// A uniformly random polynomial over `basis`, drawn directly in NTT form (the NTT of a
/// uniform polynomial is uniform). Limb by limb, so a seeded stream is reproducible.
pub(crate) fn uniform_ntt(ctx: &RingContext, basis: Basis, rng: &mut impl RngCore) -> RnsPoly {
    let mut p = RnsPoly::zero(ctx.n(), basis, true);
    for (i, limb) in p.limbs_mut().enumerate() {
        let q = ctx.modulus(basis, i).value();
        limb.iter_mut()
            .for_each(|x| *x = sampling::uniform_below(rng, q));
    }
    p
}

/// A fresh discrete Gaussian error over `basis`, in NTT form.
pub(crate) fn gaussian_ntt(ctx: &RingContext, basis: Basis, rng: &mut impl RngCore) -> RnsPoly {
    let e = sampling::gaussian(rng, ctx.n());
    let mut p = arith::from_signed(ctx, &e, basis);
    arith::ntt_forward(ctx, &mut p);
    p
}

/// round(N(0, std²)) in every coefficient over `basis`, in NTT form: the PLL's perturbation
/// and flood, of any width (the error above is the fixed-width discrete Gaussian).
pub(crate) fn rounded_gaussian_ntt(
    ctx: &RingContext,
    basis: Basis,
    std: f64,
    rng: &mut impl RngCore,
) -> RnsPoly {
    let e = sampling::rounded_gaussian(rng, std, ctx.n());
    let mut p = arith::from_signed(ctx, &e, basis);
    arith::ntt_forward(ctx, &mut p);
    p
}

/// A fresh ternary polynomial over `basis`, in NTT form.
pub(crate) fn ternary_ntt(ctx: &RingContext, basis: Basis, rng: &mut impl RngCore) -> RnsPoly {
    let t = sampling::ternary(rng, ctx.n());
    let mut p = arith::from_signed(ctx, &t, basis);
    arith::ntt_forward(ctx, &mut p);
    p
}

/// Generates a secret key and, from it, everything a server may hold.
pub struct KeyGenerator {
    params: Params,
    secret: SecretKey,
    rng: ChaCha20Rng,
    /// Where every key's `a` comes from: the server's seed once given
    /// ([`set_key_seed`](Self::set_key_seed)), one of this generator's own until then.
    a_seed: KeySeed,
}

impl KeyGenerator {
    /// A new secret key from operating-system randomness.
    pub fn new(params: &Params) -> Result<Self, CkksError> {
        Ok(Self::with_rng(params, sampling::os_rng()?))
    }

    /// The secret key (and every later key's randomness) from a 32-byte seed: a client that
    /// keeps only the seed, on its own disk, gets the same secret key back on its next run.
    /// The seed is as secret as the key.
    pub fn from_seed(params: &Params, seed: [u8; 32]) -> Self {
        Self::with_rng(params, ChaCha20Rng::from_seed(seed))
    }

    fn with_rng(params: &Params, mut rng: ChaCha20Rng) -> Self {
        let ctx = params.ring();
        let mut coeffs = sampling::ternary(&mut rng, ctx.n());
        let mut ntt = arith::from_signed(ctx, &coeffs, ctx.full_basis());
        coeffs.zeroize();
        arith::ntt_forward(ctx, &mut ntt);
        let secret = SecretKey {
            ntt,
            params_id: params.id(),
        };
        let a_seed = KeySeed::draw(&mut rng);
        Self {
            params: params.clone(),
            secret,
            rng,
            a_seed,
        }
    }

    pub fn secret_key(&self) -> &SecretKey {
        &self.secret
    }

    /// Makes every later key's `a` from `seed`: the seed a server hands out at
    /// registration, without which it refuses the keys.
    pub fn set_key_seed(&mut self, seed: KeySeed) {
        self.a_seed = seed;
    }

    pub fn key_seed(&self) -> KeySeed {
        self.a_seed
    }

    pub fn public_key(&mut self) -> PublicKey {
        let ctx = self.params.ring().clone();
        let basis = Basis::level(self.params.max_level());
        let a = self.a_seed.expand(&ctx, basis, KeyPart::Public);
        let mut b = gaussian_ntt(&ctx, basis, &mut self.rng);
        let s = self.secret.ntt.restricted(basis);
        let mut as_ = a.clone();
        arith::mul_assign(&ctx, &mut as_, &s);
        arith::sub_assign(&ctx, &mut b, &as_);
        PublicKey {
            b,
            a,
            params_id: self.params.id(),
            a_seed: self.a_seed,
        }
    }

    /// Key for s² → s (relinearisation after a ciphertext product).
    pub fn relinearization_key(&mut self) -> SwitchingKey {
        let ctx = self.params.ring().clone();
        let mut s2 = self.secret.ntt.clone();
        arith::mul_assign(&ctx, &mut s2, &self.secret.ntt);
        self.switching_key(&s2, |digit| KeyPart::Relinearization { digit })
    }

    /// Key for σ_g(s) → s.
    pub fn galois_key(&mut self, galois: u64) -> Result<SwitchingKey, CkksError> {
        if !automorphism::is_galois_element(galois, self.params.n()) {
            return Err(CkksError::InvalidGaloisElement(galois));
        }
        let perm = automorphism::automorphism_ntt_permutation(self.params.n(), galois);
        let s_g = automorphism::automorphism_ntt(&self.secret.ntt, &perm);
        Ok(self.switching_key(&s_g, |digit| KeyPart::Galois {
            element: galois,
            digit,
        }))
    }

    /// Relinearisation key plus Galois keys for the given slot rotations (and
    /// conjugation if asked): the whole server-side key set.
    pub fn evaluation_keys(
        &mut self,
        rotations: &[i64],
        conjugation: bool,
    ) -> Result<EvaluationKeys, CkksError> {
        let n = self.params.n();
        let mut keys = EvaluationKeys {
            params_id: self.params.id(),
            a_seed: self.a_seed,
            relin: Some(self.relinearization_key()),
            ..Default::default()
        };
        for g in galois_elements(rotations, conjugation, n) {
            let key = self.galois_key(g)?;
            keys.galois.insert(g, key);
        }
        Ok(keys)
    }

    fn switching_key(&mut self, s_from: &RnsPoly, part: impl Fn(usize) -> KeyPart) -> SwitchingKey {
        let ctx = self.params.ring().clone();
        let basis = ctx.full_basis();
        let alpha = self.params.alpha();
        let digit_count = basis.q.div_ceil(alpha);
        let digits = (0..digit_count)
            .map(|j| {
                let a = self.a_seed.expand(&ctx, basis, part(j));
                let mut b = gaussian_ntt(&ctx, basis, &mut self.rng);
                let mut as_ = a.clone();
                arith::mul_assign(&ctx, &mut as_, &self.secret.ntt);
                arith::sub_assign(&ctx, &mut b, &as_);
                // + P·s' on the limbs of digit j (P ≡ 0 on the special limbs).
                for i in j * alpha..((j + 1) * alpha).min(basis.q) {
                    let m = ctx.modulus(basis, i);
                    let p_mod = ctx
                        .p()
                        .iter()
                        .fold(1u64, |acc, p| m.mul(acc, m.reduce(p.value())));
                    let (w, ws) = (p_mod, m.shoup(p_mod));
                    let src = s_from.limb(i).to_vec();
                    for (x, &s) in b.limb_mut(i).iter_mut().zip(&src) {
                        *x = m.add(*x, m.mul_shoup(s, w, ws));
                    }
                }
                [b, a]
            })
            .collect();
        SwitchingKey { digits }
    }
}
