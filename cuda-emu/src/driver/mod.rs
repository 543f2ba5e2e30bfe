//! The driver API: `extern "C"` functions with the names and signatures of libcuda's, over
//! one emulated device and its primary context.
//!
//! All state is behind one lock ([`with`]); the API functions check their arguments, take
//! the lock, and either act at once (allocation, module loading) or queue work on a stream
//! (stream.rs), which runs when something waits for it, as the driver's ordering rules
//! allow: a synchronisation, an event wait, a blocking copy. Every error is printed to
//! stderr (`cuda-emu: cuXxx: ...`) before its code is returned; a kernel fault (bad address,
//! race, ...) is sticky, as on hardware: every later call returns it until the context is
//! destroyed.

pub mod context;
pub mod event;
pub mod graph;
pub mod launch;
pub mod memory;
pub mod module;
pub mod not_emulated;
pub mod stream;

use crate::device::heap::Heap;
use crate::error::*;
use std::cell::Cell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard};

/// The emulated device's name: nothing should take it for hardware (scripts/gpu-run.sh and
/// the engine's benches look for "cuda-emu" in it).
pub const DEVICE_NAME: &std::ffi::CStr = c"helora cuda-emu (not a GPU)";
/// The driver this stands in for: 580 (CUDA 13.0), and the PTX it accepts.
pub const DRIVER_VERSION: i32 = 13000;
pub const MAX_PTX_VERSION: (u32, u32) = (9, 0);
pub const SM: u32 = 90;

/// The state of the emulated driver.
pub struct Driver {
    pub initialized: bool,
    /// Generation of the primary context (its handle is derived from it) and its references.
    pub context_generation: u64,
    pub context_refs: u32,
    pub heap: Heap,
    pub modules: HashMap<u64, module::LoadedModule>,
    pub functions: HashMap<u64, module::Function>,
    pub streams: HashMap<u64, stream::Stream>,
    pub events: HashMap<u64, event::Event>,
    pub graphs: HashMap<u64, graph::Graph>,
    pub execs: HashMap<u64, graph::Exec>,
    next_handle: u64,
    /// The first kernel fault: every call returns it until the context goes.
    pub sticky: Option<Error>,
    pub launches: u64,
    pub instructions: u64,
    pub launch_id: u64,
}

impl Driver {
    fn new() -> Self {
        Driver {
            initialized: false,
            context_generation: 1,
            context_refs: 0,
            heap: Heap::new(),
            modules: HashMap::new(),
            functions: HashMap::new(),
            streams: HashMap::new(),
            events: HashMap::new(),
            graphs: HashMap::new(),
            execs: HashMap::new(),
            next_handle: 0x10_0000,
            sticky: None,
            launches: 0,
            instructions: 0,
            launch_id: 0,
        }
    }

    /// A fresh opaque handle (never 0, never reused).
    pub fn handle(&mut self) -> u64 {
        self.next_handle += 16;
        self.next_handle
    }

    /// The primary context's handle while it exists.
    pub fn context_handle(&self) -> Option<u64> {
        (self.context_refs > 0).then_some(0x1000 + self.context_generation * 16)
    }

    /// Fails unless cuInit was called, no kernel fault is pending, and this thread has the
    /// (live) primary context current.
    pub fn ready(&self) -> Result<()> {
        self.initialized_and_sane()?;
        let cur = CURRENT.with(Cell::get);
        match self.context_handle() {
            Some(h) if h == cur => Ok(()),
            _ if cur == 0 => Err(Error::new(INVALID_CONTEXT, "no CUDA context is current on this thread (cuCtxSetCurrent / bind_to_thread missing?)")),
            _ => Err(Error::new(INVALID_CONTEXT, "the context current on this thread was destroyed")),
        }
    }

    /// Fails unless cuInit was called and no kernel fault is pending.
    pub fn initialized_and_sane(&self) -> Result<()> {
        if !self.initialized {
            return Err(Error::new(NOT_INITIALIZED, "cuInit was not called"));
        }
        if let Some(e) = &self.sticky {
            return Err(Error::new(
                e.code,
                format!(
                    "an earlier kernel fault left the context unusable: {}",
                    e.message
                ),
            ));
        }
        Ok(())
    }

    /// Drops everything of the context (its last reference went).
    fn destroy_context(&mut self) {
        let generation = self.context_generation + 1;
        let initialized = self.initialized;
        let (launches, instructions, launch_id) =
            (self.launches, self.instructions, self.launch_id);
        let next_handle = self.next_handle;
        *self = Driver::new();
        self.initialized = initialized;
        self.context_generation = generation;
        self.launches = launches;
        self.instructions = instructions;
        self.launch_id = launch_id;
        self.next_handle = next_handle;
    }
}

static DRIVER: Mutex<Option<Driver>> = Mutex::new(None);

thread_local! {
    /// The context current on this thread (0: none).
    pub static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// This thread's capture mode (cuThreadExchangeStreamCaptureMode): 0 global, 1
    /// thread-local, 2 relaxed.
    pub static CAPTURE_MODE: Cell<u32> = const { Cell::new(0) };
}

fn lock() -> MutexGuard<'static, Option<Driver>> {
    DRIVER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the driver state under the lock.
pub fn with<R>(f: impl FnOnce(&mut Driver) -> R) -> R {
    let mut g = lock();
    f(g.get_or_insert_with(Driver::new))
}

/// The body of an API function: runs `f` under the lock, catching panics (a bug of the
/// emulator becomes CUDA_ERROR_UNKNOWN, not an abort), and prints any error.
pub fn api(name: &str, f: impl FnOnce(&mut Driver) -> Result<()>) -> CuResult {
    let r = catch_unwind(AssertUnwindSafe(|| with(f)));
    match r {
        Ok(Ok(())) => SUCCESS,
        Ok(Err(e)) => {
            if e.code != NOT_READY {
                eprintln!("cuda-emu: {name}: {e}");
            }
            e.code
        }
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("?");
            eprintln!("cuda-emu: {name}: internal error of the emulator: {msg}");
            999
        }
    }
}

/// Writes through an output pointer of the API, or fails with INVALID_VALUE if it is null.
///
/// # Safety
/// `p` is null or valid for a write of `T`.
pub unsafe fn put<T>(p: *mut T, v: T) -> Result<()> {
    if p.is_null() {
        return Err(Error::new(INVALID_VALUE, "a null output pointer"));
    }
    // SAFETY: non-null, and valid for writes by the caller's contract (the C API's).
    unsafe { p.write(v) };
    Ok(())
}

/// Emulator statistics (tests): kernel launches and instructions interpreted so far.
///
/// # Safety
/// Both pointers are null or valid for writes.
#[no_mangle]
pub unsafe extern "C" fn cuda_emu_stats(launches: *mut u64, instructions: *mut u64) -> CuResult {
    api("cuda_emu_stats", |d| {
        // SAFETY: the caller's contract.
        unsafe {
            put(launches, d.launches)?;
            put(instructions, d.instructions)
        }
    })
}

/// Defines driver entry points that are not emulated: each prints its name and returns
/// CUDA_ERROR_NOT_SUPPORTED (the arguments, whatever they are, are ignored: the C calling
/// convention lets a function without parameters be called with any).
#[macro_export]
macro_rules! not_emulated {
    ($($name:ident),* $(,)?) => {
        $(
            #[no_mangle]
            pub extern "C" fn $name() -> $crate::error::CuResult {
                eprintln!(concat!("cuda-emu: not emulated: ", stringify!($name)));
                $crate::error::NOT_SUPPORTED
            }
        )*
    };
}
