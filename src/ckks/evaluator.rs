//! Homomorphic operations on ciphertexts, through a [`Backend`]: the server side.

use super::ciphertext::{Ciphertext, ExtendedPlaintext, Plaintext};
use super::galois::{conjugation_element, rotation_element};
use super::keys::{EvaluationKeys, SwitchingKey};
use super::{CkksError, Params};
use crate::backend::{Backend, CpuBackend};
use crate::ring::{Basis, RnsPoly};
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

/// The terms (rotation step, plaintext) of one hoisted linear combination.
pub type Terms<'a, P> = [(i64, &'a ExtendedPlaintext<P>)];

/// The hybrid key-switching digits of one ciphertext's c1, extended to Q_l ∪ P.
pub struct Decomposed<P> {
    digits: Vec<P>,
    level: usize,
}

/// Relative tolerance when two scales must agree.
const SCALE_TOLERANCE: f64 = 1e-9;

type DeviceKey<B> = Vec<[<B as Backend>::Poly; 2]>;

pub struct Evaluator<B: Backend = CpuBackend> {
    params: Params,
    backend: B,
    relin: Option<DeviceKey<B>>,
    galois: HashMap<u64, DeviceKey<B>>,
}

impl Evaluator<CpuBackend> {
    /// An evaluator on the CPU backend.
    pub fn cpu(params: &Params) -> Self {
        let backend = CpuBackend::new(params.ring().clone(), params.alpha());
        Self {
            params: params.clone(),
            backend,
            relin: None,
            galois: HashMap::new(),
        }
    }
}

