//! AES-128 in counter mode as a seedable cryptographic generator: the bulk private
//! randomness (encryption errors, re-randomisation masks, flooding and the PLL's
//! perturbation). A decode token draws tens of megabytes of it; AES with the CPU's AES
//! instructions (chosen at run time by the `aes` crate, constant-time software otherwise)
//! produces them about four times faster than ChaCha12.
//!
//! The 32-byte seed is the key (first half) and the initial counter block (second half,
//! read as a little-endian integer). The `a` half of a seeded ciphertext is this stream
//! too (docs/format.md), which halves the cost of encrypting an upload and of expanding it.

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128, Block};
use rand_core::block::{BlockRng, BlockRngCore, CryptoBlockRng};
use rand_core::{CryptoRng, RngCore, SeedableRng};

/// AES blocks per refill: enough to keep the cipher's pipeline full.
const BLOCKS: usize = 64;
const WORDS: usize = BLOCKS * 4;

/// One refill's output, in 32-bit words (what `BlockRng` hands out).
#[derive(Clone)]
pub struct Output([u32; WORDS]);

impl Default for Output {
    fn default() -> Self {
        Self([0; WORDS])
    }
}

impl AsRef<[u32]> for Output {
    fn as_ref(&self) -> &[u32] {
        &self.0
    }
}

impl AsMut<[u32]> for Output {
    fn as_mut(&mut self) -> &mut [u32] {
        &mut self.0
    }
}

/// The keyed cipher and the next counter block.
#[derive(Clone)]
pub struct AesCtrCore {
    cipher: Aes128,
    counter: u128,
}

impl BlockRngCore for AesCtrCore {
    type Item = u32;
    type Results = Output;

    fn generate(&mut self, results: &mut Output) {
        let mut blocks = [Block::default(); BLOCKS];
        for block in blocks.iter_mut() {
            block.copy_from_slice(&self.counter.to_le_bytes());
            self.counter = self.counter.wrapping_add(1);
        }
        self.cipher.encrypt_blocks(&mut blocks);
        for (words, block) in results.0.chunks_exact_mut(4).zip(&blocks) {
            for (word, bytes) in words.iter_mut().zip(block.chunks_exact(4)) {
                *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
    }
}

impl CryptoBlockRng for AesCtrCore {}

/// AES-128-CTR keystream as a [`RngCore`].
#[derive(Clone)]
pub struct AesCtrRng(BlockRng<AesCtrCore>);

impl SeedableRng for AesCtrRng {
    type Seed = [u8; 32];

    fn from_seed(seed: [u8; 32]) -> Self {
        let (key, counter) = seed.split_at(16);
        let mut start = [0u8; 16];
        start.copy_from_slice(counter);
        Self(BlockRng::new(AesCtrCore {
            cipher: Aes128::new(key.into()),
            counter: u128::from_le_bytes(start),
        }))
    }
}

impl RngCore for AesCtrRng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }

    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill_bytes(dst)
    }
}

impl CryptoRng for AesCtrRng {}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
            .collect()
    }

    /// FIPS-197 appendix C.1: with the counter block equal to the test plaintext, the first
    /// 16 bytes of the stream are the test ciphertext, and the next block is the cipher
    /// of plaintext + 1.
    #[test]
    fn the_stream_is_aes128_of_the_counter() {
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(&hex("000102030405060708090a0b0c0d0e0f"));
        seed[16..].copy_from_slice(&hex("00112233445566778899aabbccddeeff"));
        let mut rng = AesCtrRng::from_seed(seed);
        let mut first = [0u8; 16];
        rng.fill_bytes(&mut first);
        assert_eq!(first.to_vec(), hex("69c4e0d86a7b0430d8cdb78070b4c55a"));

        let cipher = Aes128::new((&seed[..16]).into());
        let next = u128::from_le_bytes(seed[16..].try_into().expect("16 bytes")) + 1;
        let mut block = Block::from(next.to_le_bytes());
        cipher.encrypt_block(&mut block);
        let mut second = [0u8; 16];
        rng.fill_bytes(&mut second);
        assert_eq!(second, <[u8; 16]>::from(block));
    }

    #[test]
    fn words_bytes_and_refills_read_one_stream() {
        let seed = [9u8; 32];
        let mut bytes = vec![0u8; 8 * 3 * WORDS];
        AesCtrRng::from_seed(seed).fill_bytes(&mut bytes);
        let mut rng = AesCtrRng::from_seed(seed);
        for chunk in bytes.chunks_exact(8) {
            let expected = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            assert_eq!(rng.next_u64(), expected);
        }
        let mut other = AesCtrRng::from_seed([10u8; 32]);
        assert_ne!(other.next_u64(), AesCtrRng::from_seed(seed).next_u64());
    }
}
