//! A GetManifest reply as the client takes it.
#![no_main]

use helora_fuzz::proto::ManifestReply;
use helora_fuzz::seeds;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        seeds::write_if_asked("manifest_reply");
    },
    |data: &[u8]| {
        let _ = ManifestReply::decode(data);
    }
);
