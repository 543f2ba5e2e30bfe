//! The NTT of every limb, the CPU's `ring::ntt` (same butterflies, twiddles and output
//! order): kernels/ntt.cu, all the rows in two launches (the outer stages, the inner ones).

use super::launch::launch;
use super::CudaBackend;
use crate::ring::Basis;
use cudarc::driver::LaunchConfig;

/// Threads per NTT block: each thread loops over butterflies.
const NTT_BLOCK: u32 = 256;

impl CudaBackend {
    /// Forward or inverse NTT of rows `rows` of the polynomial over `basis` at `poly` (the
    /// address of its row 0).
    pub(super) fn ntt_rows(
        &self,
        forward: bool,
        poly: u64,
        basis: Basis,
        rows: std::ops::Range<usize>,
    ) {
        self.ntt_rows_at(
            forward,
            poly + 8 * (rows.start * self.n) as u64,
            basis,
            rows,
        )
    }

    /// As [`ntt_rows`](Self::ntt_rows) for rows stored on their own: `data` is the address
    /// of row `rows.start` (e.g. a temporary holding only those rows), whose primes are
    /// still those of `basis` at `rows`.
    pub(super) fn ntt_rows_at(
        &self,
        forward: bool,
        data: u64,
        basis: Basis,
        rows: std::ops::Range<usize>,
    ) {
        let Some(bt) = self.tables.bases.get(&basis) else {
            self.errors
                .record(|| format!("basis {basis:?} is not in this backend's ring"));
            return;
        };
        let count = rows.len() as u32;
        if count == 0 {
            return;
        }
        let t = &self.tables;
        let (tw, tw_shoup) = if forward {
            (t.w(t.tw), t.w(t.tw_shoup))
        } else {
            (t.w(t.itw), t.w(t.itw_shoup))
        };
        let mods = t.w(t.prime_mods);
        let table_of_limb = t.i(bt.primes + rows.start);
        let (n_inv, n_inv_shoup) = (t.w(t.n_inv), t.w(t.n_inv_shoup));
        let log_n = self.log_n;
        let log_outer = self.log_outer;
        let limbs = count;
        let chunk = (self.n >> log_outer) as u32;
        let cols = chunk.min(16);
        let inner = LaunchConfig {
            grid_dim: (count << log_outer, 1, 1),
            block_dim: (NTT_BLOCK, 1, 1),
            shared_mem_bytes: chunk * 8,
        };
        let outer = LaunchConfig {
            grid_dim: (count * (chunk / cols), 1, 1),
            block_dim: (NTT_BLOCK, 1, 1),
            shared_mem_bytes: (cols << log_outer) * 8,
        };
        macro_rules! ntt {
            ($name:literal, $cfg:expr) => {
                launch!(
                    self,
                    $name,
                    $cfg,
                    data,
                    tw,
                    tw_shoup,
                    mods,
                    table_of_limb,
                    n_inv,
                    n_inv_shoup,
                    limbs,
                    log_n,
                    log_outer
                )
            };
        }
        if forward {
            if log_outer > 0 {
                ntt!("ntt_forward_outer", outer);
            }
            ntt!("ntt_forward_inner", inner);
        } else {
            ntt!("ntt_inverse_inner", inner);
            if log_outer > 0 {
                ntt!("ntt_inverse_outer", outer);
            }
        }
    }
}
