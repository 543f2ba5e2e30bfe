//! The LoRA plan: y = x·A·B on an encrypted x, built once per adapted projection.
//!
//! With r' = r rounded up to a power of two and D the input block (see [`layout`]):
//! 1. z = Σ_{k<r'} diag_k ⊙ rot(x, k), diag_k[i] = A[(i+k) mod D][i mod r'] — one
//!    decomposition of x and r'−1 inner products, one ModDown per half (double hoisting);
//!    rescale;
//! 2. fold: z += Σ_{0<j<m} rot(z, j·s) for s = r', r'·m, … < D, each level one hoisted
//!    sum (one decomposition and one ModDown per half for its m−1 rotations; m = 2 today,
//!    see `FOLD_RADIX`): every slot i now holds u_(i mod r'), u = x·A;
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
use crate::ckks::{Backend, Ciphertext, Encoder, Evaluator, ExtendedPlaintext, Terms};
use rayon::prelude::*;

/// Largest supported LoRA rank.
pub const MAX_RANK: usize = 64;

/// Blocks one fold level sums: m − 1 rotations with one decomposition and one ModDown.
/// Radix 8 measured 15–25 % more tokens/s in a batch and a shorter apply at two threads
/// (docs/benchmarks.md), but the plan then needs 21 fold keys instead of 9 at D/r' = 512
/// (the key upload and each client's keys on the server grow by about 75 %): a trade-off
/// for the operator, so radix 2 (the fold of log2(D/r') rotations) stays the default.
const FOLD_RADIX: usize = 2;

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

