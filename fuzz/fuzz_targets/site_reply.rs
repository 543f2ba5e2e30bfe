//! A Session reply as the client takes it: the protobuf message, then every output as a
//! compact ciphertext.
#![no_main]

use helora::ckks::{CompactCiphertext, Serializable};
use helora_fuzz::proto::SiteReply;
use helora_fuzz::{params, seeds};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        params();
        seeds::write_if_asked("site_reply");
    },
    |data: &[u8]| {
        let Ok(reply) = SiteReply::decode(data) else {
            return;
        };
        let outputs = reply.tokens.iter().flat_map(|t| &t.modules).flat_map(|m| &m.outputs);
        for output in outputs {
            let _ = CompactCiphertext::from_bytes(params(), output);
        }
    }
);
