//! Kernel launches: shapes, and a macro that queues one launch on the backend's stream and
//! records a failure in the sticky error instead of returning it.

use cudarc::driver::LaunchConfig;

/// Threads per block of the element-wise (grid-stride) kernels.
const BLOCK: u32 = 256;
/// Blocks of a grid-stride launch at most: a few per SM of the largest GPUs.
const MAX_BLOCKS: u64 = 4096;

/// A 1-D grid-stride launch over `total` elements.
pub(super) fn elementwise(total: u64) -> LaunchConfig {
    let blocks = total.div_ceil(BLOCK as u64).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// [`elementwise`] over `total` elements for each of `batch` items: blockIdx.y is the item.
pub(super) fn elementwise_batch(total: u64, batch: usize) -> LaunchConfig {
    let mut cfg = elementwise(total);
    cfg.grid_dim.1 = batch as u32;
    cfg
}

/// Queues kernel `$name` with the given arguments, each a local variable (the launch reads
/// them by reference, so they must outlive the call). A failed launch is recorded in the
/// backend's sticky error.
macro_rules! launch {
    ($backend:expr, $name:literal, $cfg:expr, $($arg:ident),* $(,)?) => {{
        let backend = &$backend;
        backend
            .launches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match backend.kernels.get($name) {
            // The arguments must be what the PTX declares, in number and size (a by-value
            // struct as large as the kernel's): the driver copies each parameter's declared
            // size from the argument's address, whatever the argument is.
            Some((_, declared))
                if declared != [$( std::mem::size_of_val(&$arg) ),*].as_slice() =>
            {
                backend.errors.record(|| {
                    format!(
                        "kernel {}: arguments of {:?} bytes, its PTX parameters are {:?} bytes",
                        $name,
                        [$( std::mem::size_of_val(&$arg) ),*],
                        declared
                    )
                })
            }
            Some((f, _)) => {
                use cudarc::driver::PushKernelArg as _;
                let mut builder = backend.stream.launch_builder(f);
                $( builder.arg(&$arg); )*
                // SAFETY: the arguments match the kernel's C signature in kernels/ (device
                // addresses as u64, then scalars and by-value structs of the same layout),
                // and every address points into a live buffer of this context that the
                // kernel's index range stays inside (checked by the callers).
                let result = unsafe { builder.launch($cfg) };
                backend.errors.record_result(concat!("launching ", $name), result);
            }
            None => backend
                .errors
                .record(|| format!("kernel {} is not loaded", $name)),
        }
    }};
}
pub(super) use launch;
