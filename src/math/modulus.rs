//! Arithmetic modulo a word-sized prime: Barrett reduction for general products
//! and Shoup (Harvey) multiplication by precomputed constants for hot loops.

use super::MathError;

/// Largest supported modulus width: keeps lazy values in `[0, 4q)` below 2^64.
pub const MAX_MODULUS_BITS: u32 = 62;

/// A modulus `q < 2^62` with its Barrett constant `floor(2^128 / q)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    value: u64,
    /// floor(2^128 / q) as (high, low) 64-bit words.
    barrett_hi: u64,
    barrett_lo: u64,
}

impl Modulus {
    pub fn new(value: u64) -> Result<Self, MathError> {
        if value < 2 || value >> MAX_MODULUS_BITS != 0 {
            return Err(MathError::ModulusOutOfRange(value));
        }
        // floor((2^128 - 1) / q) equals floor(2^128 / q) unless q divides 2^128 (q = 2^k); the
        // quotient estimate below tolerates that off-by-one anyway.
        let r = u128::MAX / value as u128;
        Ok(Self {
            value,
            barrett_hi: (r >> 64) as u64,
            barrett_lo: r as u64,
        })
    }

    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.value
    }

    pub fn bits(&self) -> u32 {
        64 - self.value.leading_zeros()
    }

    /// `a mod q` for any u64.
    #[inline(always)]
    pub fn reduce(&self, a: u64) -> u64 {
        // q < 2^62 so one Barrett step on a 64-bit input suffices.
        let quot = ((a as u128 * self.barrett_hi as u128) >> 64) as u64;
        let r = a.wrapping_sub(quot.wrapping_mul(self.value));
        if r >= self.value {
            r - self.value
        } else {
            r
        }
    }

    /// `a mod q` for a 128-bit input (Barrett with floor(2^128/q)).
    #[inline(always)]
    pub fn reduce_u128(&self, a: u128) -> u64 {
        let a_lo = a as u64;
        let a_hi = (a >> 64) as u64;
        // quotient estimate = floor(a * r / 2^128), keeping the three partial products that matter.
        let lo_hi = a_lo as u128 * self.barrett_hi as u128;
        let lo_lo_carry = (a_lo as u128 * self.barrett_lo as u128) >> 64;
        let hi_lo = a_hi as u128 * self.barrett_lo as u128;
        let mid = lo_hi + lo_lo_carry + (hi_lo & u64::MAX as u128);
        let quot = (a_hi as u128 * self.barrett_hi as u128) + (hi_lo >> 64) + (mid >> 64);
        let r = (a_lo).wrapping_sub((quot as u64).wrapping_mul(self.value));
        // The estimate is at most 2 short.
        let mut r = r;
        while r >= self.value {
            r -= self.value;
        }
        r
    }

    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.value {
            s - self.value
        } else {
            s
        }
    }

    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b {
            a - b
        } else {
            a + self.value - b
        }
    }

    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 {
            0
        } else {
            self.value - a
        }
    }

    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// `a * b + c mod q`.
    #[inline(always)]
    pub fn mul_add(&self, a: u64, b: u64, c: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128 + c as u128)
    }

    pub fn pow(&self, mut base: u64, mut exp: u64) -> u64 {
        base = self.reduce(base);
        let mut acc = 1 % self.value;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            exp >>= 1;
        }
        acc
    }

    /// Inverse of `a` modulo q, if it exists (extended Euclid; q need not be prime).
    pub fn inv(&self, a: u64) -> Option<u64> {
        let (mut t, mut new_t) = (0i128, 1i128);
        let (mut r, mut new_r) = (self.value as i128, self.reduce(a) as i128);
        while new_r != 0 {
            let quot = r / new_r;
            (t, new_t) = (new_t, t - quot * new_t);
            (r, new_r) = (new_r, r - quot * new_r);
        }
        if r != 1 {
            return None;
        }
        Some(t.rem_euclid(self.value as i128) as u64)
    }

    /// Shoup constant of `w` (< q): floor(w * 2^64 / q).
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.value as u128) as u64
    }

    /// `a * w mod q` in `[0, 2q)` for any u64 `a`, given `w_shoup = shoup(w)`.
    #[inline(always)]
    pub fn mul_shoup_lazy(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let quot = ((a as u128 * w_shoup as u128) >> 64) as u64;
        a.wrapping_mul(w)
            .wrapping_sub(quot.wrapping_mul(self.value))
    }

    /// `a * w mod q` in `[0, q)`, given `w_shoup = shoup(w)`.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let r = self.mul_shoup_lazy(a, w, w_shoup);
        if r >= self.value {
            r - self.value
        } else {
            r
        }
    }

    /// Map a signed integer into `[0, q)`.
    #[inline(always)]
    pub fn from_i64(&self, a: i64) -> u64 {
        if a >= 0 {
            self.reduce(a as u64)
        } else {
            self.neg(self.reduce(a.unsigned_abs()))
        }
    }

    /// Map a signed 128-bit integer into `[0, q)`.
    #[inline(always)]
    pub fn from_i128(&self, a: i128) -> u64 {
        let r = self.reduce_u128(a.unsigned_abs());
        if a < 0 {
            self.neg(r)
        } else {
            r
        }
    }

    /// Centered representative in `(-q/2, q/2]`.
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.value / 2 {
            a as i64 - self.value as i64
        } else {
            a as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 41-, 61- and 62-bit primes (checked by `primes_are_prime`).
    const PRIMES: [u64; 3] = [1_099_511_922_689, (1 << 61) - 1, 4_611_686_018_326_724_609];

    #[test]
    fn primes_are_prime() {
        assert!(PRIMES.iter().all(|&p| crate::math::is_prime(p)));
    }

    proptest! {
        #[test]
        fn barrett_matches_u128(a: u64, b: u64, hi: u64, k in 0usize..3) {
            let m = Modulus::new(PRIMES[k]).unwrap();
            let q = m.value() as u128;
            prop_assert_eq!(m.reduce(a) as u128, a as u128 % q);
            prop_assert_eq!(m.mul(a % m.value(), b % m.value()) as u128, (a as u128 % q) * (b as u128 % q) % q);
            let wide = ((hi as u128) << 64) | a as u128;
            prop_assert_eq!(m.reduce_u128(wide) as u128, wide % q);
        }

        #[test]
        fn shoup_matches_u128(a: u64, w: u64, k in 0usize..3) {
            let m = Modulus::new(PRIMES[k]).unwrap();
            let w = w % m.value();
            let lazy = m.mul_shoup_lazy(a, w, m.shoup(w));
            prop_assert!(lazy < 2 * m.value());
            prop_assert_eq!(lazy as u128 % m.value() as u128, a as u128 * w as u128 % m.value() as u128);
        }

        #[test]
        fn inverse_is_inverse(a in 1u64.., k in 0usize..3) {
            let m = Modulus::new(PRIMES[k]).unwrap();
            let a = m.reduce(a);
            prop_assume!(a != 0);
            let inv = m.inv(a).unwrap();
            prop_assert_eq!(m.mul(a, inv), 1);
        }
    }

    #[test]
    fn rejects_out_of_range() {
        assert!(Modulus::new(0).is_err());
        assert!(Modulus::new(1).is_err());
        assert!(Modulus::new(1 << 62).is_err());
        assert!(Modulus::new((1 << 62) - 1).is_ok());
    }
}
