//! Galois automorphisms X → X^g, the CPU's `ring::automorphism`, in both domains:
//! kernels/automorphism.cu, one element per launch or a batch of them in one.

use super::launch::{elementwise, elementwise_batch, launch};
use super::{CudaBackend, CudaPoly};
use cudarc::driver::DeviceRepr;

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

impl CudaBackend {
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
        if let Some(ptx) = embedded_param_size("automorphism", "automorphism_ntt_batch", 0) {
            assert_eq!(
                std::mem::size_of::<AutomorphismBatch>(),
                ptx,
                "AutomorphismBatch for automorphism_ntt_batch"
            );
        }
    }
}
