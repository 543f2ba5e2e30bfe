//! Loads the kernels onto a context: the PTX build.rs embedded (`cfg(helora_ptx)`), else the
//! embedded CUDA C++ compiled by NVRTC for the device's own architecture.

use super::super::BackendError;
use super::sources;
use cudarc::driver::{CudaContext, CudaFunction};
use cudarc::nvrtc::{CompileOptions, Ptx};
use std::collections::HashMap;
use std::sync::Arc;

/// Every entry point of every kernel file, by name.
/// The loaded kernels by entry name, each with the byte sizes of its PTX parameters (what a
/// launch must pass: `launch!` compares its arguments' sizes with them).
pub(super) struct Kernels(HashMap<&'static str, (CudaFunction, Vec<usize>)>);

impl Kernels {
    pub(super) fn load(ctx: &Arc<CudaContext>) -> Result<Self, BackendError> {
        let mut functions = HashMap::new();
        for name in sources::FILES {
            let ptx = match sources::ptx(name) {
                Some(ptx) => Ptx::from_src(ptx),
                None => nvrtc(ctx, name)?,
            };
            let text = ptx.to_src();
            let module = ctx.load_module(ptx).map_err(|e| {
                BackendError::Device(format!(
                    "loading kernels/{name}.cu on the device (the embedded PTX is for sm_90): {e}"
                ))
            })?;
            for entry in sources::entries(name) {
                let f = module.load_function(entry).map_err(|e| {
                    BackendError::Device(format!("kernel {entry} of kernels/{name}.cu: {e}"))
                })?;
                let sizes = param_sizes(&text, entry).ok_or_else(|| {
                    BackendError::Device(format!(
                        "kernel {entry} of kernels/{name}.cu: its parameter list in the PTX could not be read"
                    ))
                })?;
                functions.insert(*entry, (f, sizes));
            }
        }
        Ok(Self(functions))
    }

    /// The kernel and its parameters' sizes.
    pub(super) fn get(&self, entry: &str) -> Option<(&CudaFunction, &[usize])> {
        self.0.get(entry).map(|(f, sizes)| (f, sizes.as_slice()))
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

/// The byte sizes of an entry's parameters in PTX text: `.param .u64 x` is 8, `.param .u32 x`
/// 4, `.param .align 8 .b8 x[768]` (a struct passed by value) 768. None if the entry or its
/// list is not there or not understood.
pub(super) fn param_sizes(ptx: &str, entry: &str) -> Option<Vec<usize>> {
    let start = ptx.find(&format!(".entry {entry}("))? + ".entry ".len() + entry.len() + 1;
    let list = &ptx[start..start + ptx[start..].find(')')?];
    let mut sizes = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let words: Vec<&str> = p.split_whitespace().collect();
        let ty = words
            .iter()
            .rev()
            .find(|w| w.starts_with('.') && *w != &".param")?;
        let bits: usize = ty.get(2..)?.parse().ok()?;
        let count = match words.last()?.split_once('[') {
            Some((_, n)) => n.strip_suffix(']')?.parse().ok()?,
            None => 1,
        };
        sizes.push(bits / 8 * count);
    }
    Some(sizes)
}

/// The byte size of parameter `index` of `entry` in the embedded PTX of kernels/`file`.cu
/// (tests of the by-value structs); None, with a note, in a build without nvcc (a failure
/// under HELORA_REQUIRE_NVCC=1).
#[cfg(test)]
pub(super) fn embedded_param_size(file: &str, entry: &str, index: usize) -> Option<usize> {
    let Some(ptx) = sources::ptx(file) else {
        assert_ne!(
            std::env::var("HELORA_REQUIRE_NVCC").as_deref(),
            Ok("1"),
            "HELORA_REQUIRE_NVCC=1 but kernels/{file}.cu has no embedded PTX"
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: built without nvcc (no embedded PTX)"
        );
        return None;
    };
    let sizes = param_sizes(ptx, entry).expect("the entry's parameter list");
    Some(sizes[index])
}

#[cfg(test)]
mod tests {
    use super::param_sizes;

    #[test]
    fn ptx_parameter_sizes() {
        let ptx = ".visible .entry k(\n\t.param .u64 k_param_0,\n\t.param .align 8 .b8 k_param_1[768],\n\t.param .u32 k_param_2\n)\n{\n}\n.visible .entry e(\n)\n{\n}";
        assert_eq!(param_sizes(ptx, "k"), Some(vec![8, 768, 4]));
        assert_eq!(param_sizes(ptx, "e"), Some(vec![]));
        assert_eq!(param_sizes(ptx, "missing"), None);
        assert_eq!(param_sizes(".entry k(.param .weird x)", "k"), None);
    }

    /// Every embedded kernel's parameter list reads (a build with nvcc).
    #[test]
    fn embedded_kernels_have_readable_parameters() {
        for name in super::sources::FILES {
            let Some(ptx) = super::sources::ptx(name) else {
                continue;
            };
            for entry in super::sources::entries(name) {
                assert!(
                    param_sizes(ptx, entry).is_some_and(|s| !s.is_empty()),
                    "{entry}"
                );
            }
        }
    }
}
