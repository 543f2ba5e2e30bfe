//! The CUDA backend (feature `cuda`): polynomials in device memory, the kernels of
//! `kernels/` launched on one stream, bit-identical to [`CpuBackend`](super::CpuBackend).
//!
//! - With feature `cuda` the driver is loaded at run time (cudarc's dynamic loading): a
//!   binary built with it starts anywhere, and [`CudaBackend::new`] returns an error, not a
//!   panic, where there is no driver or no device. With `cuda-linked` (the engine's full GPU
//!   build, beside candle) the driver is linked: the binary needs it to start.
//! - Every operation is queued on the backend's stream and returns at once; only `upload`,
//!   `download` and [`CudaBackend::synchronize`] wait for the device.
//! - Errors of the trait methods that return no `Result` (a failed launch or allocation, or
//!   operands that do not fit together, where the CPU backend would panic) are kept like
//!   CUDA's own asynchronous errors: the first one sticks, the failed operation's output is
//!   left unspecified, and `download` and `synchronize` report it from then on.
//! - Device memory comes from a pool that reuses freed buffers by size; twiddles, moduli
//!   and basis-conversion constants are uploaded once, when the backend is made.
//! - [`CudaBackend::capture`] records the work of a closure (e.g. a whole LoRA apply) as a
//!   CUDA graph that [`CapturedGraph::launch`] replays with one launch (graph.rs).
//!
//! See docs/cuda.md for the kernels, the build and the GPU test procedure.

mod arith;
mod automorphism;
mod basis_extension;
mod device;
mod graph;
mod key_switch_inner_product;
mod launch;
mod memory;
mod module;
mod ntt;
pub mod sources;
mod tables;
mod timing;

use super::{Backend, BackendError, KeySwitchStep};
use crate::ring::{Basis, BasisExtender, RingContext, RnsPoly};
use arith::Binary;
use cudarc::driver::{CudaContext, CudaStream, DriverError};
use device::{driver, Sticky};
use memory::{Buffer, Pool};
use module::Kernels;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tables::{BasisTables, Tables};

pub use cudarc::driver::CudaStream as Stream;
pub use device::check_device;
pub use graph::CapturedGraph;
pub use timing::StreamTimer;

/// A polynomial in device memory: limb-major `[limb][coeff]`, like [`RnsPoly`].
#[derive(Debug)]
pub struct CudaPoly {
    buf: Buffer,
    basis: Basis,
    ntt_form: bool,
    n: usize,
}

impl CudaPoly {
    fn words(&self) -> usize {
        self.basis.len() * self.n
    }
}

impl Clone for CudaPoly {
    /// A copy queued on the owning backend's stream (asynchronous, like every operation).
    fn clone(&self) -> Self {
        let pool = self.buf.pool();
        let buf = pool.alloc(self.words());
        if let (Some(dst), Some(src)) = (buf.ptr(0), self.buf.ptr(0)) {
            let bytes = self.words() * 8;
            if bytes > 0 {
                device::bind(pool.stream(), &pool.errors);
                // SAFETY: both buffers hold at least `words` u64 and live on this stream.
                let r = unsafe {
                    cudarc::driver::result::memcpy_dtod_async(
                        dst,
                        src,
                        bytes,
                        pool.stream().cu_stream(),
                    )
                };
                pool.errors
                    .record_result("copying a polynomial on the device", r);
            }
        }
        Self {
            buf,
            basis: self.basis,
            ntt_form: self.ntt_form,
            n: self.n,
        }
    }
}

pub struct CudaBackend {
    ctx: Arc<RingContext>,
    n: usize,
    log_n: u32,
    /// NTT split: outer stages over 2^log_outer strided rows, then inner ones (ntt.cu).
    log_outer: u32,
    device: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    /// Shared with [`sibling`](Self::sibling)s: loaded and uploaded once per device.
    kernels: Arc<Kernels>,
    pool: Arc<Pool>,
    tables: Arc<Tables>,
    errors: Arc<Sticky>,
    /// Kernel launches queued so far (for benchmarks: launches per operation).
    launches: AtomicU64,
}

