//! What the fuzz targets share: the server's parameter set (built once), the remote
//! protocol's messages, the round-trip oracle, and the seed inputs scripts/fuzz.sh asks for.

use helora::ckks::{ParamSpec, Params, Serializable};
use std::sync::OnceLock;

/// The protocol's messages (proto/helora/v1/helora.proto, compiled by build.rs).
#[allow(clippy::all)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/helora.v1.rs"));
}

pub mod seeds;

/// N = 2^13, depth 2: the parameter set `helora serve` uses.
pub fn params() -> &'static Params {
    static PARAMS: OnceLock<Params> = OnceLock::new();
    PARAMS.get_or_init(|| {
        Params::new(ParamSpec::n13_depth2()).expect("the N = 2^13 parameter set is valid")
    })
}

/// The format promises one encoding per object (residues reduced, padding zero, no
/// trailing bytes, Galois elements in order): whatever decodes must encode back to exactly
/// the input.
pub fn assert_round_trip<T: Serializable>(value: &T, bytes: &[u8], what: &str) {
    match value.to_bytes(params()) {
        Ok(again) => assert!(
            again == bytes,
            "{what}: decoded, but encodes to {} other bytes (input {} bytes)",
            again.len(),
            bytes.len()
        ),
        Err(e) => panic!("{what}: decoded, but does not encode again: {e}"),
    }
}
