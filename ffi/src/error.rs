//! The error model: every function returns a status code; a failing call leaves a message
//! in a thread-local slot ([`helora_last_error`]); a panic is caught at the boundary and
//! becomes [`HELORA_PANIC`].

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A function's outcome: `HELORA_OK` (0) or one of the `HELORA_…` error codes.
#[allow(non_camel_case_types)]
pub type helora_status = i32;

/// Success.
pub const HELORA_OK: helora_status = 0;
/// A pointer argument that must not be NULL was NULL.
pub const HELORA_NULL_POINTER: helora_status = 1;
/// A handle that is not live: freed already, never made by helora, or of another kind.
pub const HELORA_INVALID_HANDLE: helora_status = 2;
/// An argument's value is refused: text that is not UTF-8, an unknown layer or module.
pub const HELORA_INVALID_ARGUMENT: helora_status = 3;
/// A length does not match what the call needs (an input's d_in, an output's size).
pub const HELORA_WRONG_SIZE: helora_status = 4;
/// Bytes that are not a valid message: a manifest, request, reply or key set that does
/// not parse or does not fit (a garbage or wrapped reply, projections the server does not
/// hold).
pub const HELORA_BAD_MESSAGE: helora_status = 5;
/// The server refused a well-formed request: an unregistered client, a spent budget.
pub const HELORA_REFUSED: helora_status = 6;
/// Reading or writing a file failed.
pub const HELORA_IO: helora_status = 7;
/// Reaching a remote server failed, or it answered with an error.
pub const HELORA_NETWORK: helora_status = 8;
/// A bug inside helora (a panic), caught at the boundary.
pub const HELORA_PANIC: helora_status = 9;
/// Any other failure; the message says what.
pub const HELORA_FAILED: helora_status = 10;

/// A failed call: its code and its message.
#[derive(Debug)]
pub(crate) struct Error {
    pub status: helora_status,
    pub message: String,
}

impl Error {
    pub fn new(status: helora_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn null(what: &str) -> Self {
        Self::new(HELORA_NULL_POINTER, format!("{what} is NULL"))
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// Gives an engine error its status code (and its whole chain of causes as the message).
pub(crate) trait WithStatus<T> {
    fn status(self, status: helora_status) -> Result<T>;
}

impl<T> WithStatus<T> for anyhow::Result<T> {
    fn status(self, status: helora_status) -> Result<T> {
        self.map_err(|e| Error::new(status, format!("{e:#}")))
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message never holds NUL, except from a caller's text echoed in it: cut it there.
    let text = message.split('\0').next().unwrap_or_default();
    let text = CString::new(text).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// Runs the body of an exported function: clears the last error, turns an error into its
/// code and message, and catches a panic so that it never unwinds into the caller.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> helora_status {
    set_last_error("");
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => HELORA_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_string());
            set_last_error(&format!("internal error (a panic in helora): {what}"));
            HELORA_PANIC
        }
    }
}

/// The message of the last failed call on this thread, or "" after a successful one.
/// The text belongs to helora and stays valid until the next helora call on this thread.
#[no_mangle]
pub extern "C" fn helora_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// A status code's name ("HELORA_OK", "HELORA_NULL_POINTER", …; "HELORA_UNKNOWN" for a
/// code helora does not define). Static text: never freed.
#[no_mangle]
pub extern "C" fn helora_status_name(status: helora_status) -> *const c_char {
    let name: &'static [u8] = match status {
        HELORA_OK => b"HELORA_OK\0",
        HELORA_NULL_POINTER => b"HELORA_NULL_POINTER\0",
        HELORA_INVALID_HANDLE => b"HELORA_INVALID_HANDLE\0",
        HELORA_INVALID_ARGUMENT => b"HELORA_INVALID_ARGUMENT\0",
        HELORA_WRONG_SIZE => b"HELORA_WRONG_SIZE\0",
        HELORA_BAD_MESSAGE => b"HELORA_BAD_MESSAGE\0",
        HELORA_REFUSED => b"HELORA_REFUSED\0",
        HELORA_IO => b"HELORA_IO\0",
        HELORA_NETWORK => b"HELORA_NETWORK\0",
        HELORA_PANIC => b"HELORA_PANIC\0",
        HELORA_FAILED => b"HELORA_FAILED\0",
        _ => b"HELORA_UNKNOWN\0",
    };
    name.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last() -> String {
        // SAFETY: helora_last_error returns a live NUL-terminated string of this thread.
        unsafe { CStr::from_ptr(helora_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        assert_eq!(guard(|| panic!("boom")), HELORA_PANIC);
        assert!(last().contains("boom"), "{}", last());
        assert_eq!(guard(|| Ok(())), HELORA_OK);
        assert_eq!(last(), "");
    }

    #[test]
    fn an_error_keeps_its_code_and_message_without_nul() {
        let status = guard(|| Err(Error::new(HELORA_WRONG_SIZE, "x has 3\0 values")));
        assert_eq!(status, HELORA_WRONG_SIZE);
        assert_eq!(last(), "x has 3");
    }
}
