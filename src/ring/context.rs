//! The ring Z[X]/(X^N + 1) with its RNS primes (ciphertext primes Q, special primes P) and
//! per-prime NTT tables. Built once per parameter set and shared.

use super::{Basis, NttTable, RingError};
use crate::math::Modulus;

#[derive(Debug)]
pub struct RingContext {
    n: usize,
    log_n: u32,
    q: Vec<Modulus>,
    p: Vec<Modulus>,
    /// One table per prime: Q first, then P.
    ntt: Vec<NttTable>,
}

/// Smallest and largest supported ring degree.
pub const MIN_LOG_N: u32 = 10;
pub const MAX_LOG_N: u32 = 17;

impl RingContext {
    pub fn new(n: usize, q_primes: &[u64], p_primes: &[u64]) -> Result<Self, RingError> {
        if !n.is_power_of_two() || !(MIN_LOG_N..=MAX_LOG_N).contains(&n.trailing_zeros()) {
            return Err(RingError::Degree(n));
        }
        if q_primes.is_empty() {
            return Err(RingError::NoPrimes);
        }
        let mut all: Vec<u64> = q_primes.iter().chain(p_primes).copied().collect();
        all.sort_unstable();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return Err(RingError::DuplicatePrime);
        }
        let make = |ps: &[u64]| -> Result<Vec<Modulus>, RingError> {
            ps.iter()
                .map(|&v| {
                    if !crate::math::is_prime(v) || v % (2 * n as u64) != 1 {
                        return Err(RingError::NotNttPrime { prime: v, n });
                    }
                    Ok(Modulus::new(v)?)
                })
                .collect()
        };
        let q = make(q_primes)?;
        let p = make(p_primes)?;
        let ntt = q
            .iter()
            .chain(&p)
            .map(|&m| NttTable::new(m, n))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            n,
            log_n: n.trailing_zeros(),
            q,
            p,
            ntt,
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// Ciphertext primes q_0 … q_L.
    pub fn q(&self) -> &[Modulus] {
        &self.q
    }

    /// Special primes p_0 … p_{k-1}.
    pub fn p(&self) -> &[Modulus] {
        &self.p
    }

    /// Index of the top ciphertext level (L).
    pub fn max_level(&self) -> usize {
        self.q.len() - 1
    }

    /// The full basis Q_L ∪ P.
    pub fn full_basis(&self) -> Basis {
        Basis::new(self.q.len(), self.p.len())
    }

    /// Index of limb `limb` of `basis` among all primes (Q then P).
    #[inline]
    pub fn prime_index(&self, basis: Basis, limb: usize) -> usize {
        if basis.is_special(limb) {
            self.q.len() + limb - basis.q
        } else {
            limb
        }
    }

    #[inline]
    pub fn modulus(&self, basis: Basis, limb: usize) -> &Modulus {
        if basis.is_special(limb) {
            &self.p[limb - basis.q]
        } else {
            &self.q[limb]
        }
    }

    #[inline]
    pub fn ntt_table(&self, basis: Basis, limb: usize) -> &NttTable {
        &self.ntt[self.prime_index(basis, limb)]
    }

    /// The moduli of `basis`, limb order.
    pub fn moduli(&self, basis: Basis) -> impl Iterator<Item = &Modulus> + '_ {
        self.q[..basis.q].iter().chain(&self.p[..basis.p])
    }

    /// Whether `basis` fits inside this context.
    pub fn contains(&self, basis: Basis) -> bool {
        basis.q >= 1 && basis.q <= self.q.len() && basis.p <= self.p.len()
    }
}
