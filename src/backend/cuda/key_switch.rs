//! The key-switching inner product with the Galois permutation fused (kernels/key_switch.cu).

use super::launch::{elementwise, launch};
use super::{CudaBackend, CudaPoly};
use cudarc::driver::DeviceRepr;

/// `KEY_SWITCH_MAX_DIGITS` of kernels/key_switch.cu.
const MAX_DIGITS: usize = 32;

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

impl CudaBackend {
    pub(super) fn inner_product(
        &self,
        digits: &[CudaPoly],
        key: &[[CudaPoly; 2]],
        galois: Option<u64>,
    ) -> [CudaPoly; 2] {
        let Some(first) = digits.first() else {
            self.errors
                .record(|| "key_switch_inner_product: no digits".into());
            let basis = crate::ring::Basis::level(0);
            return [self.alloc_poly(basis, true), self.alloc_poly(basis, true)];
        };
        let basis = first.basis;
        let out = [self.alloc_poly(basis, true), self.alloc_poly(basis, true)];
        let key_basis = key.first().map(|k| k[0].basis);
        let fits = digits.len() <= MAX_DIGITS
            && key.len() >= digits.len()
            && digits.iter().all(|d| d.basis == basis && d.ntt_form)
            && key_basis.is_some_and(|kb| {
                kb.p == basis.p
                    && kb.q >= basis.q
                    && key.iter().flatten().all(|k| k.basis == kb && k.ntt_form)
            });
        let n = self.n as u64;
        if !fits || galois.is_some_and(|g| g.is_multiple_of(2) || g >= 2 * n) {
            self.errors.record(|| {
                format!(
                    "key_switch_inner_product: {} digits over {basis:?} do not fit {} key \
                     digits over {key_basis:?} (at most {MAX_DIGITS} digits), or galois \
                     {galois:?} is invalid",
                    digits.len(),
                    key.len()
                )
            });
            return out;
        }
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
        let key_q = key_basis.map_or(0, |kb| kb.q as u32);
        // 0 means no permutation (odd Galois elements are never 0).
        let g = galois.unwrap_or(0) as u32;
        let log_n = self.log_n;
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
}
