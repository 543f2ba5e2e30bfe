//! Memory across the boundary. Inputs are the caller's, borrowed for the call (a pointer
//! and a length, both checked). Byte outputs are `helora_buffer`s that helora allocates
//! and the caller frees with [`helora_buffer_free`]; like handles, their allocations are
//! registered, so a double free or a foreign pointer is an error, not a corruption.
//! Float outputs go to the caller's own arrays.

use crate::error::{
    guard, helora_status, Error, Result, HELORA_INVALID_ARGUMENT, HELORA_INVALID_HANDLE,
    HELORA_WRONG_SIZE,
};
use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::sync::{LazyLock, Mutex};

/// Bytes that helora allocated for the caller: `len` bytes at `data` (NULL when `len` is
/// 0). Free them with `helora_buffer_free`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct helora_buffer {
    pub data: *mut u8,
    pub len: usize,
}

static BUFFERS: LazyLock<Mutex<HashMap<usize, Box<[u8]>>>> = LazyLock::new(Default::default);

fn buffers() -> std::sync::MutexGuard<'static, HashMap<usize, Box<[u8]>>> {
    BUFFERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many buffers are live.
pub(crate) fn live_count() -> usize {
    buffers().len()
}

/// A checked out-pointer for a buffer.
pub(crate) struct OutBuffer(*mut helora_buffer);

/// Checks an out-pointer for a buffer and empties it, so a failed call leaves nothing to
/// free there.
pub(crate) fn out(out: *mut helora_buffer, what: &str) -> Result<OutBuffer> {
    if out.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL, and by the API's contract a writable helora_buffer.
    unsafe {
        out.write(helora_buffer {
            data: std::ptr::null_mut(),
            len: 0,
        })
    };
    Ok(OutBuffer(out))
}

impl OutBuffer {
    /// Hands `bytes` to the caller.
    pub fn set(self, bytes: Vec<u8>) {
        let mut bytes = bytes.into_boxed_slice();
        let len = bytes.len();
        let data = if len == 0 {
            std::ptr::null_mut()
        } else {
            let data = bytes.as_mut_ptr();
            buffers().insert(data as usize, bytes);
            data
        };
        // SAFETY: checked non-NULL in `out`.
        unsafe { self.0.write(helora_buffer { data, len }) };
    }
}

/// Frees a buffer that helora filled, and empties it (`data` NULL, `len` 0). NULL, or an
/// empty buffer, is a no-op; a buffer freed already is `HELORA_INVALID_HANDLE`.
///
/// # Safety
/// `buffer` is NULL or points to a readable and writable `helora_buffer`.
#[no_mangle]
pub unsafe extern "C" fn helora_buffer_free(buffer: *mut helora_buffer) -> helora_status {
    guard(|| {
        if buffer.is_null() {
            return Ok(());
        }
        // SAFETY: non-NULL, and by the contract above a readable helora_buffer.
        let helora_buffer { data, len } = unsafe { buffer.read() };
        if data.is_null() {
            return Ok(());
        }
        let mut buffers = buffers();
        match buffers.get(&(data as usize)) {
            Some(bytes) if bytes.len() == len => {
                buffers.remove(&(data as usize));
            }
            Some(bytes) => {
                return Err(Error::new(
                    HELORA_WRONG_SIZE,
                    format!("the buffer's len is {len}, helora gave it {}", bytes.len()),
                ))
            }
            None => {
                return Err(Error::new(
                    HELORA_INVALID_HANDLE,
                    "the buffer is not live (freed already, or not filled by helora)",
                ))
            }
        }
        // SAFETY: as above, writable.
        unsafe {
            buffer.write(helora_buffer {
                data: std::ptr::null_mut(),
                len: 0,
            })
        };
        Ok(())
    })
}

