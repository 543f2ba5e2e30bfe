//! The LoRA plan: y = x·A·B on an encrypted x, built once per adapted projection.
//!
//! With r' = r rounded up to a power of two and D the input block (see [`layout`]):
//! 1. z = Σ_{k<r'} diag_k ⊙ rot(x, k), diag_k[i] = A[(i+k) mod D][i mod r'] — one
//!    decomposition of x and r'−1 inner products, one ModDown per half (double hoisting);
//!    rescale;
//! 2. fold: z += rot(z, r'·2^s) for s < log2(D/r'): every slot i now holds u_(i mod r'),
//!    u = x·A;
//! 3. y = Σ_{k<r'} diagB_k ⊙ rot(u, k), diagB_k[i] = B[(i+k) mod r'][i] — again one
//!    decomposition, shared by every output ciphertext; rescale.
//!
//! Plaintext scales are the primes the rescales remove, so y comes out at x's scale.
//! Projections that read the same input (q, k, v) share its upload, its decomposition and
//! the inner product of every step 1 rotation ([`LoraGroup`]).
//!
//! [`layout`]: super::layout

use super::layout::{InputLayout, OutputLayout};
use super::{LinearError, Matrix};
use crate::backend::Backend;
use crate::ckks::{Ciphertext, CkksError, Encoder, Evaluator, ExtendedPlaintext, Terms};
use crate::ring::{Basis, RnsPoly};
use rayon::prelude::*;

/// Largest supported LoRA rank.
pub const MAX_RANK: usize = 64;

/// Operation counts of one application (one token) of a plan or group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Key-switch inner products (rotations), hoisted or not.
    pub keyswitches: usize,
    /// Of those, the ones that share a decomposition with others.
    pub hoisted_keyswitches: usize,
    /// Decompositions (ModUp of a whole ciphertext).
    pub decompositions: usize,
    /// Plaintext × ciphertext products.
    pub pt_muls: usize,
    /// Multiplicative depth (levels consumed).
    pub depth: usize,
}

/// Step-3 plaintexts standing in for the plan's B diagonals in one application, one
/// vector of r' per output chunk, at the plan's level − 1. Made only by
/// [`LoraPlan::output_diagonals_plus`], so their shape matches the plan that made them.
pub struct OutputDiagonals<B: Backend> {
    diagonals: Vec<Vec<ExtendedPlaintext<B::Poly>>>,
}

/// One projection's precomputed plaintexts.
pub struct LoraPlan<B: Backend> {
    input: InputLayout,
    output: OutputLayout,
    rank: usize,
    rank_padded: usize,
    level: usize,
    /// `step1[chunk][k]` = diag_k of A for that input chunk, at `level`.
    step1: Vec<Vec<ExtendedPlaintext<B::Poly>>>,
    /// `step2[out_chunk][k]` = diag_k of B for that output chunk, at `level − 1`.
    step2: Vec<Vec<ExtendedPlaintext<B::Poly>>>,
}

