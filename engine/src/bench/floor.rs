//! Memory-traffic floors: the bytes an operation must move at least — every operand read
//! once, every result written once, each switching key read once (limbs of Q_l ∪ P only),
//! intermediates kept on chip, twiddle and constant tables not counted — and the time that
//! takes at a measured bandwidth. A measured time over its floor says how far an operation
//! is from being limited by memory alone.

/// Bytes per RNS word.
const WORD: f64 = 8.0;

/// A ring at one level: what the floors of the single operations depend on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shape {
    pub n: usize,
    /// Ciphertext primes at the level.
    pub limbs: usize,
    /// Special primes (P).
    pub special: usize,
    /// Primes per key-switching digit.
    pub alpha: usize,
}

impl Shape {
    /// Bytes of one polynomial of `limbs` limbs.
    pub fn poly(&self, limbs: usize) -> f64 {
        (limbs * self.n) as f64 * WORD
    }

    /// Bytes of a ciphertext (two polynomials) at the level.
    pub fn ciphertext(&self) -> f64 {
        2.0 * self.poly(self.limbs)
    }

    /// Bytes of one switching key as a key switch at this level reads it: two polynomials
    /// over Q_l ∪ P per digit.
    pub fn key(&self) -> f64 {
        let digits = self.limbs.div_ceil(self.alpha.max(1));
        2.0 * digits as f64 * self.poly(self.limbs + self.special)
    }

    /// A forward or inverse NTT of `limbs` limbs in place: each read and written once.
    pub fn ntt(&self, limbs: usize) -> f64 {
        2.0 * self.poly(limbs)
    }

    /// Ciphertext × plaintext: both read, a ciphertext written.
    pub fn ct_pt_mul(&self) -> f64 {
        2.0 * self.ciphertext() + self.poly(self.limbs)
    }

    /// Ciphertext × ciphertext with relinearisation: two ciphertexts and the key read, one
    /// ciphertext written.
    pub fn ct_ct_mul_relin(&self) -> f64 {
        3.0 * self.ciphertext() + self.key()
    }

    /// Rescale: a ciphertext read, one with a limb less written.
    pub fn rescale(&self) -> f64 {
        self.ciphertext() + 2.0 * self.poly(self.limbs.saturating_sub(1))
    }

    /// Key switch of one polynomial: it and the key read, two polynomials written.
    pub fn key_switch(&self) -> f64 {
        self.poly(self.limbs) + self.key() + self.ciphertext()
    }

    /// `k` rotations of one ciphertext (k = 1: a plain rotation; hoisted for k > 1): the
    /// input and k keys read, k ciphertexts written.
    pub fn rotations(&self, k: usize) -> f64 {
        self.ciphertext() + k as f64 * (self.key() + self.ciphertext())
    }
}

/// One LoRA apply (x·A·B, see `helora::linear::lora`): what its floor depends on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraTraffic {
    pub n: usize,
    /// The inputs' level (their limbs: level + 1); the reply comes out two levels lower.
    pub level: usize,
    pub special: usize,
    pub alpha: usize,
    pub input_chunks: usize,
    pub output_chunks: usize,
    pub rank_padded: usize,
    /// Rotation keys the plan uses (steps 1 … r'−1 and the fold steps).
    pub rotation_keys: usize,
}

impl LoraTraffic {
    fn shape(&self, level: usize) -> Shape {
        Shape {
            n: self.n,
            limbs: level + 1,
            special: self.special,
            alpha: self.alpha,
        }
    }

    /// Bytes of one apply's inputs and replies, which a batch cannot share.
    pub fn per_token(&self) -> f64 {
        let input = self.input_chunks as f64 * self.shape(self.level).ciphertext();
        let reply = self.output_chunks as f64 * self.shape(self.level - 2).ciphertext();
        input + reply
    }

    /// Bytes of what every apply reads and a batch could share: the diagonal plaintexts
    /// (over Q_l ∪ P) and each rotation key once, at the inputs' level (the widest use).
    pub fn shared(&self) -> f64 {
        let top = self.shape(self.level);
        let step1 =
            (self.input_chunks * self.rank_padded) as f64 * top.poly(self.level + 1 + self.special);
        let step2 =
            (self.output_chunks * self.rank_padded) as f64 * top.poly(self.level + self.special);
        step1 + step2 + self.rotation_keys as f64 * top.key()
    }

    /// One apply on its own: everything read once.
    pub fn single(&self) -> f64 {
        self.per_token() + self.shared()
    }

    /// Per apply in a batch of `batch`, the shared operands read once for the batch.
    pub fn batched(&self, batch: usize) -> f64 {
        self.per_token() + self.shared() / batch.max(1) as f64
    }
}

/// Microseconds to move `bytes` at `bytes_per_s`.
pub fn floor_us(bytes: f64, bytes_per_s: f64) -> f64 {
    if bytes_per_s > 0.0 {
        bytes / bytes_per_s * 1e6
    } else {
        f64::NAN
    }
}

/// Measured time over its floor (≥ 1 when the bandwidth was measured right).
pub fn ratio(measured_us: f64, floor_us: f64) -> f64 {
    if floor_us > 0.0 {
        measured_us / floor_us
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N16: Shape = Shape {
        n: 65536,
        limbs: 25,
        special: 9,
        alpha: 9,
    };

    #[test]
    fn key_switch_at_n16_is_dominated_by_the_key() {
        // 3 digits × 2 polynomials × 34 limbs × 2^16 × 8 bytes.
        assert_eq!(N16.key(), (3 * 2 * 34 * 65536 * 8) as f64);
        assert_eq!(N16.key_switch(), N16.key() + (3 * 25 * 65536 * 8) as f64);
        assert!((floor_us(1e9, 1e12) - 1000.0).abs() < 1e-9);
        assert!((ratio(150.0, 100.0) - 1.5).abs() < 1e-12);
        assert!(floor_us(1.0, 0.0).is_nan());
    }

    #[test]
    fn hoisting_reads_the_input_once() {
        let one = N16.rotations(1);
        assert_eq!(N16.rotations(8) - one, 7.0 * (N16.key() + N16.ciphertext()));
        assert_eq!(
            N16.rescale(),
            (2 * 25 * 65536 * 8 + 2 * 24 * 65536 * 8) as f64
        );
    }

    #[test]
    fn lora_batch_shares_plaintexts_and_keys() {
        let t = LoraTraffic {
            n: 8192,
            level: 2,
            special: 1,
            alpha: 1,
            input_chunks: 1,
            output_chunks: 1,
            rank_padded: 8,
            rotation_keys: 7 + 9,
        };
        let word = 8192.0 * 8.0;
        assert_eq!(t.per_token(), 2.0 * 3.0 * word + 2.0 * word);
        assert_eq!(t.single(), t.per_token() + t.shared());
        assert!(t.batched(64) < t.single());
        assert_eq!(t.batched(1), t.single());
    }
}