/// The caller's `len` values at `data`, borrowed for the call. NULL is allowed for 0 values.
///
/// # Safety
/// `data` is NULL or points to `len` readable, initialised values of `T` that live through
/// the call.
pub(crate) unsafe fn slice<'a, T>(data: *const T, len: usize, what: &str) -> Result<&'a [T]> {
    if data.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Error::null(what))
        };
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Error::new(
            HELORA_WRONG_SIZE,
            format!("{what}: {len} values is too many"),
        ));
    }
    if !data.is_aligned() {
        return Err(Error::new(
            HELORA_INVALID_ARGUMENT,
            format!("{what} is not aligned for its type"),
        ));
    }
    // SAFETY: non-NULL, aligned, length in range; readable per the contract above.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// The caller's `len` values at `data`, to write, borrowed for the call.
///
/// # Safety
/// `data` is NULL or points to `len` writable values of `T` that live through the call.
pub(crate) unsafe fn slice_mut<'a, T>(data: *mut T, len: usize, what: &str) -> Result<&'a mut [T]> {
    // SAFETY: the same checks as `slice`; writable per the contract above.
    let checked = unsafe { slice(data, len, what)? };
    if checked.is_empty() {
        return Ok(&mut []);
    }
    // SAFETY: checked by `slice`, and writable per the contract above.
    Ok(unsafe { std::slice::from_raw_parts_mut(data, len) })
}

/// A client's key upload as the caller passes it (`helora_client_key_upload`'s buffers):
/// its evaluation keys and its public key.
///
/// # Safety
/// As [`slice`], for both.
pub(crate) unsafe fn key_set<'a>(
    eval_keys: *const u8,
    eval_keys_len: usize,
    public_key: *const u8,
    public_key_len: usize,
) -> Result<(&'a [u8], &'a [u8])> {
    // SAFETY: per this function's contract.
    unsafe {
        Ok((
            slice(eval_keys, eval_keys_len, "eval_keys")?,
            slice(public_key, public_key_len, "public_key")?,
        ))
    }
}

/// Writes one value to a caller's out-pointer.
///
/// # Safety
/// `out` is NULL or points to a writable `T`.
pub(crate) unsafe fn write<T>(out: *mut T, value: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL, writable per the contract above.
    unsafe { out.write(value) };
    Ok(())
}

/// The caller's NUL-terminated UTF-8 text.
///
/// # Safety
/// `text` is NULL or a NUL-terminated string that lives through the call.
pub(crate) unsafe fn text<'a>(text: *const c_char, what: &str) -> Result<&'a str> {
    if text.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract above.
    unsafe { CStr::from_ptr(text) }
        .to_str()
        .map_err(|_| Error::new(HELORA_INVALID_ARGUMENT, format!("{what} is not UTF-8")))
}

/// The caller's optional text: NULL or "" is none.
///
/// # Safety
/// As [`text`].
pub(crate) unsafe fn optional_text<'a>(text: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: as this function's contract.
    let text = unsafe { self::text(text, what)? };
    Ok((!text.is_empty()).then_some(text))
}

/// The caller's array of `len` NUL-terminated texts.
///
/// # Safety
/// `texts` is NULL or points to `len` pointers, each as in [`text`].
pub(crate) unsafe fn texts<'a>(
    texts: *const *const c_char,
    len: usize,
    what: &str,
) -> Result<Vec<&'a str>> {
    // SAFETY: per this function's contract.
    let pointers = unsafe { slice(texts, len, what)? };
    pointers
        .iter()
        .enumerate()
        // SAFETY: each is NULL or NUL-terminated per the contract.
        .map(|(k, &p)| unsafe { text(p, &format!("{what}[{k}]")) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_is_freed_once() {
        let mut buffer = helora_buffer {
            data: std::ptr::null_mut(),
            len: 0,
        };
        let target = out(&mut buffer, "buffer").map_err(|e| e.message).unwrap();
        target.set(vec![1, 2, 3]);
        let copy = helora_buffer {
            data: buffer.data,
            len: buffer.len,
        };
        // SAFETY: a live helora_buffer on the stack.
        assert_eq!(
            unsafe { helora_buffer_free(&mut buffer) },
            crate::error::HELORA_OK
        );
        assert!(buffer.data.is_null());
        let mut again = copy;
        // SAFETY: as above; its allocation is gone, which the registry knows.
        assert_eq!(
            unsafe { helora_buffer_free(&mut again) },
            HELORA_INVALID_HANDLE
        );
    }
}
