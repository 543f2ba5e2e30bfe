//! Opaque handles. A handle is the address of a value that helora keeps in a registry of
//! live handles; every call looks the address up before it touches anything, so a freed
//! handle, a double free or a handle of the wrong kind is an error
//! ([`HELORA_INVALID_HANDLE`]), never a read of freed memory. (An address reused by a new
//! handle of the same kind cannot be told apart: freeing is still the caller's duty.)
//!
//! The registry holds each value behind an `Arc`: a call that is using a handle keeps it
//! alive while another thread frees it, so freeing never races a use.

use crate::error::{Error, Result, HELORA_INVALID_HANDLE};
use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

type Live = HashMap<usize, Arc<dyn Any + Send + Sync>>;

static LIVE: LazyLock<Mutex<Live>> = LazyLock::new(Default::default);

fn live() -> std::sync::MutexGuard<'static, Live> {
    // The map stays consistent under a panic (every update is one insert or remove).
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many handles are live.
pub(crate) fn live_count() -> usize {
    live().len()
}

/// A value behind a handle, and the opaque C type its handles have.
pub(crate) trait Kind: Any + Send + Sync + Sized {
    /// The C type (`helora_client`, …): a name only, never instantiated.
    type Opaque;
    /// What the handle is called in messages.
    const NAME: &'static str;
}

/// Registers `value` and gives its handle.
pub(crate) fn new<T: Kind>(value: T) -> *mut T::Opaque {
    let value = Arc::new(value);
    let address = Arc::as_ptr(&value) as usize;
    live().insert(address, value);
    address as *mut T::Opaque
}

/// The value behind a live handle of kind `T`.
pub(crate) fn get<T: Kind>(handle: *const T::Opaque) -> Result<Arc<T>> {
    if handle.is_null() {
        return Err(Error::null(T::NAME));
    }
    let value = live()
        .get(&(handle as usize))
        .cloned()
        .ok_or_else(|| not_live::<T>())?;
    value.downcast::<T>().map_err(|_| not_live::<T>())
}

/// Unregisters a handle; its value is dropped once no call uses it. NULL is a no-op.
pub(crate) fn free<T: Kind>(handle: *mut T::Opaque) -> Result<()> {
    if handle.is_null() {
        return Ok(());
    }
    let mut live = live();
    match live.get(&(handle as usize)) {
        Some(value) if value.is::<T>() => {
            live.remove(&(handle as usize));
            Ok(())
        }
        _ => Err(not_live::<T>()),
    }
}

fn not_live<T: Kind>() -> Error {
    Error::new(
        HELORA_INVALID_HANDLE,
        format!(
            "the {} handle is not live (freed already, or not a {} handle)",
            T::NAME,
            T::NAME
        ),
    )
}

/// Writes a new handle to a caller's out-pointer (checked non-NULL before any work).
pub(crate) fn out<H>(out: *mut *mut H, what: &str) -> Result<OutHandle<H>> {
    if out.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: `out` is non-NULL and, by the API's contract, points to a writable pointer;
    // NULL first, so a failed call leaves no stale handle there.
    unsafe { out.write(std::ptr::null_mut()) };
    Ok(OutHandle(out))
}

/// A checked out-pointer for a handle.
pub(crate) struct OutHandle<H>(*mut *mut H);

impl<H> OutHandle<H> {
    pub fn set(self, handle: *mut H) {
        // SAFETY: checked non-NULL in `out`.
        unsafe { self.0.write(handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Apple;
    struct Pear;
    impl Kind for Apple {
        type Opaque = u8;
        const NAME: &'static str = "apple";
    }
    impl Kind for Pear {
        type Opaque = u8;
        const NAME: &'static str = "pear";
    }

    #[test]
    fn freed_and_foreign_handles_are_refused() {
        let apple = new(Apple);
        assert!(get::<Apple>(apple).is_ok());
        let wrong = get::<Pear>(apple).err().map(|e| e.status);
        assert_eq!(wrong, Some(HELORA_INVALID_HANDLE));
        assert_eq!(
            free::<Pear>(apple).err().map(|e| e.status),
            Some(HELORA_INVALID_HANDLE)
        );
        assert!(free::<Apple>(apple).is_ok());
        assert_eq!(
            get::<Apple>(apple).err().map(|e| e.status),
            Some(HELORA_INVALID_HANDLE)
        );
        assert_eq!(
            free::<Apple>(apple).err().map(|e| e.status),
            Some(HELORA_INVALID_HANDLE)
        );
        assert!(free::<Apple>(std::ptr::null_mut()).is_ok());
    }
}
