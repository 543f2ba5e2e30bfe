//! Constants uploaded once per backend: the NTT twiddles of every prime, the moduli and
//! prime indices of every basis, and the constants of rescale, ModUp (every level and digit)
//! and ModDown. Two device arrays hold them all (u64 words and u32 indices); the structs
//! here keep offsets into them.

use super::super::BackendError;
use super::device::driver;
use crate::math::Modulus;
use crate::ring::{BaseConverter, Basis, BasisExtender, RingContext};
use cudarc::driver::{CudaSlice, CudaStream, DevicePtr};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// Offsets of one fast base conversion's constants (see kernels/basis_conversion.cu).
#[derive(Clone, Debug)]
pub(super) struct Conversion {
    pub sources: u32,
    /// The source prime, for the one-source path.
    pub source: u64,
    pub from: usize,
    pub inv_hat: usize,
    pub inv_hat_shoup: usize,
    pub inv_from: usize,
    pub to: usize,
    pub hat: usize,
    pub hat_shoup: usize,
    pub prod: usize,
    pub prod_shoup: usize,
    /// Output row of each target (u32 array).
    pub rows: usize,
    pub targets: u32,
}

/// One ModUp digit at one level.
#[derive(Clone, Debug)]
pub(super) struct Digit {
    pub limbs: Range<usize>,
    pub conversion: Conversion,
}

/// Per-limb constants of a last step (x − y)·w: w and its Shoup constant.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scale {
    pub w: usize,
    pub w_shoup: usize,
}

/// Offsets of one basis: its `RnsModulus` per limb (3 words each) and each limb's prime
/// index (u32), which picks the NTT table.
#[derive(Clone, Copy, Debug)]
pub(super) struct BasisTables {
    pub mods: usize,
    pub primes: usize,
}

pub(super) struct Tables {
    words: CudaSlice<u64>,
    indices: CudaSlice<u32>,
    words_base: u64,
    indices_base: u64,
    pub tw: usize,
    pub tw_shoup: usize,
    pub itw: usize,
    pub itw_shoup: usize,
    /// `RnsModulus` of every prime, Q then P (indexed by NTT table).
    pub prime_mods: usize,
    pub n_inv: usize,
    pub n_inv_shoup: usize,
    pub bases: HashMap<Basis, BasisTables>,
    /// By q (the limb count of the input): (h mod q_i, q_l^-1 mod q_i) for i < q − 1.
    pub rescale: Vec<Option<(usize, Scale)>>,
    /// `[level][digit]`.
    pub digits: Vec<Vec<Digit>>,
    /// P → Q_L (a level uses its first l + 1 targets) and P^-1 mod q_i.
    pub mod_down: Option<(Conversion, Scale)>,
}

#[derive(Default)]
struct Builder {
    words: Vec<u64>,
    indices: Vec<u32>,
}

impl Builder {
    fn words(&mut self, w: impl IntoIterator<Item = u64>) -> usize {
        let at = self.words.len();
        self.words.extend(w);
        at
    }

    fn moduli<'a>(&mut self, m: impl IntoIterator<Item = &'a Modulus>) -> usize {
        let at = self.words.len();
        for m in m {
            // `RnsModulus` in kernels/modarith.cuh: value, floor(2^128/q) high, low (as
            // `Modulus::new` computes it).
            let r = u128::MAX / m.value() as u128;
            self.words.extend([m.value(), (r >> 64) as u64, r as u64]);
        }
        at
    }

    fn indices(&mut self, i: impl IntoIterator<Item = u32>) -> usize {
        let at = self.indices.len();
        self.indices.extend(i);
        at
    }

    fn conversion(&mut self, c: &BaseConverter, targets: &[usize]) -> Conversion {
        let from = c.source_moduli();
        let to = c.target_moduli();
        let hats = c.hat_mod_to();
        let prods = c.product_mod_to();
        let inv_hat_shoup: Vec<u64> = from
            .iter()
            .zip(c.inv_hat())
            .map(|(m, &w)| m.shoup(w))
            .collect();
        Conversion {
            sources: from.len() as u32,
            source: from.first().map_or(0, Modulus::value),
            from: self.moduli(from),
            inv_hat: self.words(c.inv_hat().iter().copied()),
            inv_hat_shoup: self.words(inv_hat_shoup),
            inv_from: self.words(c.inv_from_f64().iter().map(|x| x.to_bits())),
            to: self.moduli(to),
            hat: self.words(hats.iter().map(|h| h.0)),
            hat_shoup: self.words(hats.iter().map(|h| h.1)),
            prod: self.words(prods.iter().map(|p| p.0)),
            prod_shoup: self.words(prods.iter().map(|p| p.1)),
            rows: self.indices(targets.iter().map(|&t| t as u32)),
            targets: targets.len() as u32,
        }
    }

    fn scale(&mut self, moduli: &[Modulus], w: &[u64]) -> Scale {
        let shoup: Vec<u64> = moduli.iter().zip(w).map(|(m, &w)| m.shoup(w)).collect();
        Scale {
            w: self.words(w.iter().copied()),
            w_shoup: self.words(shoup),
        }
    }
}