impl Drop for CudaBackend {
    /// Kernels still queued use this backend's modules and tables: wait for them before
    /// those are released (not during a capture, where nothing has run and waiting is not
    /// allowed).
    fn drop(&mut self) {
        if !self.errors.capturing() {
            let _ = self.stream.synchronize();
        }
    }
}

impl CudaBackend {
    /// A backend on device 0 with a stream of its own, for `ctx` with key-switching digits
    /// of `alpha` primes (as [`CpuBackend::new`](super::CpuBackend::new)). Fails with a
    /// clear message where there is no CUDA driver or device.
    pub fn new(ctx: Arc<RingContext>, alpha: usize) -> Result<Self, BackendError> {
        Self::on_device(0, ctx, alpha)
    }

    /// As [`new`](Self::new), on device `ordinal`.
    pub fn on_device(
        ordinal: usize,
        ctx: Arc<RingContext>,
        alpha: usize,
    ) -> Result<Self, BackendError> {
        let (_, stream) = device::open(ordinal)?;
        Self::build(ctx, alpha, stream)
    }

    /// A backend that queues its work on `stream`, e.g. a base model's stream on the same
    /// device, so the two are ordered without extra synchronisation.
    pub fn with_stream(
        ctx: Arc<RingContext>,
        alpha: usize,
        stream: Arc<CudaStream>,
    ) -> Result<Self, BackendError> {
        Self::build(ctx, alpha, stream)
    }

    fn build(
        ctx: Arc<RingContext>,
        alpha: usize,
        stream: Arc<CudaStream>,
    ) -> Result<Self, BackendError> {
        let device = stream.context().clone();
        device
            .bind_to_thread()
            .map_err(|e| driver("binding the CUDA context", e))?;
        let kernels = Arc::new(Kernels::load(&device)?);
        // Like `CpuBackend`, without its panic where there is nothing to key-switch with.
        let extender = (alpha >= 1 && !ctx.p().is_empty()).then(|| BasisExtender::new(&ctx, alpha));
        let tables = Arc::new(Tables::upload(&stream, &ctx, extender.as_ref())?);
        let errors = Arc::new(Sticky::default());
        let log_n = ctx.log_n();
        Ok(Self {
            n: ctx.n(),
            log_n,
            // One launch up to N = 4096 (N·8 bytes of shared memory); else √N × √N.
            log_outer: if log_n <= 12 { 0 } else { log_n / 2 },
            pool: Pool::new(stream.clone(), errors.clone()),
            ctx,
            device,
            stream,
            kernels,
            tables,
            errors,
            launches: AtomicU64::new(0),
        })
    }

    /// Another backend for the same ring on the same stream, sharing this one's loaded
    /// kernels and constant tables (a server's per-client evaluators: no module load or
    /// table upload per client), with its own memory pool and error state.
    pub fn sibling(&self) -> Self {
        let errors = Arc::new(Sticky::default());
        Self {
            ctx: self.ctx.clone(),
            n: self.n,
            log_n: self.log_n,
            log_outer: self.log_outer,
            device: self.device.clone(),
            stream: self.stream.clone(),
            kernels: self.kernels.clone(),
            pool: Pool::new(self.stream.clone(), errors.clone()),
            tables: self.tables.clone(),
            errors,
            launches: AtomicU64::new(0),
        }
    }

    /// The stream every operation is queued on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The device's name, e.g. for logs.
    pub fn device_name(&self) -> Result<String, BackendError> {
        self.device
            .name()
            .map_err(|e| driver("reading the device name", e))
    }

    /// Waits for every queued operation; reports the first error of any of them.
    pub fn synchronize(&self) -> Result<(), BackendError> {
        graph::refuse_while_capturing(&self.errors, "synchronising the stream")?;
        self.errors.check()?;
        self.settle(self.stream.synchronize())
    }

    /// After a wait for the stream (`waited`): records its failure and the device's, and
    /// reports the backend's first error.
    fn settle(&self, waited: Result<(), DriverError>) -> Result<(), BackendError> {
        self.errors.record_result("running on the device", waited);
        let r = self.device.check_err();
        self.errors.record_result("on the device", r);
        self.errors.check()
    }

    /// Kernel launches queued since the backend was made: the difference around an
    /// operation is its launch count (each costs the host a few µs to queue).
    pub fn launches(&self) -> u64 {
        self.launches.load(Ordering::Relaxed)
    }

