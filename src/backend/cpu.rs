//! The CPU backend: the `ring` implementations over host memory (vectorised where the CPU
//! allows, bit-identical to the scalar references).
//!
//! Independent parts of one key switch are offered to the worker pool as tasks: the digits
//! of a decomposition, the steps of a hoisted batch and the limbs of an inner
//! product. A single token's work then spreads over the cores; under a batch that
//! already keeps every core busy the tasks simply run in place.

use super::{Backend, BackendError, KeySwitchStep};
use crate::ring::simd::{self, SimdTier};
use crate::ring::{arith, automorphism, rescale, Basis, BasisExtender, RingContext, RnsPoly};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Most steps of one hoisted batch ([`Backend::key_switch_batch`]).
const MAX_KEY_SWITCH_BATCH: usize = 8;

pub struct CpuBackend {
    ctx: Arc<RingContext>,
    extender: BasisExtender,
    /// NTT-domain permutations per Galois element, built on first use.
    permutations: RwLock<HashMap<u64, Arc<Vec<u32>>>>,
}

impl CpuBackend {
    /// A backend for `ctx` with key-switching digits of `alpha` primes.
    pub fn new(ctx: Arc<RingContext>, alpha: usize) -> Self {
        let extender = BasisExtender::new(&ctx, alpha);
        Self {
            ctx,
            extender,
            permutations: RwLock::new(HashMap::new()),
        }
    }

    fn permutation(&self, galois: u64) -> Arc<Vec<u32>> {
        if let Some(p) = self
            .permutations
            .read()
            .ok()
            .and_then(|m| m.get(&galois).cloned())
        {
            return p;
        }
        let perm = Arc::new(automorphism::automorphism_ntt_permutation(
            self.ctx.n(),
            galois,
        ));
        if let Ok(mut m) = self.permutations.write() {
            m.insert(galois, perm.clone());
        }
        perm
    }
}

impl Backend for CpuBackend {
    type Poly = RnsPoly;

