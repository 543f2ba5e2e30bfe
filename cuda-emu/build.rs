//! The stand-in driver carries the real driver's soname, so that a program linked against
//! libcuda.so.1 (and cudarc's run-time loading) takes it from LD_LIBRARY_PATH.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libcuda.so.1");
}
