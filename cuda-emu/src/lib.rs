//! helora cuda-emu: a stand-in `libcuda.so.1` that runs helora's CUDA backend on the CPU.
//!
//! Loaded through `LD_LIBRARY_PATH` in place of the NVIDIA driver (cudarc opens
//! `libcuda.so` at run time), it implements the driver API calls the backend makes
//! (driver/), executes the PTX the backend loads with an interpreter (ptx/) on emulated
//! device memory (device/), and checks what hardware would not report: out-of-bounds and
//! misaligned accesses, uses after free, reads of uninitialised memory, races between
//! threads and blocks, divergent barriers, launch limits, the PTX version and target.
//! Every other driver entry point exists and fails with "not emulated: cuXxx".
//!
//! The device it reports is named "helora cuda-emu (not a GPU)"; its timings are host times
//! of the emulation and must never be reported as GPU timings. docs/cuda.md says what it
//! verifies and what only hardware can.
// The C API: names as the driver's; pointer arguments are the caller's contract, stated on
// each function.
#![allow(non_snake_case, clippy::missing_safety_doc)]

pub mod device;
pub mod driver;
pub mod error;
pub mod ptx;
