//! Rescale, ModUp (decompose) and ModDown, the CPU's `ring::basis_extension` (`rescale`,
//! `BasisExtender::mod_up`, `BasisExtender::mod_down`) in the same order: kernels/rescale.cu,
//! kernels/basis_conversion.cu and the NTT.

use super::launch::{elementwise, launch};
use super::tables::{Conversion, Scale};
use super::{CudaBackend, CudaPoly};
use crate::ring::Basis;

impl CudaBackend {
    /// Fast base conversion of `c.sources` coefficient rows at `input` into the first
    /// `targets` target rows of `out` (at the rows the conversion names).
    fn convert(&self, c: &Conversion, input: u64, out: u64, targets: u32) {
        let t = &self.tables;
        let log_n = self.log_n;
        let (to, rows) = (t.w(c.to), t.i(c.rows));
        let cfg = elementwise((targets as u64) << log_n);
        if c.sources == 1 {
            let s = c.source;
            launch!(
                self,
                "base_convert_center",
                cfg,
                out,
                rows,
                input,
                s,
                to,
                targets,
                log_n
            );
            return;
        }
        let sources = c.sources;
        let y = self.pool.alloc(sources as usize * self.n);
        let u = self.pool.alloc(self.n);
        let (Some(py), Some(pu)) = (y.ptr(0), u.ptr(0)) else {
            return;
        };
        let (from, inv_hat, inv_hat_shoup, inv_from) = (
            t.w(c.from),
            t.w(c.inv_hat),
            t.w(c.inv_hat_shoup),
            t.w(c.inv_from),
        );
        launch!(
            self,
            "base_convert_scale",
            elementwise(self.n as u64),
            py,
            pu,
            input,
            from,
            inv_hat,
            inv_hat_shoup,
            inv_from,
            sources,
            log_n
        );
        let (hat, hat_shoup, prod, prod_shoup) =
            (t.w(c.hat), t.w(c.hat_shoup), t.w(c.prod), t.w(c.prod_shoup));
        launch!(
            self,
            "base_convert_sum",
            cfg,
            out,
            rows,
            py,
            pu,
            to,
            hat,
            hat_shoup,
            prod,
            prod_shoup,
            sources,
            targets,
            log_n
        );
        // y and u go back to the pool here; work queued later on the stream runs after.
    }

    /// out = (x − out)·w per limb, over `basis` (the last step of rescale and ModDown).
    fn sub_mul(&self, out: u64, x: u64, scale: Scale, basis: Basis) {
        let Some(bt) = self.basis_tables(basis) else {
            return;
        };
        let t = &self.tables;
        let (w, w_shoup, mods) = (t.w(scale.w), t.w(scale.w_shoup), t.w(bt.mods));
        let limbs = basis.len() as u32;
        let total = (basis.len() * self.n) as u64;
        let log_n = self.log_n;
        launch!(
            self,
            "poly_sub_mul_scalar",
            elementwise(total),
            out,
            x,
            w,
            w_shoup,
            mods,
            limbs,
            log_n,
            total
        );
    }

    /// Copies `rows` rows from `src` to `dst` on the stream.
    pub(super) fn copy_rows(&self, dst: u64, src: u64, rows: usize) {
        let bytes = rows * self.n * 8;
        if bytes == 0 {
            return;
        }
        super::device::bind(&self.stream, &self.errors);
        // SAFETY: both ranges lie inside live buffers of this context (checked by callers);
        // the copy is queued on the backend's stream like every other use of them.
        let r = unsafe {
            cudarc::driver::result::memcpy_dtod_async(dst, src, bytes, self.stream.cu_stream())
        };
        self.errors.record_result("copying on the device", r);
    }

