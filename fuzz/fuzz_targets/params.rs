//! A parameter set: decoded, re-derived and checked against its stored primes and id.
#![no_main]

use helora::ckks::Params;
use helora_fuzz::{params, seeds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        params();
        seeds::write_if_asked("params");
    },
    |data: &[u8]| {
        if let Ok(decoded) = Params::from_bytes(data) {
            assert!(
                decoded.to_bytes() == data,
                "parameter set decoded, but encodes to other bytes"
            );
        }
    }
);
