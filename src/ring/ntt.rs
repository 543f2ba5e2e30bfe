//! Negacyclic number-theoretic transform over one prime, Harvey's lazy butterflies.
//!
//! Forward output order: `out[i] = a(ψ^(2·bitrev(i)+1))` where ψ is the table's primitive
//! 2N-th root; every automorphism and backend relies on this order.
//!
//! `forward`/`inverse` run a vectorised kernel picked once per table from the CPU's features
//! (AVX-512 IFMA for q < 2^50, AVX-512F/DQ otherwise) and fall back to the scalar reference
//! `forward_scalar`/`inverse_scalar`; all paths return identical, fully reduced results.

use crate::math::{primitive_root_of_unity, MathError, Modulus};

/// Precomputed twiddles for one (N, q).
#[derive(Clone, Debug)]
pub struct NttTable {
    modulus: Modulus,
    n: usize,
    log_n: u32,
    psi: u64,
    /// ψ^bitrev(i), i < N, with Shoup constants.
    psi_rev: Vec<u64>,
    psi_rev_shoup: Vec<u64>,
    /// ψ^-(bitrev(i)), i < N, with Shoup constants (inverse transform order).
    psi_inv_rev: Vec<u64>,
    psi_inv_rev_shoup: Vec<u64>,
    n_inv: u64,
    n_inv_shoup: u64,
    /// Vectorised kernel for this CPU and modulus, chosen at construction.
    #[cfg(target_arch = "x86_64")]
    avx512: Option<super::ntt_avx512::Avx512Ntt>,
}

pub(crate) fn bit_reverse(x: usize, bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        x.reverse_bits() >> (usize::BITS - bits)
    }
}

impl NttTable {
    pub fn new(modulus: Modulus, n: usize) -> Result<Self, MathError> {
        let log_n = n.trailing_zeros();
        let psi = primitive_root_of_unity(&modulus, 2 * n as u64)?;
        let psi_inv = modulus.inv(psi).ok_or(MathError::NoRootOfUnity { q: modulus.value(), order: 2 * n as u64 })?;
        let mut psi_rev = vec![0; n];
        let mut psi_inv_rev = vec![0; n];
        let (mut pw, mut ipw) = (1u64, 1u64);
        for i in 0..n {
            let r = bit_reverse(i, log_n);
            psi_rev[r] = pw;
            psi_inv_rev[r] = ipw;
            pw = modulus.mul(pw, psi);
            ipw = modulus.mul(ipw, psi_inv);
        }
        let shoup = |v: &Vec<u64>| v.iter().map(|&w| modulus.shoup(w)).collect::<Vec<_>>();
        let n_inv = modulus.inv(n as u64).ok_or(MathError::NoRootOfUnity { q: modulus.value(), order: 2 * n as u64 })?;
        #[cfg(target_arch = "x86_64")]
        let avx512 = super::ntt_avx512::Avx512Ntt::new(&modulus, &psi_rev, &psi_inv_rev, n_inv);
        Ok(Self {
            #[cfg(target_arch = "x86_64")]
            avx512,
            modulus,
            n,
            log_n,
            psi,
            psi_rev_shoup: shoup(&psi_rev),
            psi_rev,
            psi_inv_rev_shoup: shoup(&psi_inv_rev),
            psi_inv_rev,
            n_inv,
            n_inv_shoup: modulus.shoup(n_inv),
        })
    }

    pub fn modulus(&self) -> &Modulus {
        &self.modulus
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// The primitive 2N-th root ψ this table evaluates at.
    pub fn psi(&self) -> u64 {
        self.psi
    }

    /// Which implementation `forward`/`inverse` use on this machine: `"avx512-ifma"`,
    /// `"avx512"` or `"scalar"`.
    pub fn kernel(&self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = &self.avx512 {
            return match k.flavor() {
                super::ntt_avx512::Flavor::Ifma => "avx512-ifma",
                super::ntt_avx512::Flavor::Wide => "avx512",
            };
        }
        "scalar"
    }

    /// In-place forward transform; input and output in `[0, q)`.
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length must equal N");
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = &self.avx512 {
            return k.forward(a);
        }
        self.forward_scalar(a);
    }

    /// In-place inverse transform (including the 1/N factor); input and output in `[0, q)`.
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length must equal N");
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = &self.avx512 {
            return k.inverse(a);
        }
        self.inverse_scalar(a);
    }

    /// Portable Cooley–Tukey forward transform, values kept lazily in `[0, 4q)`.
    pub fn forward_scalar(&self, a: &mut [u64]) {
        let q = self.modulus.value();
        let two_q = 2 * q;
        let n = self.n;
        let mut t = n;
        let mut m = 1;
        while m < n {
            t >>= 1;
            for i in 0..m {
                let w = self.psi_rev[m + i];
                let ws = self.psi_rev_shoup[m + i];
                let (lo, hi) = a[2 * i * t..2 * (i + 1) * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let mut u = *x;
                    if u >= two_q {
                        u -= two_q;
                    }
                    let v = self.modulus.mul_shoup_lazy(*y, w, ws);
                    *x = u + v;
                    *y = u + two_q - v;
                }
            }
            m <<= 1;
        }
        for x in a.iter_mut() {
            let mut v = *x;
            if v >= two_q {
                v -= two_q;
            }
            if v >= q {
                v -= q;
            }
            *x = v;
        }
    }

    /// Portable Gentleman–Sande inverse transform, values kept lazily in `[0, 2q)`.
    pub fn inverse_scalar(&self, a: &mut [u64]) {
        let q = self.modulus.value();
        let two_q = 2 * q;
        let n = self.n;
        let mut t = 1;
        let mut m = n >> 1;
        while m >= 1 {
            for i in 0..m {
                let w = self.psi_inv_rev[m + i];
                let ws = self.psi_inv_rev_shoup[m + i];
                let (lo, hi) = a[2 * i * t..2 * (i + 1) * t].split_at_mut(t);
                for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                    let (u, v) = (*x, *y);
                    let mut s = u + v;
                    if s >= two_q {
                        s -= two_q;
                    }
                    *x = s;
                    *y = self.modulus.mul_shoup_lazy(u + two_q - v, w, ws);
                }
            }
            t <<= 1;
            m >>= 1;
        }
        for x in a.iter_mut() {
            *x = self.modulus.mul_shoup(*x, self.n_inv, self.n_inv_shoup);
        }
    }

    pub fn log_n(&self) -> u32 {
        self.log_n
    }

    /// Twiddle tables for SIMD and device implementations:
    /// (ψ^bitrev, Shoup, ψ^-bitrev, Shoup, N^-1, Shoup).
    pub fn twiddles(&self) -> (&[u64], &[u64], &[u64], &[u64], u64, u64) {
        (&self.psi_rev, &self.psi_rev_shoup, &self.psi_inv_rev, &self.psi_inv_rev_shoup, self.n_inv, self.n_inv_shoup)
    }
}
