//! Modules from PTX text: parsed (every instruction decoded: an unknown one fails the load,
//! not a launch) and checked against the driver stood in for: `.version` at most PTX ISA 9.0
//! (driver 580, CUDA 13.0) and `.target` at most sm_90, compared as numbers.

use super::{api, put, Driver, MAX_PTX_VERSION, SM};
use crate::error::*;
use crate::ptx::{self, ir::Kernel};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;

pub struct LoadedModule {
    pub kernels: HashMap<String, Arc<Kernel>>,
}

pub struct Function {
    pub module: u64,
    pub kernel: Arc<Kernel>,
    /// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES (48 KiB unless raised).
    pub max_dynamic_shared: usize,
}

pub const DEFAULT_SHARED: usize = 48 * 1024;
pub const OPTIN_SHARED: usize = 227 * 1024;

/// Parses and checks PTX text as the driver's JIT would accept it.
pub fn load_ptx(text: &str) -> Result<ptx::ir::Module> {
    let m = ptx::parse::parse(text)
        .map_err(|e| Error::new(INVALID_PTX, format!("cannot run this PTX: {e}")))?;
    if m.version > MAX_PTX_VERSION {
        return Err(Error::new(
            UNSUPPORTED_PTX_VERSION,
            format!(
                "PTX .version {}.{} is newer than the {}.{} of driver 580 (CUDA 13.0)",
                m.version.0, m.version.1, MAX_PTX_VERSION.0, MAX_PTX_VERSION.1
            ),
        ));
    }
    let arch_specific = m.target.ends_with('a') || m.target.ends_with('f');
    if m.sm > SM || (arch_specific && m.sm != SM) {
        return Err(Error::new(
            INVALID_PTX,
            format!("PTX .target {} cannot run on an sm_{SM} device", m.target),
        ));
    }
    Ok(m)
}

fn load(d: &mut Driver, out: *mut *mut c_void, image: *const c_void) -> Result<()> {
    d.ready()?;
    if image.is_null() {
        return Err(Error::new(INVALID_VALUE, "a null image"));
    }
    // SAFETY: the image is a NUL-terminated PTX text or an ELF image (the caller's contract):
    // either way its first byte is readable, and tells the two apart.
    let head = unsafe { std::slice::from_raw_parts(image.cast::<u8>(), 1) };
    if head[0] == 0x7f {
        return Err(Error::new(
            NOT_SUPPORTED,
            "not emulated: cubin/fatbin images (the emulator runs PTX text)",
        ));
    }
    // SAFETY: as above: PTX text is NUL-terminated.
    let text = unsafe { CStr::from_ptr(image.cast::<c_char>()) };
    let text = text
        .to_str()
        .map_err(|_| Error::new(INVALID_PTX, "PTX text that is not UTF-8"))?;
    let m = load_ptx(text)?;
    let h = d.handle();
    d.modules.insert(h, LoadedModule { kernels: m.kernels });
    // SAFETY: the caller's contract.
    unsafe { put(out, h as *mut c_void) }
}

/// # Safety
/// `out` is null or valid for a write; `image` a NUL-terminated PTX text.
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadData(out: *mut *mut c_void, image: *const c_void) -> CuResult {
    api("cuModuleLoadData", |d| load(d, out, image))
}

/// # Safety
/// As cuModuleLoadData; JIT options are not emulated (none may be given).
#[no_mangle]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    out: *mut *mut c_void,
    image: *const c_void,
    n_options: u32,
    _options: *mut c_int,
    _values: *mut *mut c_void,
) -> CuResult {
    api("cuModuleLoadDataEx", |d| {
        if n_options != 0 {
            return Err(Error::new(NOT_SUPPORTED, "not emulated: JIT options"));
        }
        load(d, out, image)
    })
}

#[no_mangle]
pub extern "C" fn cuModuleUnload(m: *mut c_void) -> CuResult {
    api("cuModuleUnload", |d| {
        d.initialized_and_sane()?;
        let h = m as u64;
        d.modules
            .remove(&h)
            .ok_or_else(|| Error::new(INVALID_HANDLE, format!("{h:#x} is not a module")))?;
        d.functions.retain(|_, f| f.module != h);
        Ok(())
    })
}

/// # Safety
/// `out` is null or valid for a write; `name` a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn cuModuleGetFunction(
    out: *mut *mut c_void,
    m: *mut c_void,
    name: *const c_char,
) -> CuResult {
    api("cuModuleGetFunction", |d| {
        d.ready()?;
        if name.is_null() {
            return Err(Error::new(INVALID_VALUE, "a null name"));
        }
        // SAFETY: NUL-terminated (the caller's contract).
        let name = unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned();
        let module = m as u64;
        let kernel = d
            .modules
            .get(&module)
            .ok_or_else(|| Error::new(INVALID_HANDLE, format!("{module:#x} is not a module")))?
            .kernels
            .get(&name)
            .cloned()
            .ok_or_else(|| Error::new(NOT_FOUND, format!("no kernel {name} in the module")))?;
        let h = d.handle();
        d.functions.insert(
            h,
            Function {
                module,
                kernel,
                max_dynamic_shared: DEFAULT_SHARED,
            },
        );
        // SAFETY: the caller's contract.
        unsafe { put(out, h as *mut c_void) }
    })
}

/// # Safety
/// `out` is null or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn cuFuncGetAttribute(
    out: *mut c_int,
    attrib: c_int,
    f: *mut c_void,
) -> CuResult {
    api("cuFuncGetAttribute", |d| {
        d.ready()?;
        let func = d
            .functions
            .get(&(f as u64))
            .ok_or_else(|| Error::new(INVALID_HANDLE, "not a function"))?;
        let k = &func.kernel;
        let v = match attrib {
            0 => k.max_threads.unwrap_or(1024) as c_int, // MAX_THREADS_PER_BLOCK
            1 => k.static_shared as c_int,               // SHARED_SIZE_BYTES
            3 => k.param_bytes as c_int,                 // (const bytes: the parameters)
            8 => func.max_dynamic_shared as c_int,       // MAX_DYNAMIC_SHARED_SIZE_BYTES
            _ => {
                return Err(Error::new(
                    NOT_SUPPORTED,
                    format!("not emulated: cuFuncGetAttribute of attribute {attrib}"),
                ))
            }
        };
        // SAFETY: the caller's contract.
        unsafe { put(out, v) }
    })
}

#[no_mangle]
pub extern "C" fn cuFuncSetAttribute(f: *mut c_void, attrib: c_int, value: c_int) -> CuResult {
    api("cuFuncSetAttribute", |d| {
        d.ready()?;
        let func = d
            .functions
            .get_mut(&(f as u64))
            .ok_or_else(|| Error::new(INVALID_HANDLE, "not a function"))?;
        match attrib {
            8 => {
                let v = usize::try_from(value)
                    .map_err(|_| Error::new(INVALID_VALUE, "a negative size"))?;
                if v + func.kernel.static_shared > OPTIN_SHARED {
                    return Err(Error::new(
                        INVALID_VALUE,
                        format!("{v} bytes of dynamic shared memory exceed sm_90's {OPTIN_SHARED}"),
                    ));
                }
                func.max_dynamic_shared = v;
                Ok(())
            }
            _ => Err(Error::new(
                NOT_SUPPORTED,
                format!("not emulated: cuFuncSetAttribute of attribute {attrib}"),
            )),
        }
    })
}
