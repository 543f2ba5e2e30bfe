//! RNS polynomials: limb-major contiguous `u64` storage, one limb per prime.

/// Which primes a polynomial's limbs are over: the first `q` ciphertext primes
/// (q_0 … q_{q-1}), followed by the first `p` special primes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Basis {
    pub q: usize,
    pub p: usize,
}

impl Basis {
    /// Ciphertext primes only, q_0 … q_level.
    pub const fn level(level: usize) -> Self {
        Self { q: level + 1, p: 0 }
    }

    pub const fn new(q: usize, p: usize) -> Self {
        Self { q, p }
    }

    /// Number of limbs.
    pub const fn len(&self) -> usize {
        self.q + self.p
    }

    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether limb `i` of this basis is a special prime.
    pub const fn is_special(&self, i: usize) -> bool {
        i >= self.q
    }
}

/// A polynomial of Z[X]/(X^N + 1) in RNS form: `data[limb * n + coeff]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RnsPoly {
    n: usize,
    basis: Basis,
    /// Whether the limbs hold NTT evaluations rather than coefficients.
    pub ntt_form: bool,
    data: Vec<u64>,
}

impl RnsPoly {
    pub fn zero(n: usize, basis: Basis, ntt_form: bool) -> Self {
        Self {
            n,
            basis,
            ntt_form,
            data: vec![0; n * basis.len()],
        }
    }

    /// Wraps limb-major data; `None` if the length does not match.
    pub fn from_data(n: usize, basis: Basis, ntt_form: bool, data: Vec<u64>) -> Option<Self> {
        (data.len() == n * basis.len()).then_some(Self {
            n,
            basis,
            ntt_form,
            data,
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn basis(&self) -> Basis {
        self.basis
    }

    pub fn limb_count(&self) -> usize {
        self.basis.len()
    }

    pub fn limb(&self, i: usize) -> &[u64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        &mut self.data[i * self.n..(i + 1) * self.n]
    }

    pub fn limbs(&self) -> std::slice::ChunksExact<'_, u64> {
        self.data.chunks_exact(self.n)
    }

    pub fn limbs_mut(&mut self) -> std::slice::ChunksExactMut<'_, u64> {
        self.data.chunks_exact_mut(self.n)
    }

    pub fn data(&self) -> &[u64] {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Keeps the first `q` ciphertext limbs and drops every special limb (a level drop
    /// when `p` is already 0). Valid in both domains: limbs are independent.
    pub fn truncate_q(&mut self, q: usize) {
        assert!(q <= self.basis.q, "cannot grow a basis by truncation");
        self.data.truncate(q * self.n);
        self.basis = Basis::new(q, 0);
    }

    /// Copy of the limbs of `basis`, taken from `self` whose basis contains it
    /// (same ciphertext prefix, same or more special primes).
    pub fn restricted(&self, basis: Basis) -> Self {
        assert!(
            basis.q <= self.basis.q && basis.p <= self.basis.p,
            "basis is not a sub-basis"
        );
        let mut data = Vec::with_capacity(self.n * basis.len());
        data.extend_from_slice(&self.data[..basis.q * self.n]);
        let p_start = self.basis.q * self.n;
        data.extend_from_slice(&self.data[p_start..p_start + basis.p * self.n]);
        Self {
            n: self.n,
            basis,
            ntt_form: self.ntt_form,
            data,
        }
    }
}
