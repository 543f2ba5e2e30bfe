//! The HE server beside a base model on a GPU (feature `gpu`): the CUDA backend in candle's
//! CUDA context, on a stream of its own, so the server's kernels and the base model's run
//! on two streams of one device and may overlap.
//!
//! No device buffer crosses the two streams: the client reads each projection's input to
//! the host to encrypt it, and adds the decrypted delta from the host. So the two streams
//! need no synchronisation between them, and cudarc's per-buffer events (which it records
//! on every kernel argument once a context has a second stream) are turned off.
//!
//! Every evaluator of the PLL server (its own two and one per client) gets a backend on the
//! same stream, sharing one load of the kernels and one upload of the tables: buffers of one backend may be used by another's kernels (the adapter's
//! plaintexts are encoded by one, read by the clients'), which stream order makes safe.
//! The PLL's batch jobs on several threads share the client's backend: their operations
//! interleave on the one stream, each thread's in its own order, and the memory pool and
//! error state are behind locks, so that is valid too; the GPU runs them one after another
//! while the threads' host work (noise, encoding) overlaps.

use super::server::SecureServer;
use crate::adapter::LoraAdapter;
use anyhow::{Context, Result};
use candle_core::CudaDevice;
use helora::backend::CudaBackend;
use helora::ckks::{Evaluator, Params};
use helora::pll::{PllServer, PllSettings};

/// A server for `adapter` whose HE work runs on a new stream of `device`'s context.
pub fn server(
    params: &Params,
    adapter: &LoraAdapter,
    settings: PllSettings,
    device: &CudaDevice,
) -> Result<SecureServer<CudaBackend>> {
    let model_stream = device.cuda_stream();
    let context = model_stream.context();
    // SAFETY: no buffer is used on both streams (see the module's comment), and candle uses
    // its tensors on its one stream only, so stream order is all either side needs. Turned
    // off before the second stream exists, so cudarc does not start recording events.
    unsafe { context.disable_event_tracking() };
    let stream = context
        .new_stream()
        .context("creating the CUDA stream of the HE server")?;
    // One module load and one table upload; every evaluator gets a sibling of this backend.
    let first = CudaBackend::with_stream(params.ring().clone(), params.alpha(), stream)
        .context("starting the CUDA backend of the HE server")?;
    let pll = PllServer::with_backend(params, settings, move |p| {
        Evaluator::with_backend(p, first.sibling())
    })
    .context("starting the PLL server on the GPU")?;
    SecureServer::with_pll(adapter, pll)
}