    fn name(&self) -> &'static str {
        "cpu"
    }

    fn context(&self) -> &Arc<RingContext> {
        &self.ctx
    }

    fn upload(&self, p: &RnsPoly) -> Result<RnsPoly, BackendError> {
        self.upload_owned(p.clone())
    }

    fn upload_owned(&self, p: RnsPoly) -> Result<RnsPoly, BackendError> {
        if p.n() != self.ctx.n() || !self.ctx.contains(p.basis()) {
            return Err(BackendError::Shape(format!(
                "degree {} basis {:?}",
                p.n(),
                p.basis()
            )));
        }
        Ok(p)
    }

    fn download(&self, p: &RnsPoly) -> Result<RnsPoly, BackendError> {
        Ok(p.clone())
    }

    fn basis(&self, p: &RnsPoly) -> Basis {
        p.basis()
    }

    fn is_ntt(&self, p: &RnsPoly) -> bool {
        p.ntt_form
    }

    fn zero(&self, basis: Basis, ntt_form: bool) -> RnsPoly {
        RnsPoly::zero(self.ctx.n(), basis, ntt_form)
    }

    fn ntt_forward(&self, p: &mut RnsPoly) {
        arith::ntt_forward(&self.ctx, p)
    }

    fn ntt_inverse(&self, p: &mut RnsPoly) {
        arith::ntt_inverse(&self.ctx, p)
    }

    fn add_assign(&self, a: &mut RnsPoly, b: &RnsPoly) {
        arith::add_assign(&self.ctx, a, b)
    }

    fn sub_assign(&self, a: &mut RnsPoly, b: &RnsPoly) {
        arith::sub_assign(&self.ctx, a, b)
    }

    fn neg_assign(&self, a: &mut RnsPoly) {
        arith::neg_assign(&self.ctx, a)
    }

    fn mul_assign(&self, a: &mut RnsPoly, b: &RnsPoly) {
        arith::mul_assign(&self.ctx, a, b)
    }

    fn mul_add_assign(&self, acc: &mut RnsPoly, a: &RnsPoly, b: &RnsPoly) {
        arith::mul_add_assign(&self.ctx, acc, a, b)
    }

    fn mul_scalar_assign(&self, a: &mut RnsPoly, residues: &[u64]) {
        arith::mul_scalar_assign(&self.ctx, a, residues)
    }

    fn automorphism(&self, p: &RnsPoly, galois: u64) -> RnsPoly {
        if p.ntt_form {
            automorphism::automorphism_ntt(p, &self.permutation(galois))
        } else {
            automorphism::automorphism_coeff(&self.ctx, p, galois)
        }
    }

    fn truncate_q(&self, p: &mut RnsPoly, q: usize) {
        p.truncate_q(q)
    }

    fn rescale(&self, p: &RnsPoly) -> RnsPoly {
        rescale(&self.ctx, p)
    }

    fn decompose(&self, c: &RnsPoly) -> Vec<RnsPoly> {
        let level = c.basis().q - 1;
        let mut coeff = c.clone();
        arith::ntt_inverse(&self.ctx, &mut coeff);
        (0..self.extender.digit_count(level))
            .into_par_iter()
            .map(|j| self.extender.mod_up(&self.ctx, &coeff, c, j))
            .collect()
    }

    fn key_switch_inner_product(
        &self,
        digits: &[RnsPoly],
        key: &[[RnsPoly; 2]],
        galois: Option<u64>,
    ) -> [RnsPoly; 2] {
        let basis = digits[0].basis();
        let key_q = key[0][0].basis().q;
        let perm = galois.map(|g| self.permutation(g));
        let path = SimdTier::best();
        let mut out = [
            RnsPoly::zero(self.ctx.n(), basis, true),
            RnsPoly::zero(self.ctx.n(), basis, true),
        ];
        let [out0, out1] = &mut out;
        // Below the top level the key has more digits than the input; they go unused.
        let key = &key[..digits.len()];
        let limbs: Vec<_> = out0.limbs_mut().zip(out1.limbs_mut()).enumerate().collect();
        limbs.into_par_iter().for_each(|(limb, (o0, o1))| {
            let m = self.ctx.modulus(basis, limb);
            // Key limbs: same ciphertext prime index, special primes after all of Q_L.
            let key_limb = if basis.is_special(limb) {
                key_q + limb - basis.q
            } else {
                limb
            };
            let d: Vec<&[u64]> = digits.iter().map(|p| p.limb(limb)).collect();
            let k0: Vec<&[u64]> = key.iter().map(|k| k[0].limb(key_limb)).collect();
            let k1: Vec<&[u64]> = key.iter().map(|k| k[1].limb(key_limb)).collect();
            // The parameter check guarantees that `digits` products below 2^(2·62) fit
            // in the scalar path's 128-bit accumulators.
            simd::inner_product(
                path,
                m,
                &d,
                perm.as_ref().map(|p| p.as_slice()),
                [&k0, &k1],
                [o0, o1],
            );
        });
        out
    }

    fn key_switch_inner_products(
        &self,
        digits: &[RnsPoly],
        steps: &[KeySwitchStep<'_, RnsPoly>],
    ) -> Vec<[RnsPoly; 2]> {
        steps
            .par_iter()
            .map(|&(key, galois)| self.key_switch_inner_product(digits, key, galois))
            .collect()
    }

    fn automorphisms(&self, p: &RnsPoly, galois: &[u64]) -> Vec<RnsPoly> {
        galois
            .par_iter()
            .map(|&g| self.automorphism(p, g))
            .collect()
    }

    /// One step per worker thread (at most 8): each thread has a step to work on, and a
    /// step's extended output (2·(l+1+k)·N words, 512 KB at N = 2^13) is accumulated while
    /// it is still in cache. Batches of 8 on one thread made 8 hoisted rotations 10–20 %
    /// slower (their outputs spill to L3).
    fn key_switch_batch(&self, _basis: Basis) -> usize {
        rayon::current_num_threads().clamp(1, MAX_KEY_SWITCH_BATCH)
    }

    fn host_parallel(&self) -> bool {
        true
    }

    fn mod_down(&self, x: &RnsPoly) -> RnsPoly {
        self.extender.mod_down(&self.ctx, x)
    }
}
