//! A Session request as the server takes it: the protobuf message, then every input as a
//! seeded ciphertext, expanded.
#![no_main]

use helora::ckks::{expand_seeded, SeededCiphertext, Serializable};
use helora_fuzz::proto::SiteRequest;
use helora_fuzz::{params, seeds};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        params();
        seeds::write_if_asked("site_request");
    },
    |data: &[u8]| {
        let Ok(request) = SiteRequest::decode(data) else {
            return;
        };
        for input in request.tokens.iter().flat_map(|t| &t.inputs) {
            if let Ok(ct) = SeededCiphertext::from_bytes(params(), input) {
                let _ = expand_seeded(params(), &ct);
            }
        }
    }
);