    /// Frees the pooled (unused) device buffers; nothing while a captured graph lives (it may
    /// still read pooled memory).
    pub fn trim_pool(&self) {
        self.pool.trim();
    }

    /// Device bytes held: the constant tables and the pooled buffers (not those in use).
    pub fn held_bytes(&self) -> usize {
        self.tables.bytes() + self.pool.pooled_bytes()
    }

    fn alloc_poly(&self, basis: Basis, ntt_form: bool) -> CudaPoly {
        CudaPoly {
            buf: self.pool.alloc(basis.len() * self.n),
            basis,
            ntt_form,
            n: self.n,
        }
    }

    fn basis_tables(&self, basis: Basis) -> Option<BasisTables> {
        let bt = self.tables.bases.get(&basis).copied();
        if bt.is_none() {
            self.errors
                .record(|| format!("basis {basis:?} is not in this backend's ring"));
        }
        bt
    }

    /// The operands' common shape (limbs, words, moduli address), or None after recording
    /// why they do not fit together (the element-wise launches).
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

    /// The device address of `p`'s data, or None (recorded) if it has none.
    fn addr(&self, p: &CudaPoly) -> Option<u64> {
        let ptr = p
            .buf
            .ptr(0)
            .filter(|_| p.buf.len() >= p.words() && p.n == self.n);
        if ptr.is_none() {
            self.errors.record(|| {
                "a polynomial without device memory of its size (an earlier allocation \
                 failed, or it belongs to another ring)"
                    .into()
            });
        }
        ptr
    }
}

impl Backend for CudaBackend {
    type Poly = CudaPoly;

