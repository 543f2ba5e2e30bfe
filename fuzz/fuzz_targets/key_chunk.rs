//! A RegisterKeys chunk as the server takes it (the reassembled keys are the
//! evaluation_keys target's).
#![no_main]

use helora_fuzz::proto::KeyChunk;
use helora_fuzz::seeds;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(
    init: {
        seeds::write_if_asked("key_chunk");
    },
    |data: &[u8]| {
        let _ = KeyChunk::decode(data);
    }
);
