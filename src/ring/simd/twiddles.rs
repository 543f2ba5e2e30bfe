//! Twiddle layouts of the vector NTT kernels.

/// Reorders the twiddles of the last log2(lanes) forward stages (the first ones of the inverse)
/// for SIMD kernels that run those stages on `lanes`×`lanes` transposed blocks, where lane k of
/// a register holds row k of the block and so needs its own twiddle.
///
/// The stage at `[N/lanes << s, 2N/lanes << s)` (half-span t = lanes/2 >> s) gives each block
/// `lanes << s` consecutive twiddles, row k using entries `k·2^s + j` (j < 2^s); they are stored
/// as 2^s vectors: position `lanes·j + k` ← `k·2^s + j`. Earlier entries are unchanged.
pub(in crate::ring) fn lane_major_twiddles(tw: &[u64], lanes: usize) -> Vec<u64> {
    let n = tw.len();
    let mut out = tw.to_vec();
    for s in 0..lanes.trailing_zeros() {
        let (start, per) = ((n / lanes) << s, 1usize << s);
        for g in (start..2 * start).step_by(lanes * per) {
            for j in 0..per {
                for k in 0..lanes {
                    out[g + lanes * j + k] = tw[g + k * per + j];
                }
            }
        }
    }
    out
}
