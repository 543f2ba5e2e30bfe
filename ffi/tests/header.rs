//! include/helora.h is what cbindgen makes of the sources now: a header that lags behind
//! the library fails here (and so in CI). `HELORA_BLESS=1 cargo test -p helora-ffi --test
//! header` writes the fresh one.

use std::path::Path;

#[test]
fn the_committed_header_is_freshly_generated() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml reads");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let path = crate_dir.join("include").join("helora.h");
    if std::env::var_os("HELORA_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("writes the header");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "{} differs from a fresh cbindgen run: regenerate it with \
         HELORA_BLESS=1 cargo test -p helora-ffi --test header, and commit it",
        path.display()
    );
}
