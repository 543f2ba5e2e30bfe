//! The driver's result codes (`CUresult`, values from cuda.h of CUDA 13.0) and the
//! emulator's error type: a code and a message, which the API layer prints to stderr before
//! returning the code, so that every failure says what went wrong.

use std::fmt;

/// `CUresult`.
pub type CuResult = u32;

pub const SUCCESS: CuResult = 0;
pub const INVALID_VALUE: CuResult = 1;
pub const OUT_OF_MEMORY: CuResult = 2;
pub const NOT_INITIALIZED: CuResult = 3;
pub const INVALID_DEVICE: CuResult = 101;
pub const INVALID_CONTEXT: CuResult = 201;
pub const INVALID_PTX: CuResult = 218;
pub const UNSUPPORTED_PTX_VERSION: CuResult = 222;
pub const INVALID_HANDLE: CuResult = 400;
pub const NOT_FOUND: CuResult = 500;
pub const NOT_READY: CuResult = 600;
pub const ILLEGAL_ADDRESS: CuResult = 700;
pub const LAUNCH_OUT_OF_RESOURCES: CuResult = 701;
pub const MISALIGNED_ADDRESS: CuResult = 716;
pub const LAUNCH_FAILED: CuResult = 719;
pub const NOT_SUPPORTED: CuResult = 801;
pub const STREAM_CAPTURE_UNSUPPORTED: CuResult = 900;
pub const STREAM_CAPTURE_INVALIDATED: CuResult = 901;
pub const STREAM_CAPTURE_UNMATCHED: CuResult = 903;
pub const STREAM_CAPTURE_WRONG_THREAD: CuResult = 908;

/// Whether an error is a fault of a kernel, which (as on hardware) leaves the context
/// unusable: every later call returns it.
pub fn is_sticky(code: CuResult) -> bool {
    matches!(
        code,
        ILLEGAL_ADDRESS | MISALIGNED_ADDRESS | LAUNCH_FAILED | LAUNCH_OUT_OF_RESOURCES
    )
}

/// `cuGetErrorName`'s answer.
pub fn name(code: CuResult) -> Option<&'static std::ffi::CStr> {
    Some(match code {
        SUCCESS => c"CUDA_SUCCESS",
        INVALID_VALUE => c"CUDA_ERROR_INVALID_VALUE",
        OUT_OF_MEMORY => c"CUDA_ERROR_OUT_OF_MEMORY",
        NOT_INITIALIZED => c"CUDA_ERROR_NOT_INITIALIZED",
        INVALID_DEVICE => c"CUDA_ERROR_INVALID_DEVICE",
        INVALID_CONTEXT => c"CUDA_ERROR_INVALID_CONTEXT",
        INVALID_PTX => c"CUDA_ERROR_INVALID_PTX",
        UNSUPPORTED_PTX_VERSION => c"CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        INVALID_HANDLE => c"CUDA_ERROR_INVALID_HANDLE",
        NOT_FOUND => c"CUDA_ERROR_NOT_FOUND",
        NOT_READY => c"CUDA_ERROR_NOT_READY",
        ILLEGAL_ADDRESS => c"CUDA_ERROR_ILLEGAL_ADDRESS",
        LAUNCH_OUT_OF_RESOURCES => c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
        MISALIGNED_ADDRESS => c"CUDA_ERROR_MISALIGNED_ADDRESS",
        LAUNCH_FAILED => c"CUDA_ERROR_LAUNCH_FAILED",
        NOT_SUPPORTED => c"CUDA_ERROR_NOT_SUPPORTED",
        STREAM_CAPTURE_UNSUPPORTED => c"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
        STREAM_CAPTURE_INVALIDATED => c"CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
        STREAM_CAPTURE_UNMATCHED => c"CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
        STREAM_CAPTURE_WRONG_THREAD => c"CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
        _ => return None,
    })
}

/// `cuGetErrorString`'s answer.
pub fn description(code: CuResult) -> Option<&'static std::ffi::CStr> {
    Some(match code {
        SUCCESS => c"no error",
        INVALID_VALUE => c"invalid argument",
        OUT_OF_MEMORY => c"out of memory",
        NOT_INITIALIZED => c"initialization error",
        INVALID_DEVICE => c"invalid device ordinal",
        INVALID_CONTEXT => c"invalid device context (cuda-emu: no current context on this thread)",
        INVALID_PTX => c"a PTX JIT compilation failed (cuda-emu: see stderr)",
        UNSUPPORTED_PTX_VERSION => c"the provided PTX was compiled with an unsupported toolchain",
        INVALID_HANDLE => c"invalid resource handle",
        NOT_FOUND => c"named symbol not found",
        NOT_READY => c"device not ready",
        ILLEGAL_ADDRESS => c"an illegal memory access was encountered (cuda-emu: see stderr)",
        LAUNCH_OUT_OF_RESOURCES => c"too many resources requested for launch",
        MISALIGNED_ADDRESS => c"misaligned address (cuda-emu: see stderr)",
        LAUNCH_FAILED => {
            c"unspecified launch failure (cuda-emu: a race or barrier fault, see stderr)"
        }
        NOT_SUPPORTED => c"operation not supported (cuda-emu: not emulated, see stderr)",
        STREAM_CAPTURE_UNSUPPORTED => c"operation not permitted when stream is capturing",
        STREAM_CAPTURE_INVALIDATED => c"operation failed due to a previous error during capture",
        STREAM_CAPTURE_UNMATCHED => c"capture was not initiated in this stream",
        STREAM_CAPTURE_WRONG_THREAD => {
            c"attempt to terminate a thread-local capture sequence from another thread"
        }
        _ => return None,
    })
}

/// An error of the emulated driver: the code the API returns and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: CuResult,
    pub message: String,
}

impl Error {
    pub fn new(code: CuResult, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = name(self.code)
            .and_then(|c| c.to_str().ok())
            .unwrap_or("CUDA_ERROR_UNKNOWN");
        write!(f, "{name}: {}", self.message)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