    fn name(&self) -> &'static str {
        "cuda"
    }

    fn context(&self) -> &Arc<RingContext> {
        &self.ctx
    }

    fn upload(&self, p: &RnsPoly) -> Result<CudaPoly, BackendError> {
        // A copy from pageable host memory cannot be captured (the graph would not copy the
        // new data on a replay); refuse before the driver invalidates the capture.
        graph::refuse_while_capturing(&self.errors, "uploading a polynomial")?;
        if p.n() != self.n || !self.ctx.contains(p.basis()) {
            return Err(BackendError::Shape(format!(
                "degree {} basis {:?}",
                p.n(),
                p.basis()
            )));
        }
        let out = self.alloc_poly(p.basis(), p.ntt_form);
        self.errors.check()?;
        let dst = self
            .addr(&out)
            .ok_or_else(|| BackendError::Device("device allocation failed".into()))?;
        self.device
            .bind_to_thread()
            .map_err(|e| driver("binding the CUDA context", e))?;
        // SAFETY: `dst` holds `words` u64 of this stream's memory, and the driver has staged a
        // pageable source when the call returns, so `p` may go at once.
        let r = unsafe {
            cudarc::driver::result::memcpy_htod_async(dst, p.data(), self.stream.cu_stream())
        };
        r.map_err(|e| driver("uploading a polynomial", e))?;
        Ok(out)
    }

    fn download(&self, p: &CudaPoly) -> Result<RnsPoly, BackendError> {
        graph::refuse_while_capturing(&self.errors, "downloading a polynomial")?;
        self.errors.check()?;
        let src = p
            .buf
            .ptr(0)
            .filter(|_| p.buf.len() >= p.words())
            .ok_or_else(|| BackendError::Device("polynomial has no device memory".into()))?;
        let mut data = vec![0u64; p.words()];
        let copied = if data.is_empty() {
            Ok(())
        } else {
            self.device
                .bind_to_thread()
                .map_err(|e| driver("binding the CUDA context", e))?;
            // SAFETY: `src` holds `words` u64 of this stream's memory and `data` as many; the
            // stream is synchronised below before `data` is used or dropped.
            unsafe {
                cudarc::driver::result::memcpy_dtoh_async(&mut data, src, self.stream.cu_stream())
            }
        };
        // One wait for the copy and the work before it, whose failures show now.
        let waited = self.stream.synchronize();
        copied.map_err(|e| driver("downloading a polynomial", e))?;
        self.settle(waited)?;
        RnsPoly::from_data(self.n, p.basis, p.ntt_form, data)
            .ok_or_else(|| BackendError::Shape("downloaded length".into()))
    }

    fn basis(&self, p: &CudaPoly) -> Basis {
        p.basis
    }

    fn is_ntt(&self, p: &CudaPoly) -> bool {
        p.ntt_form
    }

    fn zero(&self, basis: Basis, ntt_form: bool) -> CudaPoly {
        let p = self.alloc_poly(basis, ntt_form);
        if let Some(dst) = self.addr(&p) {
            device::bind(&self.stream, &self.errors);
            // SAFETY: `dst` holds `words` u64 of this stream's memory.
            let r = unsafe {
                cudarc::driver::result::memset_d8_async(
                    dst,
                    0,
                    p.words() * 8,
                    self.stream.cu_stream(),
                )
            };
            self.errors.record_result("zeroing a polynomial", r);
        }
        p
    }

    fn ntt_forward(&self, p: &mut CudaPoly) {
        if p.ntt_form {
            self.errors
                .record(|| "ntt_forward: polynomial is already in NTT form".into());
            return;
        }
        if let Some(addr) = self.addr(p) {
            self.ntt_rows(true, addr, p.basis, 0..p.basis.len());
        }
        p.ntt_form = true;
    }

    fn ntt_inverse(&self, p: &mut CudaPoly) {
        if !p.ntt_form {
            self.errors
                .record(|| "ntt_inverse: polynomial is already in coefficient form".into());
            return;
        }
        if let Some(addr) = self.addr(p) {
            self.ntt_rows(false, addr, p.basis, 0..p.basis.len());
        }
        p.ntt_form = false;
    }

    fn add_assign(&self, a: &mut CudaPoly, b: &CudaPoly) {
        self.binary(Binary::Add, a, b)
    }

    fn sub_assign(&self, a: &mut CudaPoly, b: &CudaPoly) {
        self.binary(Binary::Sub, a, b)
    }

    fn neg_assign(&self, a: &mut CudaPoly) {
        self.neg(a)
    }

    fn mul_assign(&self, a: &mut CudaPoly, b: &CudaPoly) {
        self.binary(Binary::Mul, a, b)
    }

    fn mul_add_assign(&self, acc: &mut CudaPoly, a: &CudaPoly, b: &CudaPoly) {
        self.mul_add(acc, a, b)
    }

    fn mul_scalar_assign(&self, a: &mut CudaPoly, residues: &[u64]) {
        self.mul_scalar(a, residues)
    }

    fn automorphism(&self, p: &CudaPoly, galois: u64) -> CudaPoly {
        let out = self.alloc_poly(p.basis, p.ntt_form);
        self.automorphism_into(&out, p, galois);
        out
    }

    fn truncate_q(&self, p: &mut CudaPoly, q: usize) {
        if q > p.basis.q || q == 0 {
            self.errors
                .record(|| format!("truncate_q({q}) of a polynomial over {:?}", p.basis));
            return;
        }
        // The first q limbs stay where they are; the buffer keeps its (larger) size.
        p.basis = Basis::new(q, 0);
    }

    fn rescale(&self, p: &CudaPoly) -> CudaPoly {
        self.rescale_poly(p)
    }

    fn decompose(&self, c: &CudaPoly) -> Vec<CudaPoly> {
        self.decompose_poly(c)
    }

    fn key_switch_inner_product(
        &self,
        digits: &[CudaPoly],
        key: &[[CudaPoly; 2]],
        galois: Option<u64>,
    ) -> [CudaPoly; 2] {
        self.inner_product(digits, key, galois)
    }

    fn mod_down(&self, x: &CudaPoly) -> CudaPoly {
        self.mod_down_poly(x)
    }

    fn key_switch_inner_products(
        &self,
        digits: &[CudaPoly],
        steps: &[KeySwitchStep<'_, CudaPoly>],
    ) -> Vec<[CudaPoly; 2]> {
        self.inner_products(digits, steps)
    }

    fn automorphisms(&self, p: &CudaPoly, galois: &[u64]) -> Vec<CudaPoly> {
        self.automorphisms_batched(p, galois)
    }

    fn key_switch_batch(&self, basis: Basis) -> usize {
        self.hoisted_batch(basis)
    }
}
