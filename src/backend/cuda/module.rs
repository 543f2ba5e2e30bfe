//! Loads the kernels onto a context: the PTX build.rs embedded (`cfg(helora_ptx)`), else the
//! embedded CUDA C++ compiled by NVRTC for the device's own architecture.

use super::super::BackendError;
use super::sources;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::collections::HashMap;
use std::sync::Arc;

/// Every entry point of every kernel file, by name.
pub(super) struct Kernels(HashMap<&'static str, CudaFunction>);

impl Kernels {
    pub(super) fn load(ctx: &Arc<CudaContext>) -> Result<Self, BackendError> {
        let mut functions = HashMap::new();
        for name in sources::FILES {
            let ptx = match sources::ptx(name) {
                Some(ptx) => Ptx::from_src(ptx),
                None => nvrtc(ctx, name)?,
            };
            let module = ctx.load_module(ptx).map_err(|e| {
                BackendError::Device(format!(
                    "loading kernels/{name}.cu on the device (the embedded PTX is for sm_90): {e}"
                ))
            })?;
            for entry in sources::entries(name) {
                let f = module.load_function(entry).map_err(|e| {
                    BackendError::Device(format!("kernel {entry} of kernels/{name}.cu: {e}"))
                })?;
                functions.insert(*entry, f);
            }
        }
        Ok(Self(functions))
    }

    pub(super) fn get(&self, entry: &str) -> Option<&CudaFunction> {
        self.0.get(entry)
    }
}

/// NVRTC reads no files: the headers are pasted in where they are included.
fn nvrtc(ctx: &Arc<CudaContext>, name: &str) -> Result<Ptx, BackendError> {
    // Dynamic loading panics on first use without libnvrtc; a linked binary has it.
    #[cfg(not(feature = "cuda-linked"))]
    // SAFETY: only tries to dlopen libnvrtc and drops it again.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(BackendError::Device(format!(
            "built without nvcc, so kernels/{name}.cu must be compiled at run time, but \
             libnvrtc could not be loaded (put the CUDA libraries on LD_LIBRARY_PATH)"
        )));
    }
    let mut source = sources::source(name)
        .ok_or_else(|| BackendError::Device(format!("no kernel source {name}")))?
        .to_owned();
    for (header, text) in sources::HEADERS {
        source = source.replace(&format!("#include \"{header}\""), text);
    }
    let (major, minor) = ctx
        .compute_capability()
        .map_err(|e| super::device::driver("reading the compute capability", e))?;
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture=compute_{major}{minor}")],
        name: Some(format!("{name}.cu")),
        ..Default::default()
    };
    cudarc::nvrtc::compile_ptx_with_opts(source, opts)
        .map_err(|e| BackendError::Device(format!("NVRTC on kernels/{name}.cu: {e}")))
}