impl<B: Backend> LoraPlan<B> {
    /// Encodes A (d_in × r) and B (r × d_out) for inputs encrypted at `level` (≥ 2).
    pub fn new(
        evaluator: &Evaluator<B>,
        encoder: &Encoder,
        a: &Matrix,
        b: &Matrix,
        level: usize,
    ) -> Result<Self, LinearError> {
        let params = evaluator.params();
        let rank = a.cols();
        if b.rows() != rank {
            return Err(LinearError::Shape(format!(
                "A is {}×{} but B is {}×{}: the ranks differ",
                a.rows(),
                a.cols(),
                b.rows(),
                b.cols()
            )));
        }
        if rank > MAX_RANK {
            return Err(LinearError::Shape(format!(
                "rank {rank} exceeds the supported {MAX_RANK}"
            )));
        }
        if level < 2 || level > params.max_level() {
            return Err(LinearError::Level {
                level,
                max: params.max_level(),
            });
        }
        let slots = params.slots();
        let rank_padded = rank.next_power_of_two();
        let input = InputLayout::new(a.rows(), rank_padded, slots)?;
        let output = OutputLayout::new(b.cols(), slots)?;
        let ctx = params.ring();
        let special = params.p_primes().len();
        // Plaintext scale = the prime the following rescale removes: the scale is restored exactly.
        let encode =
            |values: Vec<f64>, at: usize| -> Result<ExtendedPlaintext<B::Poly>, LinearError> {
                let scale = params.q_primes()[at] as f64;
                let poly = encoder.encode(ctx, &values, scale, Basis::new(at + 1, special))?;
                Ok(evaluator.extended_plaintext(&poly, scale)?)
            };
        let d = input.block;
        let step1 = (0..input.chunks)
            .map(|c| {
                (0..rank_padded)
                    .map(|k| {
                        encode(
                            (0..slots)
                                .map(|i| a.get_padded(c * slots + (i % d + k) % d, i % rank_padded))
                                .collect(),
                            level,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let step2 = (0..output.chunks)
            .map(|o| {
                (0..rank_padded)
                    .map(|k| {
                        encode(
                            (0..slots)
                                .map(|i| b.get_padded((i + k) % rank_padded, o * slots + i))
                                .collect(),
                            level - 1,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            input,
            output,
            rank,
            rank_padded,
            level,
            step1,
            step2,
        })
    }

    pub fn input_layout(&self) -> &InputLayout {
        &self.input
    }

    pub fn output_layout(&self) -> &OutputLayout {
        &self.output
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Level the input ciphertexts must be at.
    pub fn input_level(&self) -> usize {
        self.level
    }

    /// Rank rounded up to a power of two: the number of step-3 diagonals per output
    /// ciphertext.
    pub fn rank_padded(&self) -> usize {
        self.rank_padded
    }

    /// Level of the output ciphertexts: the plan consumes two levels (depth 2).
    pub fn output_level(&self) -> usize {
        self.level - 2
    }

    /// Level of the step-3 plaintexts (the input level − 1); their scale is that prime.
    pub fn output_diagonal_level(&self) -> usize {
        self.level - 1
    }

    /// The plan's B diagonals with `deltas[o][k]` added to diagonal k of output chunk o:
    /// polynomials over Q_(l−1) ∪ P (l − 1 = [`output_diagonal_level`](Self::output_diagonal_level))
    /// in NTT form, in integer units at the diagonals' scale; one vector of r' per output
    /// ciphertext. For callers that perturb B per application ([`LoraGroup::apply_with`]);
    /// the slots of a delta follow the layout diag_k[i] ↔ B[(i+k) mod r'][o·S + i].
    pub fn output_diagonals_plus(
        &self,
        evaluator: &Evaluator<B>,
        deltas: Vec<Vec<RnsPoly>>,
    ) -> Result<OutputDiagonals<B>, LinearError> {
        if deltas.len() != self.step2.len() || deltas.iter().any(|d| d.len() != self.rank_padded) {
            return Err(LinearError::Shape(format!(
                "deltas for {} output ciphertexts of {} diagonals expected",
                self.step2.len(),
                self.rank_padded
            )));
        }
        let backend = evaluator.backend();
        let diagonals = self
            .step2
            .iter()
            .zip(deltas)
            .map(|(diags, deltas)| {
                diags
                    .iter()
                    .zip(deltas)
                    .map(|(pt, d)| {
                        let basis = backend.basis(&pt.extended);
                        if d.basis() != basis || !d.ntt_form || d.n() != evaluator.params().n() {
                            return Err(LinearError::Shape(format!(
                                "a delta must be over {basis:?} in NTT form"
                            )));
                        }
                        // The q part of a diagonal is its extended form's first limbs.
                        let mut extended = backend.upload_owned(d).map_err(CkksError::from)?;
                        backend.add_assign(&mut extended, &pt.extended);
                        let mut q_part = extended.clone();
                        backend.truncate_q(&mut q_part, pt.level + 1);
                        Ok(ExtendedPlaintext {
                            extended,
                            q_part,
                            level: pt.level,
                            scale: pt.scale,
                        })
                    })
                    .collect::<Result<Vec<_>, LinearError>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutputDiagonals { diagonals })
    }

    /// Fold steps r', 2r', … < D.
    fn fold_steps(&self) -> Vec<i64> {
        let mut steps = Vec::new();
        let mut s = self.rank_padded;
        while s < self.input.block {
            steps.push(s as i64);
            s *= 2;
        }
        steps
    }

    /// Every rotation step the plan uses: the client generates exactly these Galois keys.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut steps: Vec<i64> = (1..self.rank_padded as i64).collect();
        steps.extend(self.fold_steps());
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    /// Operation counts of one application on its own.
    pub fn op_counts(&self) -> OpCounts {
        LoraGroup::new(vec![self])
            .map(|g| g.op_counts())
            .unwrap_or_default()
    }

    /// Applies the plan to one token's input ciphertexts (one per input chunk).
    pub fn apply(
        &self,
        evaluator: &Evaluator<B>,
        inputs: &[Ciphertext<B::Poly>],
    ) -> Result<Vec<Ciphertext<B::Poly>>, LinearError> {
        let group = LoraGroup::new(vec![self])?;
        group
            .apply(evaluator, inputs)?
            .pop()
            .ok_or(LinearError::Shape("no output".into()))
    }

    /// Steps 2 and 3 for one projection, from its (rescaled) step-1 result, with the plan's
    /// own B diagonals or `step2` in their place.
    fn finish(
        &self,
        evaluator: &Evaluator<B>,
        z: Ciphertext<B::Poly>,
        step2: Option<&OutputDiagonals<B>>,
    ) -> Result<Vec<Ciphertext<B::Poly>>, LinearError> {
        let step2 = match step2 {
            None => &self.step2,
            Some(d) => {
                if d.diagonals.len() != self.step2.len()
                    || d.diagonals.iter().any(|v| v.len() != self.rank_padded)
                    || d.diagonals
                        .iter()
                        .flatten()
                        .any(|pt| pt.level + 1 != self.level)
                {
                    return Err(LinearError::Shape(
                        "output diagonals were not encoded for this plan".into(),
                    ));
                }
                &d.diagonals
            }
        };
        let mut u = z;
        for step in self.fold_steps() {
            let rotated = evaluator.rotate(&u, step)?;
            evaluator.add_assign(&mut u, &rotated)?;
        }
        let decomposed = evaluator.decompose(&u)?;
        let terms: Vec<_> = step2.iter().map(|diags| diagonal_terms(diags)).collect();
        let refs: Vec<&Terms<B::Poly>> = terms.iter().map(Vec::as_slice).collect();
        evaluator
            .linear_combinations_hoisted(&u, &decomposed, &refs)?
            .iter()
            .map(|y| Ok(evaluator.rescale(y)?))
            .collect()
    }
}

/// One token's outputs of a group: per projection, its output ciphertexts.
pub type GroupOutput<P> = Vec<Vec<Ciphertext<P>>>;

/// The terms Σ_k diag_k ⊙ rot(·, k) of a diagonal product.
fn diagonal_terms<P>(diagonals: &[ExtendedPlaintext<P>]) -> Vec<(i64, &ExtendedPlaintext<P>)> {
    diagonals
        .iter()
        .enumerate()
        .map(|(k, pt)| (k as i64, pt))
        .collect()
}

/// Projections that read the same input: one upload, one decomposition per input chunk,
/// and one inner product per step-1 rotation for all of them.
pub struct LoraGroup<'a, B: Backend> {
    plans: Vec<&'a LoraPlan<B>>,
}

impl<'a, B: Backend> LoraGroup<'a, B> {
    pub fn new(plans: Vec<&'a LoraPlan<B>>) -> Result<Self, LinearError> {
        let Some(first) = plans.first() else {
            return Err(LinearError::Shape("a group needs at least one plan".into()));
        };
        if plans
            .iter()
            .any(|p| p.input != first.input || p.level != first.level)
        {
            return Err(LinearError::Shape(
                "projections in a group must share their input layout and level".into(),
            ));
        }
        Ok(Self { plans })
    }

    /// Every rotation step any member uses.
    pub fn rotation_steps(&self) -> Vec<i64> {
        let mut steps: Vec<i64> = self.plans.iter().flat_map(|p| p.rotation_steps()).collect();
        steps.sort_unstable();
        steps.dedup();
        steps
    }

    pub fn op_counts(&self) -> OpCounts {
        let first = self.plans[0];
        let chunks = first.input.chunks;
        let r1 = self.plans.iter().map(|p| p.rank_padded).max().unwrap_or(1) - 1;
        let mut counts = OpCounts {
            keyswitches: chunks * r1,
            hoisted_keyswitches: chunks * r1,
            decompositions: chunks,
            depth: 2,
            ..Default::default()
        };
        for p in &self.plans {
            let r1 = p.rank_padded - 1;
            counts.keyswitches += p.fold_steps().len() + r1;
            counts.hoisted_keyswitches += r1;
            counts.decompositions += p.fold_steps().len() + 1;
            counts.pt_muls += chunks * p.rank_padded + p.output.chunks * p.rank_padded;
        }
        counts
    }

    /// Applies the group to a batch of tokens (a prompt): the plaintexts are shared and the
    /// tokens are spread over `threads` worker threads (the CPU backend computes one token
    /// per thread). Results keep the tokens' order.
    pub fn apply_batch(
        &self,
        evaluator: &Evaluator<B>,
        tokens: &[Vec<Ciphertext<B::Poly>>],
        threads: usize,
    ) -> Result<Vec<GroupOutput<B::Poly>>, LinearError> {
        // At least `per_thread` tokens per job, so at most `threads` jobs.
        let threads = threads.clamp(1, tokens.len().max(1));
        let per_thread = tokens.len().div_ceil(threads).max(1);
        tokens
            .par_iter()
            .with_min_len(per_thread)
            .map(|t| self.apply(evaluator, t))
            .collect()
    }

    /// y_p = x·A_p·B_p for every member p, from one token's input ciphertexts.
    pub fn apply(
        &self,
        evaluator: &Evaluator<B>,
        inputs: &[Ciphertext<B::Poly>],
    ) -> Result<GroupOutput<B::Poly>, LinearError> {
        self.apply_with(evaluator, inputs, &mut |_| Ok(None))
    }

    /// As [`apply`](Self::apply), with member p's B diagonals replaced by `step2(p)` where
    /// it returns some (made by that member with [`LoraPlan::output_diagonals_plus`]).
    /// `step2(p)` is called for every member after every step 1 and before any step 3,
    /// so a caller can prepare the replacements while step 1 runs.
    pub fn apply_with<E: From<LinearError>>(
        &self,
        evaluator: &Evaluator<B>,
        inputs: &[Ciphertext<B::Poly>],
        step2: &mut dyn FnMut(usize) -> Result<Option<OutputDiagonals<B>>, E>,
    ) -> Result<GroupOutput<B::Poly>, E> {
        let z = self.step1(evaluator, inputs)?;
        let replacements = (0..self.plans.len())
            .map(&mut *step2)
            .collect::<Result<Vec<_>, E>>()?;
        // Members are independent from here on: they run in parallel on the worker pool
        // (a decode step has one token, so this is where its parallelism is).
        self.plans
            .par_iter()
            .zip(z)
            .zip(&replacements)
            .map(|((plan, z), replacement)| plan.finish(evaluator, z, replacement.as_ref()))
            .collect::<Result<_, LinearError>>()
            .map_err(E::from)
    }

    /// Step 1 for every member, input chunk by chunk, rescaled: z_p = x·A_p in every slot
    /// class.
    fn step1(
        &self,
        evaluator: &Evaluator<B>,
        inputs: &[Ciphertext<B::Poly>],
    ) -> Result<Vec<Ciphertext<B::Poly>>, LinearError> {
        let first = self.plans[0];
        if inputs.len() != first.input.chunks {
            return Err(LinearError::Shape(format!(
                "{} input ciphertexts, the plan expects {}",
                inputs.len(),
                first.input.chunks
            )));
        }
        if let Some(ct) = inputs.iter().find(|ct| ct.level != first.level) {
            return Err(LinearError::Level {
                level: ct.level,
                max: first.level,
            });
        }
        let mut z: Vec<Option<Ciphertext<B::Poly>>> = vec![None; self.plans.len()];
        for (c, x) in inputs.iter().enumerate() {
            let decomposed = evaluator.decompose(x)?;
            let terms: Vec<_> = self
                .plans
                .iter()
                .map(|p| diagonal_terms(&p.step1[c]))
                .collect();
            let refs: Vec<&Terms<B::Poly>> = terms.iter().map(Vec::as_slice).collect();
            for (acc, part) in
                z.iter_mut()
                    .zip(evaluator.linear_combinations_hoisted(x, &decomposed, &refs)?)
            {
                match acc {
                    None => *acc = Some(part),
                    Some(sum) => evaluator.add_assign(sum, &part)?,
                }
            }
        }
        z.into_iter()
            .map(|z| {
                let z = z.ok_or(LinearError::Shape("no input".into()))?;
                Ok(evaluator.rescale(&z)?)
            })
            .collect()
    }
}
