//! The seam between the CKKS evaluator and the hardware. The evaluator only ever calls
//! these primitives; the CPU backend runs the `ring` reference code, a device backend
//! keeps polynomials in device memory and must produce bit-identical results.

mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod workers;

pub use cpu::CpuBackend;
#[cfg(feature = "cuda")]
pub use cuda::{CudaBackend, CudaPoly, StreamTimer};
pub use workers::keep_workers_awake;

use crate::ring::{Basis, RingContext, RnsPoly};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("polynomial does not fit this backend's ring: {0}")]
    Shape(String),
    #[error("device error: {0}")]
    Device(String),
    /// The machine has no usable GPU (no driver, no device, or stub libraries): what GPU
    /// tests skip on, where any other error is a failure.
    #[error("no usable CUDA driver or device: {0}")]
    NoDevice(String),
}

/// Primitive RNS-polynomial operations. All polynomials of one call share a ring (the
/// backend's context); bases and domains must match where an operation combines operands.
pub trait Backend: Send + Sync {
    /// A polynomial in this backend's memory.
    type Poly: Clone + Send + Sync + std::fmt::Debug;

    fn name(&self) -> &'static str;
    fn context(&self) -> &Arc<RingContext>;

    /// Copies a host polynomial into backend memory.
    fn upload(&self, p: &RnsPoly) -> Result<Self::Poly, BackendError>;
    /// Moves a host polynomial into backend memory (a copy where that memory is not the
    /// host's).
    fn upload_owned(&self, p: RnsPoly) -> Result<Self::Poly, BackendError> {
        self.upload(&p)
    }
    /// Copies a backend polynomial to the host.
    fn download(&self, p: &Self::Poly) -> Result<RnsPoly, BackendError>;

    fn basis(&self, p: &Self::Poly) -> Basis;
    fn is_ntt(&self, p: &Self::Poly) -> bool;
    fn zero(&self, basis: Basis, ntt_form: bool) -> Self::Poly;

    fn ntt_forward(&self, p: &mut Self::Poly);
    fn ntt_inverse(&self, p: &mut Self::Poly);

    fn add_assign(&self, a: &mut Self::Poly, b: &Self::Poly);
    fn sub_assign(&self, a: &mut Self::Poly, b: &Self::Poly);
    fn neg_assign(&self, a: &mut Self::Poly);
    /// Pointwise product (a ring product in NTT form).
    fn mul_assign(&self, a: &mut Self::Poly, b: &Self::Poly);
    /// acc += a · b, pointwise.
    fn mul_add_assign(&self, acc: &mut Self::Poly, a: &Self::Poly, b: &Self::Poly);
    /// Multiplies limb i by `residues[i]`.
    fn mul_scalar_assign(&self, a: &mut Self::Poly, residues: &[u64]);

    /// X → X^g in the polynomial's current domain.
    fn automorphism(&self, p: &Self::Poly, galois: u64) -> Self::Poly;
    /// Keeps the first `q` ciphertext limbs (a level drop).
    fn truncate_q(&self, p: &mut Self::Poly, q: usize);
    /// ⌊p / q_l⌉ over Q_{l-1} (NTT form in and out).
    fn rescale(&self, p: &Self::Poly) -> Self::Poly;

    /// Hybrid key-switching decomposition: the digits of `c` (over Q_l, NTT form), each
    /// extended to Q_l ∪ P in NTT form. Shared by every key switch of the same input.
    fn decompose(&self, c: &Self::Poly) -> Vec<Self::Poly>;
    /// Σ_j σ_g(digit_j) · key_j for both key halves, over Q_l ∪ P, where σ_g is the
    /// automorphism `galois` (None: identity) and `key` holds (b_j, a_j) over Q_L ∪ P.
    fn key_switch_inner_product(
        &self,
        digits: &[Self::Poly],
        key: &[[Self::Poly; 2]],
        galois: Option<u64>,
    ) -> [Self::Poly; 2];
    /// ⌊x / P⌉ over Q_l (NTT form in and out).
    fn mod_down(&self, x: &Self::Poly) -> Self::Poly;

    /// [`key_switch_inner_product`](Self::key_switch_inner_product) of the same `digits`
    /// with each step's key and Galois element, in the order of `steps` (hoisted rotations:
    /// one decomposition, many keys). A device backend computes them all in one launch; the
    /// default calls the one-step method per step, so its results are the reference.
    fn key_switch_inner_products(
        &self,
        digits: &[Self::Poly],
        steps: &[KeySwitchStep<'_, Self::Poly>],
    ) -> Vec<[Self::Poly; 2]> {
        steps
            .iter()
            .map(|&(key, galois)| self.key_switch_inner_product(digits, key, galois))
            .collect()
    }

    /// [`automorphism`](Self::automorphism) of `p` by each element of `galois`, in order.
    fn automorphisms(&self, p: &Self::Poly, galois: &[u64]) -> Vec<Self::Poly> {
        galois.iter().map(|&g| self.automorphism(p, g)).collect()
    }

    /// Whether the evaluator should run independent operations on several host threads:
    /// true where an operation is host computation (the CPU); false (the default) where it
    /// only queues device work, which must then come from the calling thread (a stream
    /// capture records that thread's work only).
    fn host_parallel(&self) -> bool {
        false
    }

    /// How many steps a hoisted loop should pass to one
    /// [`key_switch_inner_products`](Self::key_switch_inner_products) call for digits over
    /// `basis` (Q_l ∪ P). Each step's pair of extended outputs stays alive until the caller
    /// is done with the batch, so this bounds that memory. The default, 1, suits backends
    /// where a batch saves nothing (the CPU): one step's pair at a time.
    fn key_switch_batch(&self, basis: Basis) -> usize {
        let _ = basis;
        1
    }
}

/// One step of [`Backend::key_switch_inner_products`]: a switching key (b_j, a_j) over
/// Q_L ∪ P and the Galois element folded into its inner product (None: identity).
pub type KeySwitchStep<'a, P> = (&'a [[P; 2]], Option<u64>);