/// The step-3 plaintexts of one plan: per output ciphertext, its r' B diagonals at the
/// plan's level − 1. A plan holds its own ([`LoraPlan::output_diagonals`]); a caller that
/// perturbs B per application makes others from them ([`LoraPlan::map_output_diagonals`]),
/// so their shape always matches the plan.
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
    step2: OutputDiagonals<B>,
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
        // Plaintext scale = the prime the following rescale removes: the scale is restored exactly.
        let encode = |values: Vec<f64>, at: usize| {
            evaluator.encode_extended(encoder, &values, at, params.q_primes()[at] as f64)
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
            step2: OutputDiagonals { diagonals: step2 },
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

    /// The plan's own step-3 plaintexts (B's diagonals). Diagonal k of output chunk o
    /// holds B[(i+k) mod r'][o·S + i] in slot i.
    pub fn output_diagonals(&self) -> &OutputDiagonals<B> {
        &self.step2
    }

    /// The plan's step-3 plaintexts, each replaced by `f(k, pt)` of it (a perturbed copy,
    /// say), k counting them output chunk by output chunk, diagonal by diagonal. The
    /// diagonals are independent tasks on the worker pool.
    pub fn map_output_diagonals<E: Send>(
        &self,
        f: impl Fn(usize, &ExtendedPlaintext<B::Poly>) -> Result<ExtendedPlaintext<B::Poly>, E> + Sync,
    ) -> Result<OutputDiagonals<B>, E> {
        let per_chunk = self.rank_padded;
        let diagonals = self
            .step2
            .diagonals
            .par_iter()
            .enumerate()
            .map(|(o, diags)| {
                diags
                    .par_iter()
                    .enumerate()
                    .map(|(k, pt)| f(o * per_chunk + k, pt))
                    .collect::<Result<Vec<_>, E>>()
            })
            .collect::<Result<Vec<_>, E>>()?;
        // Their levels are checked where they are used ([`LoraPlan::finish`]).
        Ok(OutputDiagonals { diagonals })
    }

    /// The fold's levels, each one hoisted sum u += Σ_{0<j<m} rot(u, j·s): s = r' first,
    /// then s·m, …, with m = the fold radix or what is left of D/s, until s reaches D.
    fn fold_levels(&self) -> Vec<Vec<i64>> {
        let mut levels = Vec::new();
        let mut s = self.rank_padded;
        while s < self.input.block {
            let m = FOLD_RADIX.min(self.input.block / s);
            levels.push((1..m).map(|j| (j * s) as i64).collect());
            s *= m;
        }
        levels
    }

    /// Every fold step.
    fn fold_steps(&self) -> Vec<i64> {
        self.fold_levels().concat()
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

    /// Steps 2 and 3 for one projection, from its (rescaled) step-1 result `z`, with
    /// `diagonals` (the plan's own, or made from them) as B.
    pub fn finish(
        &self,
        evaluator: &Evaluator<B>,
        z: Ciphertext<B::Poly>,
        diagonals: &OutputDiagonals<B>,
    ) -> Result<Vec<Ciphertext<B::Poly>>, LinearError> {
        let own = &self.step2.diagonals;
        if diagonals.diagonals.len() != own.len()
            || diagonals
                .diagonals
                .iter()
                .flatten()
                .zip(own.iter().flatten())
                .any(|(d, o)| d.level != o.level)
            || diagonals
                .diagonals
                .iter()
                .any(|d| d.len() != self.rank_padded)
        {
            return Err(LinearError::Shape(
                "output diagonals were not made for this plan".into(),
            ));
        }
        let mut u = z;
        for steps in self.fold_levels() {
            u = evaluator.add_rotations_hoisted(&u, &steps)?;
        }
        let decomposed = evaluator.decompose(&u)?;
        let terms: Vec<_> = diagonals
            .diagonals
            .iter()
            .map(|diags| diagonal_terms(diags))
            .collect();
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
            let levels = p.fold_levels();
            let fold_hoisted: usize = levels.iter().map(Vec::len).filter(|&m| m > 1).sum();
            counts.keyswitches += levels.iter().map(Vec::len).sum::<usize>() + r1;
            counts.hoisted_keyswitches += r1 + fold_hoisted;
            counts.decompositions += levels.len() + 1;
            counts.pt_muls += chunks * p.rank_padded + p.output.chunks * p.rank_padded;
        }
        counts
    }

    /// Applies the group to a batch of tokens (a prompt), one task per token on the
    /// worker pool; results keep the tokens' order.
    pub fn apply_batch(
        &self,
        evaluator: &Evaluator<B>,
        tokens: &[Vec<Ciphertext<B::Poly>>],
    ) -> Result<Vec<GroupOutput<B::Poly>>, LinearError> {
        tokens
            .par_iter()
            .map(|t| self.apply(evaluator, t))
            .collect()
    }

    /// y_p = x·A_p·B_p for every member p, from one token's input ciphertexts.
    pub fn apply(
        &self,
        evaluator: &Evaluator<B>,
        inputs: &[Ciphertext<B::Poly>],
    ) -> Result<GroupOutput<B::Poly>, LinearError> {
        let z = self.step1(evaluator, inputs)?;
        let own: Vec<_> = self.plans.iter().map(|p| p.output_diagonals()).collect();
        self.finish(evaluator, z, &own)
    }

    /// Steps 2 and 3 of every member p from its step-1 result `z[p]`, with `diagonals[p]`
    /// as B. Members are independent here: one task each on the worker pool (for a single
    /// token this is where the plan's parallelism is).
    pub fn finish(
        &self,
        evaluator: &Evaluator<B>,
        z: Vec<Ciphertext<B::Poly>>,
        diagonals: &[&OutputDiagonals<B>],
    ) -> Result<GroupOutput<B::Poly>, LinearError> {
        if z.len() != self.plans.len() || diagonals.len() != self.plans.len() {
            return Err(LinearError::Shape(format!(
                "{} step-1 results and {} sets of output diagonals for {} projections",
                z.len(),
                diagonals.len(),
                self.plans.len()
            )));
        }
        self.plans
            .par_iter()
            .zip(z)
            .zip(diagonals)
            .map(|((plan, z), diagonals)| plan.finish(evaluator, z, diagonals))
            .collect()
    }

    /// Step 1 for every member, input chunk by chunk, rescaled: z_p = x·A_p in every slot
    /// class.
    pub fn step1(
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
