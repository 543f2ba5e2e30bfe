//! Key registration as the server takes it: the same bytes as an evaluation key set and as
//! a public key (the server decodes both halves of the upload).
#![no_main]

use helora::ckks::{EvaluationKeys, PublicKey, Serializable};
use helora_fuzz::{assert_round_trip, params, seeds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        params();
        seeds::write_if_asked("evaluation_keys");
    },
    |data: &[u8]| {
        if let Ok(keys) = EvaluationKeys::from_bytes(params(), data) {
            assert_round_trip(&keys, data, "evaluation keys");
        }
        if let Ok(pk) = PublicKey::from_bytes(params(), data) {
            assert_round_trip(&pk, data, "public key");
            // The server encrypts with the key: what decodes must be well formed.
            if let Err(e) = pk.check_well_formed(params()) {
                panic!("public key decoded but is not well formed: {e}");
            }
        }
    }
);
