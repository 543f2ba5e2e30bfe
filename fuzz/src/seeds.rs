//! Seed inputs: one well-formed object of each kind a target decodes, so that the fuzzer
//! starts past the header checks and with inputs as large as real ones (a polynomial of
//! N = 2^13 is tens of kilobytes; libFuzzer's default inputs are at most 4 KiB).
//!
//! A target calls [`write_if_asked`] from its `init` block: when `HELORA_FUZZ_SEEDS` names a
//! folder (scripts/fuzz.sh sets it to the target's corpus), the seeds missing there are
//! written before libFuzzer reads the folder. Nothing is committed.

use crate::params;
use crate::proto;
use helora::ckks::{
    rotation_element, CompactCiphertext, Encoder, EvaluationKeys, KeyGenerator, Serializable,
    SymmetricEncryptor,
};
use prost::Message;
use std::path::Path;

/// The variable that names the folder to write seeds into.
pub const VAR: &str = "HELORA_FUZZ_SEEDS";

/// Writes `target`'s seeds into the folder `HELORA_FUZZ_SEEDS` names, if set; a seed file
/// already there is kept. Panics (so the run stops at once) if they cannot be made.
pub fn write_if_asked(target: &str) {
    let Some(dir) = std::env::var_os(VAR) else {
        return;
    };
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir).expect("create the seed folder");
    for (name, bytes) in seeds(target) {
        let path = dir.join(format!("seed-{name}"));
        if !path.exists() {
            std::fs::write(&path, bytes).expect("write a seed");
        }
    }
}

/// The named seeds of one target (none for an unknown name).
pub fn seeds(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    match target {
        "seeded_ciphertext" => vec![("level0", seeded(0)), ("level2", seeded(2))],
        "compact_ciphertext" => vec![("w20-30", compact(20, 30)), ("w12-12", compact(12, 12))],
        "evaluation_keys" => {
            let mut keygen = keygen();
            let p = params();
            let encode = |keys: &EvaluationKeys| keys.to_bytes(p).expect("encode keys");
            let empty = EvaluationKeys {
                params_id: p.id(),
                a_seed: keygen.key_seed(),
                ..Default::default()
            };
            let relin = EvaluationKeys {
                params_id: p.id(),
                a_seed: keygen.key_seed(),
                relin: Some(keygen.relinearization_key()),
                ..Default::default()
            };
            let mut galois = empty.clone();
            let g = rotation_element(1, p.n());
            galois
                .galois
                .insert(g, keygen.galois_key(g).expect("Galois key"));
            let pk = keygen
                .public_key()
                .to_bytes(p)
                .expect("encode the public key");
            vec![
                ("empty-keys", encode(&empty)),
                ("relin-key", encode(&relin)),
                ("galois-key", encode(&galois)),
                ("public-key", pk),
            ]
        }
        "params" => vec![("n13", params().to_bytes())],
        "site_request" => {
            let request = proto::SiteRequest {
                session: vec![0x5a; 16],
                seq: 1,
                adapter: String::new(),
                fingerprint: vec![0xa5; 32],
                layer: 0,
                modules: vec!["q_proj".into(), "v_proj".into()],
                tokens: vec![proto::TokenInput {
                    inputs: vec![seeded(0), seeded(2)],
                }],
            };
            vec![("request", request.encode_to_vec())]
        }
        "site_reply" => {
            let reply = proto::SiteReply {
                seq: 1,
                tokens: vec![proto::TokenOutput {
                    modules: vec![proto::ModuleOutput {
                        outputs: vec![compact(20, 30)],
                    }],
                }],
                server_micros: 1234,
            };
            vec![("reply", reply.encode_to_vec())]
        }
        "key_chunk" => {
            let first = proto::KeyChunk {
                header: Some(proto::KeyHeader {
                    eval_keys_len: 1 << 24,
                    public_key_len: 1 << 18,
                    fingerprint: vec![0x11; 32],
                    adapter: "demo".into(),
                }),
                data: vec![0x22; 1024],
            };
            let next = proto::KeyChunk {
                header: None,
                data: vec![0x33; 4096],
            };
            vec![
                ("first", first.encode_to_vec()),
                ("next", next.encode_to_vec()),
            ]
        }
        "manifest_reply" => {
            let reply = proto::ManifestReply {
                adapter: "demo".into(),
                params_id: params().id(),
                rotation_steps: vec![1, 2, 4, -1],
                projections: vec![proto::Projection {
                    layer: 3,
                    module: "q_proj".into(),
                    d_in: 896,
                    d_out: 896,
                    rank_padded: 8,
                    level: 2,
                    bound_log2: -3,
                }],
                noise: 0.01,
                flooding: true,
                budget: 1000,
                queries_left: 999,
            };
            vec![("reply", reply.encode_to_vec())]
        }
        _ => Vec::new(),
    }
}

/// A fixed key (the seeds are the same on every run, up to the encryption noise).
fn keygen() -> KeyGenerator {
    KeyGenerator::from_seed(params(), [7; 32])
}

/// A seeded encryption at `level`, encoded.
fn seeded(level: usize) -> Vec<u8> {
    let p = params();
    let keygen = keygen();
    let values: Vec<f64> = (0..p.slots()).map(|i| (i % 17) as f64 / 17.0).collect();
    let pt = Encoder::new(p.n())
        .expect("encoder")
        .encode_at(p, &values, level, p.default_scale())
        .expect("encode");
    SymmetricEncryptor::new(p, keygen.secret_key())
        .expect("encryptor")
        .encrypt_seeded(&pt)
        .expect("encrypt")
        .to_bytes(p)
        .expect("encode the ciphertext")
}

/// A compact reply with the given widths and arbitrary in-range coefficients, encoded.
fn compact(c0_bits: u32, c1_bits: u32) -> Vec<u8> {
    let p = params();
    let fill = |bits: u32, mul: u64| -> Vec<u64> {
        (0..p.n() as u64)
            .map(|i| i.wrapping_mul(mul) & ((1 << bits) - 1))
            .collect()
    };
    CompactCiphertext {
        c0_bits,
        c1_bits,
        c0: fill(c0_bits, 0x9e37_79b9_7f4a_7c15),
        c1: fill(c1_bits, 0xc2b2_ae3d_27d4_eb4f),
        scale: p.default_scale() * 2f64.powi(c1_bits as i32) / p.q_primes()[0] as f64,
    }
    .to_bytes(p)
    .expect("encode the compact ciphertext")
}