impl<B: Backend> Evaluator<B> {
    pub fn with_backend(params: &Params, backend: B) -> Result<Self, CkksError> {
        if backend.context().n() != params.n()
            || backend.context().q().len() != params.q_primes().len()
        {
            return Err(CkksError::InvalidParams(
                "backend ring does not match the parameters".into(),
            ));
        }
        Ok(Self {
            params: params.clone(),
            backend,
            relin: None,
            galois: HashMap::new(),
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Loads a client's evaluation keys into backend memory.
    pub fn set_keys(&mut self, keys: &EvaluationKeys) -> Result<(), CkksError> {
        self.params.ensure_id(keys.params_id)?;
        let n = self.params.n();
        if let Some(&g) = keys
            .galois
            .keys()
            .find(|&&g| g == 1 || !crate::ring::automorphism::is_galois_element(g, n))
        {
            return Err(CkksError::InvalidGaloisElement(g));
        }
        self.relin = keys
            .relin
            .as_ref()
            .map(|k| self.upload_key(k))
            .transpose()?;
        self.galois = keys
            .galois
            .iter()
            .map(|(&g, k)| Ok((g, self.upload_key(k)?)))
            .collect::<Result<_, CkksError>>()?;
        Ok(())
    }

    fn upload_key(&self, key: &SwitchingKey) -> Result<DeviceKey<B>, CkksError> {
        let ctx = self.params.ring();
        let expected = ctx.full_basis().q.div_ceil(self.params.alpha());
        if key.digits.len() != expected {
            return Err(CkksError::Malformed(format!(
                "switching key has {} digits, expected {expected}",
                key.digits.len()
            )));
        }
        key.digits
            .iter()
            .map(|[b, a]| {
                for p in [b, a] {
                    if p.basis() != ctx.full_basis() || !p.ntt_form || p.n() != ctx.n() {
                        return Err(CkksError::Malformed(
                            "switching key polynomial is not over Q_L ∪ P in NTT form".into(),
                        ));
                    }
                }
                Ok([self.backend.upload(b)?, self.backend.upload(a)?])
            })
            .collect()
    }

    /// Galois elements this evaluator holds keys for.
    pub fn galois_elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.galois.keys().copied()
    }

    fn check(&self, ct: &Ciphertext<B::Poly>) -> Result<(), CkksError> {
        let basis = Basis::level(ct.level);
        if ct.level > self.params.max_level()
            || self.backend.basis(&ct.c0) != basis
            || self.backend.basis(&ct.c1) != basis
        {
            return Err(CkksError::Malformed(format!(
                "ciphertext limbs do not match its level {}",
                ct.level
            )));
        }
        Ok(())
    }

    pub fn upload(&self, ct: &Ciphertext) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.params
            .ensure_level_poly(&ct.c0, ct.level, "ciphertext c0")?;
        self.params
            .ensure_level_poly(&ct.c1, ct.level, "ciphertext c1")?;
        Ok(Ciphertext {
            c0: self.backend.upload(&ct.c0)?,
            c1: self.backend.upload(&ct.c1)?,
            level: ct.level,
            scale: ct.scale,
        })
    }

    pub fn download(&self, ct: &Ciphertext<B::Poly>) -> Result<Ciphertext, CkksError> {
        Ok(Ciphertext {
            c0: self.backend.download(&ct.c0)?,
            c1: self.backend.download(&ct.c1)?,
            level: ct.level,
            scale: ct.scale,
        })
    }

    pub fn upload_plaintext(&self, pt: &Plaintext) -> Result<Plaintext<B::Poly>, CkksError> {
        self.params
            .ensure_level_poly(&pt.poly, pt.level, "plaintext")?;
        Ok(Plaintext {
            poly: self.backend.upload(&pt.poly)?,
            level: pt.level,
            scale: pt.scale,
        })
    }

    fn same_scale(a: f64, b: f64) -> Result<(), CkksError> {
        if (a - b).abs() > SCALE_TOLERANCE * a.abs().max(b.abs()) {
            return Err(CkksError::ScaleMismatch { left: a, right: b });
        }
        Ok(())
    }

    /// Both operands at the lower of their levels.
    /// Brings `acc` and `b` to one level (the lower) and checks their scales; returns `b`'s
    /// limbs at that level, copied only when `b` had to drop.
    fn align_into<'b>(
        &self,
        acc: &mut Ciphertext<B::Poly>,
        b: &'b Ciphertext<B::Poly>,
    ) -> Result<Cow<'b, Ciphertext<B::Poly>>, CkksError> {
        self.check(acc)?;
        self.check(b)?;
        Self::same_scale(acc.scale, b.scale)?;
        if acc.level > b.level {
            self.backend.truncate_q(&mut acc.c0, b.level + 1);
            self.backend.truncate_q(&mut acc.c1, b.level + 1);
            acc.level = b.level;
        }
        self.at_level(b, acc.level)
    }

    /// `a` at `level` (≤ its own), copied only when limbs must be dropped.
    fn at_level<'c>(
        &self,
        a: &'c Ciphertext<B::Poly>,
        level: usize,
    ) -> Result<Cow<'c, Ciphertext<B::Poly>>, CkksError> {
        if a.level == level {
            self.check(a)?;
            Ok(Cow::Borrowed(a))
        } else {
            Ok(Cow::Owned(self.drop_to_level(a, level)?))
        }
    }

    /// acc += b (at the lower of the two levels).
    pub fn add_assign(
        &self,
        acc: &mut Ciphertext<B::Poly>,
        b: &Ciphertext<B::Poly>,
    ) -> Result<(), CkksError> {
        self.combine_into(acc, b, B::add_assign)
    }

    /// acc −= b (at the lower of the two levels).
    pub fn sub_assign(
        &self,
        acc: &mut Ciphertext<B::Poly>,
        b: &Ciphertext<B::Poly>,
    ) -> Result<(), CkksError> {
        self.combine_into(acc, b, B::sub_assign)
    }

    /// Applies a limb-wise backend operation to both halves, after aligning the levels.
    fn combine_into(
        &self,
        acc: &mut Ciphertext<B::Poly>,
        b: &Ciphertext<B::Poly>,
        op: fn(&B, &mut B::Poly, &B::Poly),
    ) -> Result<(), CkksError> {
        let b = self.align_into(acc, b)?;
        op(&self.backend, &mut acc.c0, &b.c0);
        op(&self.backend, &mut acc.c1, &b.c1);
        Ok(())
    }

    pub fn add(
        &self,
        a: &Ciphertext<B::Poly>,
        b: &Ciphertext<B::Poly>,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        let mut out = a.clone();
        self.add_assign(&mut out, b)?;
        Ok(out)
    }

    pub fn sub(
        &self,
        a: &Ciphertext<B::Poly>,
        b: &Ciphertext<B::Poly>,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        let mut out = a.clone();
        self.sub_assign(&mut out, b)?;
        Ok(out)
    }

    pub fn negate(&self, a: &Ciphertext<B::Poly>) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let mut out = a.clone();
        self.backend.neg_assign(&mut out.c0);
        self.backend.neg_assign(&mut out.c1);
        Ok(out)
    }

    /// Adds a plaintext of the same scale.
    pub fn add_plain(
        &self,
        a: &Ciphertext<B::Poly>,
        pt: &Plaintext<B::Poly>,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        Self::same_scale(a.scale, pt.scale)?;
        let poly = self.plaintext_at(pt, a.level)?;
        let mut out = a.clone();
        self.backend.add_assign(&mut out.c0, &poly);
        Ok(out)
    }

    /// The plaintext's limbs at `level`, copied only when limbs must be dropped.
    fn plaintext_at<'p>(
        &self,
        pt: &'p Plaintext<B::Poly>,
        level: usize,
    ) -> Result<Cow<'p, B::Poly>, CkksError> {
        if pt.level < level {
            return Err(CkksError::LevelMismatch {
                needed: level,
                found: pt.level,
            });
        }
        if pt.level == level {
            return Ok(Cow::Borrowed(&pt.poly));
        }
        let mut poly = pt.poly.clone();
        self.backend.truncate_q(&mut poly, level + 1);
        Ok(Cow::Owned(poly))
    }

    /// Ciphertext × plaintext; the scales multiply.
    pub fn mul_plain(
        &self,
        a: &Ciphertext<B::Poly>,
        pt: &Plaintext<B::Poly>,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let poly = self.plaintext_at(pt, a.level)?;
        let mut out = a.clone();
        self.backend.mul_assign(&mut out.c0, &poly);
        self.backend.mul_assign(&mut out.c1, &poly);
        out.scale *= pt.scale;
        Ok(out)
    }

    /// Multiplies by an integer; the scale is unchanged and no level is used.
    pub fn mul_integer(
        &self,
        a: &Ciphertext<B::Poly>,
        k: i64,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let residues: Vec<u64> = self.params.ring().q()[..=a.level]
            .iter()
            .map(|m| m.from_i64(k))
            .collect();
        Ok(self.mul_residues(a, &residues, 1.0))
    }

    /// Multiplies by a real constant, encoded as round(c·q_level) so that the next rescale
    /// restores the ciphertext's scale exactly.
    pub fn mul_scalar(
        &self,
        a: &Ciphertext<B::Poly>,
        c: f64,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let q_top = self.params.ring().q()[a.level].value() as f64;
        let scaled = (c * q_top).round();
        if !scaled.is_finite() || scaled.abs() >= 2f64.powi(126) {
            return Err(CkksError::Malformed(format!(
                "constant {c} cannot be encoded"
            )));
        }
        let v = scaled as i128;
        let residues: Vec<u64> = self.params.ring().q()[..=a.level]
            .iter()
            .map(|m| m.from_i128(v))
            .collect();
        Ok(self.mul_residues(a, &residues, q_top))
    }

    fn mul_residues(
        &self,
        a: &Ciphertext<B::Poly>,
        residues: &[u64],
        scale_factor: f64,
    ) -> Ciphertext<B::Poly> {
        let mut out = a.clone();
        self.backend.mul_scalar_assign(&mut out.c0, residues);
        self.backend.mul_scalar_assign(&mut out.c1, residues);
        out.scale *= scale_factor;
        out
    }

    /// Ciphertext × ciphertext with relinearisation; the scales multiply.
    pub fn mul_relin(
        &self,
        a: &Ciphertext<B::Poly>,
        b: &Ciphertext<B::Poly>,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        self.check(b)?;
        let key = self.relin.as_ref().ok_or(CkksError::MissingRelinKey)?;
        let level = a.level.min(b.level);
        let (a, b) = (self.at_level(a, level)?, self.at_level(b, level)?);
        let mut d0 = a.c0.clone();
        self.backend.mul_assign(&mut d0, &b.c0);
        let mut d1 = a.c0.clone();
        self.backend.mul_assign(&mut d1, &b.c1);
        self.backend.mul_add_assign(&mut d1, &a.c1, &b.c0);
        let mut d2 = a.c1.clone();
        self.backend.mul_assign(&mut d2, &b.c1);
        let digits = self.backend.decompose(&d2);
        let [k0, k1] = self.switch(&digits, key, None);
        self.backend.add_assign(&mut d0, &k0);
        self.backend.add_assign(&mut d1, &k1);
        Ok(Ciphertext {
            c0: d0,
            c1: d1,
            level,
            scale: a.scale * b.scale,
        })
    }

    /// Divides by the top prime: one level down, scale / q_level.
    pub fn rescale(&self, a: &Ciphertext<B::Poly>) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        if a.level == 0 {
            return Err(CkksError::LevelTooLow {
                operation: "rescale",
                level: 0,
            });
        }
        let q_top = self.params.ring().q()[a.level].value() as f64;
        Ok(Ciphertext {
            c0: self.backend.rescale(&a.c0),
            c1: self.backend.rescale(&a.c1),
            level: a.level - 1,
            scale: a.scale / q_top,
        })
    }

    /// Drops limbs down to `level` without changing the message or scale.
    pub fn drop_to_level(
        &self,
        a: &Ciphertext<B::Poly>,
        level: usize,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        if level > a.level {
            return Err(CkksError::LevelMismatch {
                needed: level,
                found: a.level,
            });
        }
        let mut out = a.clone();
        self.backend.truncate_q(&mut out.c0, level + 1);
        self.backend.truncate_q(&mut out.c1, level + 1);
        out.level = level;
        Ok(out)
    }

    /// Rotates the slots left by `step` (right for negative steps).
    pub fn rotate(
        &self,
        a: &Ciphertext<B::Poly>,
        step: i64,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        let g = rotation_element(step, self.params.n());
        if g == 1 {
            self.check(a)?;
            return Ok(a.clone());
        }
        self.apply_galois(a, g)
    }

    /// Complex-conjugates every slot.
    pub fn conjugate(&self, a: &Ciphertext<B::Poly>) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.apply_galois(a, conjugation_element(self.params.n()))
    }

    /// X → X^g followed by a key switch back to s. The automorphism is folded into the key
    /// switch's inner product (σ_g commutes with the decomposition).
    pub fn apply_galois(
        &self,
        a: &Ciphertext<B::Poly>,
        g: u64,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let digits = self.backend.decompose(&a.c1);
        self.galois_from_digits(a, &digits, g)
    }

    /// Rotations by every step in `steps` sharing one decomposition of the input (hoisting):
    /// each extra step costs an inner product and a ModDown, not a new decomposition. Steps
    /// that rotate alike (repeats, or steps equal modulo the slot count) are computed once
    /// and copied. The inner products and c0's automorphisms run in batches of the
    /// backend's [`key_switch_batch`](Backend::key_switch_batch) steps (one launch each on
    /// a device).
    pub fn rotate_hoisted(
        &self,
        a: &Ciphertext<B::Poly>,
        steps: &[i64],
    ) -> Result<Vec<Ciphertext<B::Poly>>, CkksError> {
        self.check(a)?;
        let n = self.params.n();
        let elements = self.rotation_elements(steps.iter().copied())?;
        let mut done = Vec::with_capacity(elements.len());
        if !elements.is_empty() {
            let digits = self.backend.decompose(&a.c1);
            let batch = self.hoisting_batch(a.level);
            for chunk in elements.chunks(batch) {
                let switched = self.inner_products(&digits, chunk)?;
                let c0_rotated = self.backend.automorphisms(&a.c0, chunk);
                for (x, c0_g) in switched.iter().zip(&c0_rotated) {
                    done.push(self.rotated(a, x, c0_g));
                }
            }
        }
        // Back into the order of `steps`, identities as copies of the input; a result is
        // copied for all but the last step that uses it, which takes it.
        let index = |s: i64| elements.iter().position(|&e| e == rotation_element(s, n));
        let mut uses = vec![0usize; elements.len()];
        steps
            .iter()
            .filter_map(|&s| index(s))
            .for_each(|i| uses[i] += 1);
        let mut done: Vec<Option<Ciphertext<B::Poly>>> = done.into_iter().map(Some).collect();
        steps
            .iter()
            .map(|&s| {
                let Some(i) = index(s) else {
                    return Ok(a.clone());
                };
                uses[i] -= 1;
                let result = if uses[i] == 0 {
                    done.get_mut(i).and_then(Option::take)
                } else {
                    done.get(i).cloned().flatten()
                };
                result.ok_or(CkksError::Malformed(
                    "hoisted rotation computed fewer results than steps".into(),
                ))
            })
            .collect()
    }

    /// a + Σ_s rot(a, s) over distinct non-identity `steps`, with one decomposition of `a`
    /// and one ModDown per half for the whole sum: the key-switch outputs are added over
    /// Q_l ∪ P, so each step costs an inner product and an addition, and the sum carries
    /// one rounding error instead of one per step. The steps' inner products run in
    /// batches, as in [`rotate_hoisted`](Self::rotate_hoisted), and are added in the
    /// steps' order, whatever runs where.
    pub fn add_rotations_hoisted(
        &self,
        a: &Ciphertext<B::Poly>,
        steps: &[i64],
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let elements = self.rotation_elements(steps.iter().copied())?;
        if elements.len() != steps.len() {
            return Err(CkksError::Malformed(format!(
                "a sum of rotations needs distinct non-identity steps, got {steps:?}"
            )));
        }
        let mut out = a.clone();
        if elements.is_empty() {
            return Ok(out);
        }
        let digits = self.backend.decompose(&a.c1);
        // The first step's key-switch outputs start the sums over Q_l ∪ P (no zeroed
        // buffers: at radix 2 every fold level is a single step).
        let mut sums: Option<[B::Poly; 2]> = None;
        for chunk in elements.chunks(self.hoisting_batch(a.level)) {
            let mut switched = self.inner_products(&digits, chunk)?.into_iter();
            let c0_rotated = self.backend.automorphisms(&a.c0, chunk);
            let [mut e0, mut e1] =
                sums.take()
                    .or_else(|| switched.next())
                    .ok_or(CkksError::Malformed(
                        "a hoisted sum computed no key switch".into(),
                    ))?;
            let rest: Vec<_> = switched.collect();
            let c0 = &mut out.c0;
            self.join(
                || {
                    rest.iter()
                        .for_each(|[x0, _]| self.backend.add_assign(&mut e0, x0));
                    c0_rotated
                        .iter()
                        .for_each(|c0_g| self.backend.add_assign(c0, c0_g));
                },
                || {
                    rest.iter()
                        .for_each(|[_, x1]| self.backend.add_assign(&mut e1, x1));
                },
            );
            sums = Some([e0, e1]);
        }
        let [e0, e1] = sums.ok_or(CkksError::Malformed(
            "a hoisted sum computed no key switch".into(),
        ))?;
        let (d0, d1) = self.join(|| self.backend.mod_down(&e0), || self.backend.mod_down(&e1));
        self.backend.add_assign(&mut out.c0, &d0);
        self.backend.add_assign(&mut out.c1, &d1);
        Ok(out)
    }

    /// The distinct Galois elements of the rotations by `steps` other than the identity, in
    /// first-seen order, each checked to have a key (before any work is done).
    fn rotation_elements(
        &self,
        steps: impl IntoIterator<Item = i64>,
    ) -> Result<Vec<u64>, CkksError> {
        let n = self.params.n();
        let mut elements: Vec<u64> = Vec::new();
        for s in steps {
            let g = rotation_element(s, n);
            if g == 1 || elements.contains(&g) {
                continue;
            }
            if !self.galois.contains_key(&g) {
                return Err(CkksError::MissingGaloisKey {
                    galois: g,
                    step: Some(s),
                });
            }
            elements.push(g);
        }
        Ok(elements)
    }

    /// σ_g(a) from its key switch `[x0, x1]` over Q_l ∪ P and σ_g(a.c0): the ModDowns,
    /// with σ_g(c0) added to the first half.
    fn rotated(
        &self,
        a: &Ciphertext<B::Poly>,
        [x0, x1]: &[B::Poly; 2],
        c0_g: &B::Poly,
    ) -> Ciphertext<B::Poly> {
        let (mut c0, c1) = self.join(|| self.backend.mod_down(x0), || self.backend.mod_down(x1));
        self.backend.add_assign(&mut c0, c0_g);
        Ciphertext {
            c0,
            c1,
            level: a.level,
            scale: a.scale,
        }
    }

    /// Steps per batched key switch of a level-`level` decomposition.
    fn hoisting_batch(&self, level: usize) -> usize {
        let basis = Basis::new(level + 1, self.params.ring().p().len());
        self.backend.key_switch_batch(basis).max(1)
    }

    /// The key-switch inner products of `digits` with the Galois keys of `elements`, in
    /// one backend call.
    fn inner_products(
        &self,
        digits: &[B::Poly],
        elements: &[u64],
    ) -> Result<Vec<[B::Poly; 2]>, CkksError> {
        let steps = elements
            .iter()
            .map(|&g| {
                let key = self.galois.get(&g).ok_or(CkksError::MissingGaloisKey {
                    galois: g,
                    step: None,
                })?;
                Ok((key.as_slice(), Some(g)))
            })
            .collect::<Result<Vec<_>, CkksError>>()?;
        Ok(self.backend.key_switch_inner_products(digits, &steps))
    }

    /// Prepares a plaintext for [`linear_combination_hoisted`](Self::linear_combination_hoisted):
    /// `poly` holds the encoded values over Q_l ∪ P (NTT form), so that it can multiply the
    /// key-switch accumulators before their ModDown.
    pub fn extended_plaintext(
        &self,
        poly: &RnsPoly,
        scale: f64,
    ) -> Result<ExtendedPlaintext<B::Poly>, CkksError> {
        let basis = poly.basis();
        let p_count = self.params.ring().p().len();
        if basis.q == 0
            || basis.q > self.params.max_level() + 1
            || basis.p != p_count
            || !poly.ntt_form
        {
            return Err(CkksError::Malformed(
                "extended plaintext must be over Q_l ∪ P in NTT form".into(),
            ));
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(CkksError::Malformed(format!(
                "plaintext scale {scale} is not positive"
            )));
        }
        let mut q_part = poly.clone();
        q_part.truncate_q(basis.q);
        Ok(ExtendedPlaintext {
            extended: self.backend.upload(poly)?,
            q_part: self.backend.upload(&q_part)?,
            level: basis.q - 1,
            scale,
        })
    }

    /// The hybrid key-switching decomposition of `a`'s c1, to share between several
    /// hoisted operations on the same ciphertext.
    pub fn decompose(&self, a: &Ciphertext<B::Poly>) -> Result<Decomposed<B::Poly>, CkksError> {
        self.check(a)?;
        Ok(Decomposed {
            digits: self.backend.decompose(&a.c1),
            level: a.level,
        })
    }

    /// Σ_k pt_k ⊙ rot(a, step_k) with one decomposition of `a` and one ModDown per half
    /// for the whole sum (double hoisting). See [`linear_combinations_hoisted`](Self::linear_combinations_hoisted).
    pub fn linear_combination_hoisted(
        &self,
        a: &Ciphertext<B::Poly>,
        terms: &[(i64, &ExtendedPlaintext<B::Poly>)],
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        let decomposed = self.decompose(a)?;
        let mut out = self.linear_combinations_hoisted(a, &decomposed, &[terms])?;
        out.pop()
            .ok_or(CkksError::Malformed("no combination computed".into()))
    }

    /// Several sums Σ_k pt_k ⊙ rot(a, step_k) of the same ciphertext. Each distinct step's
    /// key-switch inner product (the expensive part) is computed once and shared by every
    /// sum that uses it; each rotated term then costs two plaintext products in the extended
    /// basis, and each sum one ModDown per half. The inner products and c0's automorphisms
    /// of all distinct steps run in batches, as in [`rotate_hoisted`](Self::rotate_hoisted).
    /// Plaintexts must be at `a`'s level and share one scale within a sum; a result's scale
    /// is `a.scale` times its plaintexts' scale.
    pub fn linear_combinations_hoisted(
        &self,
        a: &Ciphertext<B::Poly>,
        decomposed: &Decomposed<B::Poly>,
        combinations: &[&Terms<B::Poly>],
    ) -> Result<Vec<Ciphertext<B::Poly>>, CkksError> {
        self.check(a)?;
        if decomposed.level != a.level {
            return Err(CkksError::LevelMismatch {
                needed: a.level,
                found: decomposed.level,
            });
        }
        let n = self.params.n();
        // Validate everything first, then collect the distinct rotation elements in order.
        for terms in combinations {
            let Some((_, first)) = terms.first() else {
                return Err(CkksError::Malformed(
                    "a linear combination needs at least one term".into(),
                ));
            };
            for &(_, pt) in terms.iter() {
                if pt.level != a.level {
                    return Err(CkksError::LevelMismatch {
                        needed: a.level,
                        found: pt.level,
                    });
                }
                Self::same_scale(pt.scale, first.scale)?;
            }
        }
        let elements = self.rotation_elements(
            combinations
                .iter()
                .flat_map(|terms| terms.iter().map(|&(step, _)| step)),
        )?;
        let q_basis = Basis::level(a.level);
        let ext_basis = Basis::new(a.level + 1, self.params.ring().p().len());
        struct Accumulator<P> {
            out: [P; 2],
            extended: Option<[P; 2]>,
        }
        let mut accs: Vec<Accumulator<B::Poly>> = combinations
            .iter()
            .map(|_| Accumulator {
                out: [
                    self.backend.zero(q_basis, true),
                    self.backend.zero(q_basis, true),
                ],
                extended: None,
            })
            .collect();
        // Unrotated terms multiply the ciphertext directly.
        for (terms, acc) in combinations.iter().zip(&mut accs) {
            for &(step, pt) in terms.iter() {
                if rotation_element(step, n) == 1 {
                    self.backend
                        .mul_add_assign(&mut acc.out[0], &a.c0, &pt.q_part);
                    self.backend
                        .mul_add_assign(&mut acc.out[1], &a.c1, &pt.q_part);
                }
            }
        }
        for chunk in elements.chunks(self.hoisting_batch(a.level)) {
            let switched = self.inner_products(&decomposed.digits, chunk)?;
            let c0_rotated = self.backend.automorphisms(&a.c0, chunk);
            // Each sum accumulates on its own task, its two extended halves on two more: the
            // order of every accumulation is the steps' order, whatever runs where.
            let accumulate = |(acc, terms): (&mut Accumulator<B::Poly>, &&Terms<B::Poly>)| {
                let terms_of = |g: u64| {
                    terms
                        .iter()
                        .filter(move |(step, _)| rotation_element(*step, n) == g)
                };
                if chunk.iter().all(|&g| terms_of(g).next().is_none()) {
                    return;
                }
                let ext = acc.extended.get_or_insert_with(|| {
                    [
                        self.backend.zero(ext_basis, true),
                        self.backend.zero(ext_basis, true),
                    ]
                });
                let [ext0, ext1] = ext;
                let out0 = &mut acc.out[0];
                self.join(
                    || {
                        for ((&g, [x0, _]), c0_g) in chunk.iter().zip(&switched).zip(&c0_rotated) {
                            for &(_, pt) in terms_of(g) {
                                self.backend.mul_add_assign(ext0, x0, &pt.extended);
                                self.backend.mul_add_assign(out0, c0_g, &pt.q_part);
                            }
                        }
                    },
                    || {
                        for (&g, [_, x1]) in chunk.iter().zip(&switched) {
                            for &(_, pt) in terms_of(g) {
                                self.backend.mul_add_assign(ext1, x1, &pt.extended);
                            }
                        }
                    },
                );
            };
            if self.backend.host_parallel() {
                accs.par_iter_mut().zip(combinations).for_each(accumulate);
            } else {
                accs.iter_mut().zip(combinations).for_each(accumulate);
            }
        }
        let finish = |(acc, terms): (Accumulator<B::Poly>, &&Terms<B::Poly>)| {
            let [mut c0, mut c1] = acc.out;
            if let Some([e0, e1]) = acc.extended {
                let (d0, d1) =
                    self.join(|| self.backend.mod_down(&e0), || self.backend.mod_down(&e1));
                self.backend.add_assign(&mut c0, &d0);
                self.backend.add_assign(&mut c1, &d1);
            }
            let pt_scale = terms.first().map_or(1.0, |(_, pt)| pt.scale);
            Ciphertext {
                c0,
                c1,
                level: a.level,
                scale: a.scale * pt_scale,
            }
        };
        Ok(if self.backend.host_parallel() {
            accs.into_par_iter().zip(combinations).map(finish).collect()
        } else {
            accs.into_iter().zip(combinations).map(finish).collect()
        })
    }

    /// `a` and `b`, side by side on the worker pool where the backend computes on the host,
    /// one after the other on the calling thread where it queues device work.
    fn join<RA: Send, RB: Send>(
        &self,
        a: impl FnOnce() -> RA + Send,
        b: impl FnOnce() -> RB + Send,
    ) -> (RA, RB) {
        if self.backend.host_parallel() {
            rayon::join(a, b)
        } else {
            (a(), b())
        }
    }

    fn galois_from_digits(
        &self,
        a: &Ciphertext<B::Poly>,
        digits: &[B::Poly],
        g: u64,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        let key = self.galois.get(&g).ok_or(CkksError::MissingGaloisKey {
            galois: g,
            step: None,
        })?;
        let switched = self.backend.key_switch_inner_product(digits, key, Some(g));
        Ok(self.rotated(a, &switched, &self.backend.automorphism(&a.c0, g)))
    }

    /// The textbook rotation (automorphism of both halves, then a key switch of σ_g(c1)),
    /// kept as an independent reference for the hoisted path.
    pub fn apply_galois_unhoisted(
        &self,
        a: &Ciphertext<B::Poly>,
        g: u64,
    ) -> Result<Ciphertext<B::Poly>, CkksError> {
        self.check(a)?;
        let key = self.galois.get(&g).ok_or(CkksError::MissingGaloisKey {
            galois: g,
            step: None,
        })?;
        let c1 = self.backend.automorphism(&a.c1, g);
        let digits = self.backend.decompose(&c1);
        let [mut c0, c1] = self.switch(&digits, key, None);
        self.backend
            .add_assign(&mut c0, &self.backend.automorphism(&a.c0, g));
        Ok(Ciphertext {
            c0,
            c1,
            level: a.level,
            scale: a.scale,
        })
    }

    fn switch(&self, digits: &[B::Poly], key: &DeviceKey<B>, galois: Option<u64>) -> [B::Poly; 2] {
        let [x0, x1] = self.backend.key_switch_inner_product(digits, key, galois);
        [self.backend.mod_down(&x0), self.backend.mod_down(&x1)]
    }
}
