//! What the server publishes about its adapters: the shapes a client needs to lay out its
//! inputs and read the replies, and the rotations its keys must cover. Shapes and ranks
//! are public; the factors are not.

use helora::ckks::KeySeed;
use helora::linear::{InputLayout, OutputLayout};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionShape {
    pub layer: usize,
    /// PEFT module name.
    pub module: String,
    pub d_in: usize,
    pub d_out: usize,
    /// The rank rounded up to a power of two (it fixes the input layout).
    pub rank_padded: usize,
    /// Level the input must be encrypted at.
    pub level: usize,
    /// ⌈log2⌉ of the server's bound on |x·A·(B + E)| per unit of ‖x‖₂, from which the
    /// client sizes its input's normalisation (see [`super::scaling`]).
    pub bound_log2: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    /// The parameter set's id; a client with other parameters is refused.
    pub params_id: u64,
    pub projections: Vec<ProjectionShape>,
    pub rotation_steps: Vec<i64>,
    /// The registration challenge: the seed the client's keys must take their `a` halves
    /// from (the server refuses any other). Per client on a network server.
    #[serde(skip)]
    pub key_seed: KeySeed,
}

impl Manifest {
    pub fn find(&self, layer: usize, module: &str) -> Option<&ProjectionShape> {
        self.projections
            .iter()
            .find(|p| p.layer == layer && p.module == module)
    }

    /// Whether the server adapts any of `modules` of `layer`.
    pub fn adapts_any(&self, layer: usize, modules: &[&str]) -> bool {
        modules.iter().any(|m| self.find(layer, m).is_some())
    }
}

impl ProjectionShape {
    pub fn input_layout(&self, slots: usize) -> Result<InputLayout, helora::linear::LinearError> {
        InputLayout::new(self.d_in, self.rank_padded, slots)
    }

    pub fn output_layout(&self, slots: usize) -> Result<OutputLayout, helora::linear::LinearError> {
        OutputLayout::new(self.d_out, slots)
    }
}
