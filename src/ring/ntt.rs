//! Negacyclic number-theoretic transform over one prime, Harvey's lazy butterflies.
//!
//! Forward output order: `out[i] = a(ψ^(2·bitrev(i)+1))` where ψ is the table's primitive
//! 2N-th root; every automorphism and backend relies on this order.
//!
//! `forward`/`inverse` run a kernel picked once per table from the process's [`SimdTier`], fastest
//! first: `"avx512-ifma"` (q < 2^50), `"avx512"` (AVX-512F/DQ), `"avx2"`, else `"scalar"`, the
//! portable reference `forward_scalar`/`inverse_scalar`. All kernels compute the same butterflies
//! with the same twiddles and fully reduce at the end, so their outputs are bit-identical.
//!
//! Measured on AMD Zen 5 (one core), N = 2^16, forward / inverse: scalar ≈ 800 / 610 µs,
//! avx2 ≈ 365 / 340 µs (so it does pay off where AVX-512 is missing), avx512 ≈ 98 / 103 µs,
//! avx512-ifma (q < 2^50) ≈ 55 / 57 µs.

use super::simd::SimdTier;
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
    /// Implementation behind `forward`/`inverse`, chosen at construction.
    kernel: Kernel,
}

/// A vectorised kernel with its own twiddle layout, or the scalar reference.
#[derive(Clone, Debug)]
enum Kernel {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx512(Box<super::simd::ntt_avx512::Avx512Ntt>),
    #[cfg(target_arch = "x86_64")]
    Avx2(Box<super::simd::ntt_avx2::Avx2Ntt>),
}

/// Kernel names, fastest first.
const NTT_KERNELS: [&str; 4] = ["avx512-ifma", "avx512", "avx2", "scalar"];

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
        let psi_inv = modulus.inv(psi).ok_or(MathError::NoRootOfUnity {
            q: modulus.value(),
            order: 2 * n as u64,
        })?;
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
        let n_inv = modulus.inv(n as u64).ok_or(MathError::NoRootOfUnity {
            q: modulus.value(),
            order: 2 * n as u64,
        })?;
        let mut table = Self {
            kernel: Kernel::Scalar,
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
        };
        // The fastest kernel of the process's SIMD tier that fits (q, N).
        let tier = SimdTier::best();
        table.kernel = NTT_KERNELS
            .iter()
            .filter(|name| tier.allows(name))
            .find_map(|name| table.build_kernel(name))
            .unwrap_or(Kernel::Scalar);
        Ok(table)
    }

    /// Tables for kernel `name`, or `None` if unknown or unsupported on this CPU for (q, N).
    fn build_kernel(&self, name: &str) -> Option<Kernel> {
        #[cfg(target_arch = "x86_64")]
        {
            use super::simd::ntt_avx512::{Avx512Ntt, Flavor};
            let args = (
                &self.modulus,
                &self.psi_rev[..],
                &self.psi_inv_rev[..],
                self.n_inv,
            );
            let avx512 = |flavor| Avx512Ntt::new(args.0, args.1, args.2, args.3, flavor);
            match name {
                "avx512-ifma" => return avx512(Flavor::Ifma).map(|k| Kernel::Avx512(Box::new(k))),
                "avx512" => return avx512(Flavor::Wide).map(|k| Kernel::Avx512(Box::new(k))),
                "avx2" => {
                    let k = super::simd::ntt_avx2::Avx2Ntt::new(args.0, args.1, args.2, args.3)?;
                    return Some(Kernel::Avx2(Box::new(k)));
                }
                _ => {}
            }
        }
        (name == "scalar").then_some(Kernel::Scalar)
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

    /// Which kernel `forward`/`inverse` use: `"avx512-ifma"`, `"avx512"`, `"avx2"` or `"scalar"`.
    pub fn kernel(&self) -> &'static str {
        match &self.kernel {
            Kernel::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(k) => match k.flavor() {
                super::simd::ntt_avx512::Flavor::Ifma => "avx512-ifma",
                super::simd::ntt_avx512::Flavor::Wide => "avx512",
            },
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => "avx2",
        }
    }

    /// Kernels this CPU can run for this table's (q, N), fastest first (always ends with
    /// `"scalar"`). For tests and benchmarks.
    pub fn available_kernels(&self) -> Vec<&'static str> {
        NTT_KERNELS
            .into_iter()
            .filter(|name| self.build_kernel(name).is_some())
            .collect()
    }

    /// Switches to kernel `name` (one of [`Self::available_kernels`]); returns false and keeps
    /// the current kernel if it is unknown or unsupported here. For tests and benchmarks.
    pub fn set_kernel(&mut self, name: &str) -> bool {
        match self.build_kernel(name) {
            Some(k) => {
                self.kernel = k;
                true
            }
            None => false,
        }
    }

    /// In-place forward transform; input and output in `[0, q)`.
    pub fn forward(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length must equal N");
        match &self.kernel {
            Kernel::Scalar => self.forward_scalar(a),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(k) => k.forward(a),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(k) => k.forward(a),
        }
    }

    /// In-place inverse transform (including the 1/N factor); input and output in `[0, q)`.
    pub fn inverse(&self, a: &mut [u64]) {
        assert_eq!(a.len(), self.n, "NTT input length must equal N");
        match &self.kernel {
            Kernel::Scalar => self.inverse_scalar(a),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(k) => k.inverse(a),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(k) => k.inverse(a),
        }
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
    #[allow(clippy::type_complexity)] // a plain tuple keeps this existing API unchanged
    pub fn twiddles(&self) -> (&[u64], &[u64], &[u64], &[u64], u64, u64) {
        (
            &self.psi_rev,
            &self.psi_rev_shoup,
            &self.psi_inv_rev,
            &self.psi_inv_rev_shoup,
            self.n_inv,
            self.n_inv_shoup,
        )
    }
}
