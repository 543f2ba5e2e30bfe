//! A server's reply as the client takes it: decode a compact ciphertext.
#![no_main]

use helora::ckks::{CompactCiphertext, Serializable};
use helora_fuzz::{assert_round_trip, params, seeds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        params();
        seeds::write_if_asked("compact_ciphertext");
    },
    |data: &[u8]| {
        if let Ok(ct) = CompactCiphertext::from_bytes(params(), data) {
            assert_round_trip(&ct, data, "compact ciphertext");
        }
    }
);
