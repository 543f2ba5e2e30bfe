//! The key-switching inner product, the CPU backend's `key_switch_inner_product(s)`, with the
//! Galois permutation fused (kernels/key_switch.cu): one step per launch, or every step of
//! a hoisted batch in one launch.

use super::launch::{elementwise, elementwise_batch, launch};
use super::{CudaBackend, CudaPoly};
use crate::backend::KeySwitchStep;
use crate::ring::Basis;
use cudarc::driver::DeviceRepr;

/// `KEY_SWITCH_MAX_DIGITS` of kernels/key_switch.cu.
const MAX_DIGITS: usize = 32;
/// `KEY_SWITCH_BATCH_STEPS` and `KEY_SWITCH_BATCH_KEYS` of kernels/key_switch.cu: the most
/// steps, and (step, digit) keys, of one batched launch.
const BATCH_STEPS: usize = 32;
const BATCH_KEYS: usize = 128;

/// What a hoisted loop should hold at once ([`Backend::key_switch_batch`]): at most 32 steps
/// (the LoRA plan's 2(r − 1) rotations for r ≤ 16 in one batch at N = 2^13) and at most
/// 512 MiB of step outputs (about 10 steps at N = 2^16 with 25 + 9 limbs).
///
/// [`Backend::key_switch_batch`]: crate::backend::Backend::key_switch_batch
const HOISTED_STEPS: usize = 32;
const HOISTED_BYTES: usize = 512 << 20;

/// `KeySwitchOperands` of kernels/key_switch.cu: device addresses by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct Operands {
    digit: [u64; MAX_DIGITS],
    key0: [u64; MAX_DIGITS],
    key1: [u64; MAX_DIGITS],
}

// SAFETY: plain words, laid out as the C struct (three arrays of 32 pointers).
unsafe impl DeviceRepr for Operands {}

/// `KeySwitchBatch` of kernels/key_switch.cu: 3 KB by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct BatchOperands {
    digit: [u64; MAX_DIGITS],
    key0: [u64; BATCH_KEYS],
    key1: [u64; BATCH_KEYS],
    out0: [u64; BATCH_STEPS],
    out1: [u64; BATCH_STEPS],
    galois: [u32; BATCH_STEPS],
    key_q: [u32; BATCH_STEPS],
}

// SAFETY: plain words, laid out as the C struct (pointer arrays, then two u32 arrays; no
// padding: 3072 bytes, 8-aligned).
unsafe impl DeviceRepr for BatchOperands {}
const _: () = assert!(std::mem::size_of::<BatchOperands>() == 3072);

impl CudaBackend {
    /// Steps per hoisted batch for digits over `basis`, see `HOISTED_STEPS`.
    pub(super) fn hoisted_batch(&self, basis: Basis) -> usize {
        // Per step: the extended pair, and the rotated c0 over Q_l that goes with it.
        let step_bytes = (2 * basis.len() + basis.q) * self.n * 8;
        (HOISTED_BYTES / step_bytes.max(1)).clamp(1, HOISTED_STEPS)
    }

    /// The digits' common basis (Q_l ∪ P), or None after recording why they cannot be
    /// key-switched.
    fn digit_basis(&self, digits: &[CudaPoly]) -> Option<Basis> {
        let Some(first) = digits.first() else {
            self.errors
                .record(|| "key_switch_inner_product: no digits".into());
            return None;
        };
        let basis = first.basis;
        if digits.len() > MAX_DIGITS || !digits.iter().all(|d| d.basis == basis && d.ntt_form) {
            self.errors.record(|| {
                format!(
                    "key_switch_inner_product: {} digits, not all over {basis:?} in NTT form \
                     (at most {MAX_DIGITS})",
                    digits.len()
                )
            });
            return None;
        }
        Some(basis)
    }

    /// The basis of `key` (Q_L ∪ P), or None after recording why it does not fit `digits`
    /// digits over `basis` with Galois element `galois`.
    fn key_basis(
        &self,
        basis: Basis,
        digits: usize,
        key: &[[CudaPoly; 2]],
        galois: Option<u64>,
    ) -> Option<Basis> {
        let key_basis = key.first().map(|k| k[0].basis);
        let fits = key.len() >= digits
            && key_basis.is_some_and(|kb| {
                kb.p == basis.p
                    && kb.q >= basis.q
                    && key.iter().flatten().all(|k| k.basis == kb && k.ntt_form)
            });
        let n = self.n as u64;
        if !fits || galois.is_some_and(|g| g.is_multiple_of(2) || g >= 2 * n) {
            self.errors.record(|| {
                format!(
                    "key_switch_inner_product: {digits} digits over {basis:?} do not fit {} \
                     key digits over {key_basis:?}, or galois {galois:?} is invalid",
                    key.len()
                )
            });
            return None;
        }
        key_basis
    }