impl Tables {
    /// Builds and uploads everything for `ctx` with ModUp digits of `extender`.
    pub(super) fn upload(
        stream: &Arc<CudaStream>,
        ctx: &RingContext,
        extender: Option<&BasisExtender>,
    ) -> Result<Self, BackendError> {
        let mut b = Builder::default();
        let basis = ctx.full_basis();
        let tables: Vec<_> = (0..basis.len()).map(|i| ctx.ntt_table(basis, i)).collect();
        let tw = b.words(tables.iter().flat_map(|t| t.twiddles().0.iter().copied()));
        let tw_shoup = b.words(tables.iter().flat_map(|t| t.twiddles().1.iter().copied()));
        let itw = b.words(tables.iter().flat_map(|t| t.twiddles().2.iter().copied()));
        let itw_shoup = b.words(tables.iter().flat_map(|t| t.twiddles().3.iter().copied()));
        let n_inv = b.words(tables.iter().map(|t| t.twiddles().4));
        let n_inv_shoup = b.words(tables.iter().map(|t| t.twiddles().5));
        let prime_mods = b.moduli(ctx.q().iter().chain(ctx.p()));

        let mut bases = HashMap::new();
        for q in 1..=ctx.q().len() {
            for p in 0..=ctx.p().len() {
                let basis = Basis::new(q, p);
                let mods = b.moduli(ctx.moduli(basis));
                let primes = b.indices((0..basis.len()).map(|i| ctx.prime_index(basis, i) as u32));
                bases.insert(basis, BasisTables { mods, primes });
            }
        }

        let mut rescale = vec![None; ctx.q().len() + 1];
        for (q, slot) in rescale.iter_mut().enumerate().skip(2) {
            let q_last = ctx.q()[q - 1];
            let half = q_last.value() / 2;
            let moduli = &ctx.q()[..q - 1];
            let half_mod = b.words(moduli.iter().map(|m| m.reduce(half)));
            let inv: Vec<u64> = moduli
                .iter()
                .map(|m| m.inv(m.reduce(q_last.value())).unwrap_or(0))
                .collect();
            *slot = Some((half_mod, b.scale(moduli, &inv)));
        }

        let mut digits = Vec::new();
        let mut mod_down = None;
        if let Some(ext) = extender {
            for level in 0..ctx.q().len() {
                let basis = Basis::new(level + 1, ctx.p().len());
                let per_level = (0..ext.digit_count(level))
                    .map(|d| {
                        let (limbs, conv) = ext.digit(level, d);
                        let targets: Vec<usize> =
                            (0..basis.len()).filter(|i| !limbs.contains(i)).collect();
                        Digit {
                            conversion: b.conversion(conv, &targets),
                            limbs,
                        }
                    })
                    .collect();
                digits.push(per_level);
            }
            let (p_to_q, p_inv) = ext.mod_down_constants();
            let rows: Vec<usize> = (0..ctx.q().len()).collect();
            mod_down = Some((b.conversion(p_to_q, &rows), b.scale(ctx.q(), p_inv)));
        }

        let words = stream
            .clone_htod(&b.words)
            .map_err(|e| driver("uploading the ring's constants", e))?;
        // An empty upload would be a null buffer; keep one index so the address is valid.
        if b.indices.is_empty() {
            b.indices.push(0);
        }
        let indices = stream
            .clone_htod(&b.indices)
            .map_err(|e| driver("uploading the ring's constants", e))?;
        let words_base = words.device_ptr(stream).0;
        let indices_base = indices.device_ptr(stream).0;
        Ok(Self {
            words,
            indices,
            words_base,
            indices_base,
            tw,
            tw_shoup,
            itw,
            itw_shoup,
            prime_mods,
            n_inv,
            n_inv_shoup,
            bases,
            rescale,
            digits,
            mod_down,
        })
    }

    /// Device address of u64 word `offset`.
    pub(super) fn w(&self, offset: usize) -> u64 {
        self.words_base + 8 * offset as u64
    }

    /// Device address of u32 index `offset`.
    pub(super) fn i(&self, offset: usize) -> u64 {
        self.indices_base + 4 * offset as u64
    }

    /// Device bytes held.
    pub(super) fn bytes(&self) -> usize {
        self.words.len() * 8 + self.indices.len() * 4
    }
}
