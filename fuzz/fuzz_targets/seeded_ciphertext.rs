//! A client's input as the server takes it: decode a seeded ciphertext, then expand it.
#![no_main]

use helora::ckks::{expand_seeded, SeededCiphertext, Serializable};
use helora_fuzz::{assert_round_trip, params, seeds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        params();
        seeds::write_if_asked("seeded_ciphertext");
    },
    |data: &[u8]| {
        if let Ok(ct) = SeededCiphertext::from_bytes(params(), data) {
            assert_round_trip(&ct, data, "seeded ciphertext");
            let _ = expand_seeded(params(), &ct);
        }
    }
);