    pub(super) fn inner_product(
        &self,
        digits: &[CudaPoly],
        key: &[[CudaPoly; 2]],
        galois: Option<u64>,
    ) -> [CudaPoly; 2] {
        let Some(basis) = self.digit_basis(digits) else {
            let basis = digits.first().map_or(Basis::level(0), |d| d.basis);
            return [self.alloc_poly(basis, true), self.alloc_poly(basis, true)];
        };
        let out = [self.alloc_poly(basis, true), self.alloc_poly(basis, true)];
        let Some(key_basis) = self.key_basis(basis, digits.len(), key, galois) else {
            return out;
        };
        let mut ops = Operands {
            digit: [0; MAX_DIGITS],
            key0: [0; MAX_DIGITS],
            key1: [0; MAX_DIGITS],
        };
        for (j, (d, k)) in digits.iter().zip(key).enumerate() {
            let (Some(pd), Some(k0), Some(k1)) = (self.addr(d), self.addr(&k[0]), self.addr(&k[1]))
            else {
                return out;
            };
            ops.digit[j] = pd;
            ops.key0[j] = k0;
            ops.key1[j] = k1;
        }
        let (Some(o0), Some(o1), Some(bt)) = (
            self.addr(&out[0]),
            self.addr(&out[1]),
            self.basis_tables(basis),
        ) else {
            return out;
        };
        let mods = self.tables.w(bt.mods);
        let count = digits.len() as u32;
        let q = basis.q as u32;
        let limbs = basis.len() as u32;
        let key_q = key_basis.q as u32;
        // 0 means no permutation (odd Galois elements are never 0).
        let g = galois.unwrap_or(0) as u32;
        let log_n = self.log_n;
        let n = self.n as u64;
        launch!(
            self,
            "key_switch_inner_product",
            elementwise(limbs as u64 * n),
            o0,
            o1,
            ops,
            count,
            mods,
            q,
            limbs,
            key_q,
            g,
            log_n
        );
        out
    }

    /// Every step's inner product of the same digits, one launch per `BATCH_STEPS` steps
    /// (fewer where the digits are many: `BATCH_KEYS` keys per launch). Each output pair is
    /// a polynomial pair of its own, as from [`inner_product`](Self::inner_product).
    pub(super) fn inner_products(
        &self,
        digits: &[CudaPoly],
        steps: &[KeySwitchStep<'_, CudaPoly>],
    ) -> Vec<[CudaPoly; 2]> {
        let basis = digits.first().map_or(Basis::level(0), |d| d.basis);
        let outs: Vec<[CudaPoly; 2]> = steps
            .iter()
            .map(|_| [self.alloc_poly(basis, true), self.alloc_poly(basis, true)])
            .collect();
        if steps.is_empty() {
            return outs;
        }
        let Some(basis) = self.digit_basis(digits) else {
            return outs;
        };
        let mut key_q = Vec::with_capacity(steps.len());
        for &(key, galois) in steps {
            let Some(kb) = self.key_basis(basis, digits.len(), key, galois) else {
                return outs;
            };
            key_q.push(kb.q as u32);
        }
        let Some(digit_addrs) = digits
            .iter()
            .map(|d| self.addr(d))
            .collect::<Option<Vec<_>>>()
        else {
            return outs;
        };
        let Some(bt) = self.basis_tables(basis) else {
            return outs;
        };
        let mods = self.tables.w(bt.mods);
        let count = digits.len() as u32;
        let q = basis.q as u32;
        let limbs = basis.len() as u32;
        let log_n = self.log_n;
        let total = limbs as u64 * self.n as u64;
        let per_launch = BATCH_STEPS.min(BATCH_KEYS / digits.len());
        for (c, chunk) in steps.chunks(per_launch).enumerate() {
            let at = c * per_launch;
            let mut ops = BatchOperands {
                digit: [0; MAX_DIGITS],
                key0: [0; BATCH_KEYS],
                key1: [0; BATCH_KEYS],
                out0: [0; BATCH_STEPS],
                out1: [0; BATCH_STEPS],
                galois: [0; BATCH_STEPS],
                key_q: [0; BATCH_STEPS],
            };
            ops.digit[..digit_addrs.len()].copy_from_slice(&digit_addrs);
            for (s, &(key, galois)) in chunk.iter().enumerate() {
                for (j, k) in key[..digits.len()].iter().enumerate() {
                    let (Some(k0), Some(k1)) = (self.addr(&k[0]), self.addr(&k[1])) else {
                        return outs;
                    };
                    ops.key0[s * digits.len() + j] = k0;
                    ops.key1[s * digits.len() + j] = k1;
                }
                let [out0, out1] = &outs[at + s];
                let (Some(o0), Some(o1)) = (self.addr(out0), self.addr(out1)) else {
                    return outs;
                };
                ops.out0[s] = o0;
                ops.out1[s] = o1;
                // 0 means no permutation (odd Galois elements are never 0).
                ops.galois[s] = galois.unwrap_or(0) as u32;
                ops.key_q[s] = key_q[at + s];
            }
            launch!(
                self,
                "key_switch_inner_products",
                elementwise_batch(total, chunk.len()),
                ops,
                count,
                mods,
                q,
                limbs,
                log_n
            );
        }
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cuda::module::embedded_param_size;

    /// The structs passed by value are as large as the kernels' parameters (the driver copies
    /// the PTX's size from the argument's address).
    #[test]
    fn by_value_structs_match_the_ptx() {
        if let Some(ptx) = embedded_param_size("key_switch", "key_switch_inner_product", 2) {
            assert_eq!(
                std::mem::size_of::<Operands>(),
                ptx,
                "Operands for key_switch_inner_product"
            );
        }
        if let Some(ptx) = embedded_param_size("key_switch", "key_switch_inner_products", 0) {
            assert_eq!(
                std::mem::size_of::<BatchOperands>(),
                ptx,
                "BatchOperands for key_switch_inner_products"
            );
        }
    }
}
