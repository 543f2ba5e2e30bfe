//! Compiles the remote protocol (proto/helora/v1) into Rust messages, as engine/build.rs
//! does but without the tonic services: the fuzz targets decode the messages only.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "../proto/helora/v1/helora.proto";
    println!("cargo:rerun-if-changed={proto}");
    println!("cargo:rerun-if-changed=build.rs");
    let descriptors = protox::compile([proto], ["../proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
