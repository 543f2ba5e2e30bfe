//! Pointwise arithmetic, the CPU's `ring::arith` (add, sub, neg, mul, mul_add, mul_scalar):
//! kernels/pointwise.cu, one launch per operation over every limb.

use super::launch::{elementwise, launch};
use super::{CudaBackend, CudaPoly};
use cudarc::driver::DeviceRepr;

/// `LimbScalars` of kernels/pointwise.cu: per-limb constants passed by value.
pub(super) const MAX_SCALAR_LIMBS: usize = 64;

#[repr(C)]
#[derive(Clone, Copy)]
pub(super) struct LimbScalars {
    value: [u64; MAX_SCALAR_LIMBS],
    shoup: [u64; MAX_SCALAR_LIMBS],
}

// SAFETY: plain words, laid out as the C struct (two arrays of 64 u64).
unsafe impl DeviceRepr for LimbScalars {}

/// Which binary kernel.
#[derive(Clone, Copy)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
}

impl CudaBackend {
    pub(super) fn binary(&self, op: Binary, a: &mut CudaPoly, b: &CudaPoly) {
        let Some((limbs, total, mods)) = self.shape("pointwise operation", &[a, b]) else {
            return;
        };
        let (Some(pa), Some(pb)) = (self.addr(a), self.addr(b)) else {
            return;
        };
        let log_n = self.log_n;
        let cfg = elementwise(total);
        match op {
            Binary::Add => launch!(self, "poly_add", cfg, pa, pb, mods, limbs, log_n, total),
            Binary::Sub => launch!(self, "poly_sub", cfg, pa, pb, mods, limbs, log_n, total),
            Binary::Mul => launch!(self, "poly_mul", cfg, pa, pb, mods, limbs, log_n, total),
        }
    }

    pub(super) fn neg(&self, a: &mut CudaPoly) {
        let Some((limbs, total, mods)) = self.shape("neg", &[a]) else {
            return;
        };
        let Some(pa) = self.addr(a) else { return };
        let log_n = self.log_n;
        launch!(
            self,
            "poly_neg",
            elementwise(total),
            pa,
            mods,
            limbs,
            log_n,
            total
        );
    }

    pub(super) fn mul_add(&self, acc: &mut CudaPoly, a: &CudaPoly, b: &CudaPoly) {
        let Some((limbs, total, mods)) = self.shape("mul_add", &[acc, a, b]) else {
            return;
        };
        let (Some(pacc), Some(pa), Some(pb)) = (self.addr(acc), self.addr(a), self.addr(b)) else {
            return;
        };
        let log_n = self.log_n;
        launch!(
            self,
            "poly_mul_add",
            elementwise(total),
            pacc,
            pa,
            pb,
            mods,
            limbs,
            log_n,
            total
        );
    }

    pub(super) fn mul_scalar(&self, a: &mut CudaPoly, residues: &[u64]) {
        let Some((limbs, total, mods)) = self.shape("mul_scalar", &[a]) else {
            return;
        };
        if residues.len() != limbs as usize || residues.len() > MAX_SCALAR_LIMBS {
            self.errors.record(|| {
                format!(
                    "mul_scalar: {} residues for {limbs} limbs (at most {MAX_SCALAR_LIMBS})",
                    residues.len()
                )
            });
            return;
        }
        let mut w = LimbScalars {
            value: [0; MAX_SCALAR_LIMBS],
            shoup: [0; MAX_SCALAR_LIMBS],
        };
        for (i, (&r, m)) in residues.iter().zip(self.ctx.moduli(a.basis)).enumerate() {
            if r >= m.value() {
                self.errors.record(|| {
                    format!("mul_scalar: residue {r} of limb {i} is not below its prime")
                });
                return;
            }
            w.value[i] = r;
            w.shoup[i] = m.shoup(r);
        }
        let Some(pa) = self.addr(a) else { return };
        let log_n = self.log_n;
        launch!(
            self,
            "poly_mul_scalar",
            elementwise(total),
            pa,
            w,
            mods,
            limbs,
            log_n,
            total
        );
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
        if let Some(ptx) = embedded_param_size("pointwise", "poly_mul_scalar", 1) {
            assert_eq!(
                std::mem::size_of::<LimbScalars>(),
                ptx,
                "LimbScalars for poly_mul_scalar"
            );
        }
    }
}