    pub(super) fn rescale_poly(&self, x: &CudaPoly) -> CudaPoly {
        let basis = x.basis;
        let q = basis.q;
        let out_basis = Basis::level(q.saturating_sub(2));
        let out = self.alloc_poly(out_basis, true);
        let scalars = self.tables.rescale.get(q).copied().flatten();
        let (true, 0, Some((half_mod, scale))) = (x.ntt_form, basis.p, scalars) else {
            self.errors.record(|| {
                format!("rescale needs an NTT-form polynomial over Q_l, l ≥ 1 (got {basis:?})")
            });
            return out;
        };
        let last = q - 1;
        let r = self.pool.alloc(self.n);
        let (Some(px), Some(pr), Some(po)) = (self.addr(x), r.ptr(0), self.addr(&out)) else {
            return out;
        };
        // r = INTT(x_l): the last limb in coefficient form.
        self.copy_rows(pr, px + 8 * (last * self.n) as u64, 1);
        // `r` holds only row `last`.
        self.ntt_rows_at(false, pr, basis, last..q);
        let Some(bt) = self.basis_tables(out_basis) else {
            return out;
        };
        let t = &self.tables;
        let q_last = self.ctx.q()[last].value();
        let half = q_last / 2;
        let (mods, half_mod) = (t.w(bt.mods), t.w(half_mod));
        let limbs = last as u32;
        let log_n = self.log_n;
        launch!(
            self,
            "rescale_spread",
            elementwise((last * self.n) as u64),
            po,
            pr,
            q_last,
            half,
            mods,
            half_mod,
            limbs,
            log_n
        );
        self.ntt_rows(true, po, out_basis, 0..last);
        self.sub_mul(po, px, scale, out_basis);
        out
    }

    pub(super) fn decompose_poly(&self, c: &CudaPoly) -> Vec<CudaPoly> {
        let basis = c.basis;
        let (true, 0, true) = (c.ntt_form, basis.p, basis.q >= 1) else {
            self.errors.record(|| {
                format!("decompose needs an NTT-form polynomial over Q_l (got {basis:?})")
            });
            return Vec::new();
        };
        let level = basis.q - 1;
        let Some(digits) = self.tables.digits.get(level) else {
            self.errors.record(|| {
                "decompose: this backend has no key-switching digits (no special primes)".into()
            });
            return Vec::new();
        };
        let q = basis.q;
        let ext_basis = Basis::new(q, self.ctx.p().len());
        let coeff = self.pool.alloc(q * self.n);
        let (Some(pc), Some(pcoeff)) = (self.addr(c), coeff.ptr(0)) else {
            return Vec::new();
        };
        self.copy_rows(pcoeff, pc, q);
        self.ntt_rows(false, pcoeff, basis, 0..q);
        digits
            .iter()
            .map(|d| {
                let out = self.alloc_poly(ext_basis, true);
                let Some(po) = self.addr(&out) else {
                    return out;
                };
                let (start, end) = (d.limbs.start, d.limbs.end);
                let input = pcoeff + 8 * (start * self.n) as u64;
                self.convert(&d.conversion, input, po, d.conversion.targets);
                self.ntt_rows(true, po, ext_basis, 0..start);
                self.ntt_rows(true, po, ext_basis, end..ext_basis.len());
                // The digit's own limbs are c's, already in NTT form.
                let offset = 8 * (start * self.n) as u64;
                self.copy_rows(po + offset, pc + offset, end - start);
                out
            })
            .collect()
    }

    pub(super) fn mod_down_poly(&self, x: &CudaPoly) -> CudaPoly {
        let basis = x.basis;
        let q = basis.q;
        let out_basis = Basis::level(q.saturating_sub(1));
        let out = self.alloc_poly(out_basis, true);
        let p = self.ctx.p().len();
        let Some((conversion, scale)) = self.tables.mod_down.as_ref() else {
            self.errors
                .record(|| "mod_down: this backend has no special primes".into());
            return out;
        };
        if !x.ntt_form || basis.p != p || p == 0 {
            self.errors.record(|| {
                format!("mod_down needs an NTT-form polynomial over Q_l ∪ P (got {basis:?})")
            });
            return out;
        }
        let p_part = self.pool.alloc(p * self.n);
        let (Some(px), Some(pp), Some(po)) = (self.addr(x), p_part.ptr(0), self.addr(&out)) else {
            return out;
        };
        // The P limbs in coefficient form, converted to Q_l straight into the output.
        self.copy_rows(pp, px + 8 * (q * self.n) as u64, p);
        // `p_part` holds only rows q.. of x.
        self.ntt_rows_at(false, pp, basis, q..q + p);
        self.convert(conversion, pp, po, q as u32);
        self.ntt_rows(true, po, out_basis, 0..q);
        // The first q limbs of x are x over Q_l, in the same layout as `out`.
        self.sub_mul(po, px, *scale, out_basis);
        out
    }
}
