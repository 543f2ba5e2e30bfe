//! How a vector is laid out in CKKS slots for a LoRA plan, on both sides of the wire.
//!
//! Input x (length d_in) is zero-padded to a block of D = a power of two ≥ max(d_in, r')
//! when d_in fits the slots, and repeated S/D times so that slot rotations act cyclically
//! on the block; longer inputs are cut into ⌈d_in / S⌉ chunks of S slots (D = S). Output y
//! (length d_out) occupies slots 0 … d_out−1 of ⌈d_out / S⌉ ciphertexts, zero elsewhere.

use super::LinearError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLayout {
    pub d_in: usize,
    /// Cyclic block length D (divides the slot count).
    pub block: usize,
    /// Number of ciphertexts.
    pub chunks: usize,
    pub slots: usize,
}

impl InputLayout {
    pub fn new(d_in: usize, rank_padded: usize, slots: usize) -> Result<Self, LinearError> {
        if d_in == 0 {
            return Err(LinearError::Shape("input dimension is 0".into()));
        }
        if rank_padded > slots {
            return Err(LinearError::Shape(format!(
                "rank {rank_padded} exceeds the {slots} slots"
            )));
        }
        let block = d_in.next_power_of_two().max(rank_padded).min(slots);
        Ok(Self {
            d_in,
            block,
            chunks: d_in.div_ceil(slots),
            slots,
        })
    }

    /// The slot vectors of x, one per ciphertext.
    pub fn pack(&self, x: &[f64]) -> Result<Vec<Vec<f64>>, LinearError> {
        if x.len() != self.d_in {
            return Err(LinearError::Shape(format!(
                "input has {} values, the plan expects {}",
                x.len(),
                self.d_in
            )));
        }
        Ok((0..self.chunks)
            .map(|c| {
                (0..self.slots)
                    .map(|i| {
                        let row = c * self.slots + i % self.block;
                        if row < self.d_in {
                            x[row]
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLayout {
    pub d_out: usize,
    pub chunks: usize,
    pub slots: usize,
}

impl OutputLayout {
    pub fn new(d_out: usize, slots: usize) -> Result<Self, LinearError> {
        if d_out == 0 {
            return Err(LinearError::Shape("output dimension is 0".into()));
        }
        Ok(Self {
            d_out,
            chunks: d_out.div_ceil(slots),
            slots,
        })
    }

    /// y from the decoded slot vectors of the output ciphertexts.
    pub fn unpack(&self, decoded: &[Vec<f64>]) -> Result<Vec<f64>, LinearError> {
        if decoded.len() != self.chunks
            || decoded.iter().any(|d| d.len() < self.slots.min(self.d_out))
        {
            return Err(LinearError::Shape(format!(
                "expected {} decoded output vectors",
                self.chunks
            )));
        }
        Ok(decoded
            .iter()
            .flat_map(|d| d.iter().take(self.slots))
            .take(self.d_out)
            .copied()
            .collect())
    }
}
