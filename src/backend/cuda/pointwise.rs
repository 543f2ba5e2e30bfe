//! Element-wise launches: kernels/pointwise.cu and kernels/automorphism.cu.

use super::launch::{elementwise, elementwise_batch, launch};
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

/// `AUTOMORPHISM_BATCH` of kernels/automorphism.cu: Galois elements per batched launch.
const AUTOMORPHISM_BATCH: usize = 32;

/// `AutomorphismBatch` of kernels/automorphism.cu: outputs and Galois elements by value.
#[repr(C)]
#[derive(Clone, Copy)]
struct AutomorphismBatch {
    out: [u64; AUTOMORPHISM_BATCH],
    galois: [u32; AUTOMORPHISM_BATCH],
}

// SAFETY: plain words, laid out as the C struct (32 pointers, then 32 u32: 384 bytes).
unsafe impl DeviceRepr for AutomorphismBatch {}
const _: () = assert!(std::mem::size_of::<AutomorphismBatch>() == 384);

/// Which binary kernel.
#[derive(Clone, Copy)]
pub(super) enum Binary {
    Add,
    Sub,
    Mul,
}

impl CudaBackend {
    /// The operands' common shape (limbs, words, moduli address), or None after recording
    /// why they do not fit together.
    fn shape(&self, what: &str, polys: &[&CudaPoly]) -> Option<(u32, u64, u64)> {
        let first = polys[0];
        for p in polys {
            if p.basis != first.basis || p.ntt_form != first.ntt_form {
                self.errors
                    .record(|| format!("{what}: operands over different bases or domains"));
                return None;
            }
        }
        let bt = self.basis_tables(first.basis)?;
        let limbs = first.basis.len() as u32;
        Some((
            limbs,
            (first.basis.len() * self.n) as u64,
            self.tables.w(bt.mods),
        ))
    }

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

    pub(super) fn automorphism_into(&self, out: &CudaPoly, p: &CudaPoly, galois: u64) {
        let n = self.n as u64;
        if galois.is_multiple_of(2) || galois >= 2 * n {
            self.errors
                .record(|| format!("invalid Galois element {galois}"));
            return;
        }
        let Some((limbs, total, mods)) = self.shape("automorphism", &[p]) else {
            return;
        };
        let (Some(po), Some(pi)) = (self.addr(out), self.addr(p)) else {
            return;
        };
        let (g, log_n) = (galois as u32, self.log_n);
        let cfg = elementwise(total);
        if p.ntt_form {
            launch!(self, "automorphism_ntt", cfg, po, pi, g, log_n, total);
        } else {
            launch!(
                self,
                "automorphism_coeff",
                cfg,
                po,
                pi,
                g,
                mods,
                limbs,
                log_n,
                total
            );
        }
    }

    /// `p` by every element of `galois`, one launch per `AUTOMORPHISM_BATCH` elements in the
    /// NTT domain (one launch each in the coefficient domain, which hoisting never uses).
    pub(super) fn automorphisms_batched(&self, p: &CudaPoly, galois: &[u64]) -> Vec<CudaPoly> {
        let outs: Vec<CudaPoly> = galois
            .iter()
            .map(|_| self.alloc_poly(p.basis, p.ntt_form))
            .collect();
        if !p.ntt_form {
            for (out, &g) in outs.iter().zip(galois) {
                self.automorphism_into(out, p, g);
            }
            return outs;
        }
        let n = self.n as u64;
        if let Some(&g) = galois.iter().find(|&&g| g.is_multiple_of(2) || g >= 2 * n) {
            self.errors.record(|| format!("invalid Galois element {g}"));
            return outs;
        }
        let Some((_, total, _)) = self.shape("automorphism", &[p]) else {
            return outs;
        };
        let Some(pi) = self.addr(p) else {
            return outs;
        };
        let log_n = self.log_n;
        for (c, chunk) in galois.chunks(AUTOMORPHISM_BATCH).enumerate() {
            let mut ops = AutomorphismBatch {
                out: [0; AUTOMORPHISM_BATCH],
                galois: [0; AUTOMORPHISM_BATCH],
            };
            for (k, &g) in chunk.iter().enumerate() {
                let Some(po) = self.addr(&outs[c * AUTOMORPHISM_BATCH + k]) else {
                    return outs;
                };
                ops.out[k] = po;
                ops.galois[k] = g as u32;
            }
            launch!(
                self,
                "automorphism_ntt_batch",
                elementwise_batch(total, chunk.len()),
                ops,
                pi,
                log_n,
                total
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
        if let Some(ptx) = embedded_param_size("pointwise", "poly_mul_scalar", 1) {
            assert_eq!(
                std::mem::size_of::<LimbScalars>(),
                ptx,
                "LimbScalars for poly_mul_scalar"
            );
        }
        if let Some(ptx) = embedded_param_size("automorphism", "automorphism_ntt_batch", 0) {
            assert_eq!(
                std::mem::size_of::<AutomorphismBatch>(),
                ptx,
                "AutomorphismBatch for automorphism_ntt_batch"
            );
        }
    }
}
