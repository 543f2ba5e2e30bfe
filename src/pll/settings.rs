//! What the operator chooses: the noise level (directly, or from the extraction error to
//! aim at), flooding, the per-client query budget and the limits on clients.

use super::PllError;

#[derive(Clone, Debug, PartialEq)]
pub struct PllSettings {
    /// σ: std of the per-query perturbation of B relative to B's rms entry. An output's
    /// relative error is then ≈ σ whatever the input's scale. 0 turns the noise off.
    pub noise: f64,
    /// Re-randomise every output and flood its error (circuit privacy).
    pub flooding: bool,
    /// Bound on ln R₂, the order-2 Rényi divergence between what a client decrypts with
    /// and without the circuit's own error, over its whole budget for one adapter. The
    /// flooding std grows as √(budget / this).
    pub flood_divergence: f64,
    /// Queries each client id may make to each adapter.
    pub budget: u64,
    /// Clients the server holds at once.
    pub max_clients: usize,
    /// Largest evaluation-key set one client may register, in bytes.
    pub max_key_bytes: usize,
}

impl Default for PllSettings {
    fn default() -> Self {
        Self {
            noise: 0.1,
            flooding: true,
            flood_divergence: 1.0,
            budget: 4096,
            max_clients: 1024,
            max_key_bytes: 512 << 20,
        }
    }
}

/// Largest accepted σ: beyond it the output is mostly noise.
const MAX_NOISE: f64 = 1e3;

impl PllSettings {
    /// No protection: the plain plan's output, and no budget.
    pub fn off() -> Self {
        Self {
            noise: 0.0,
            flooding: false,
            budget: u64::MAX,
            ..Self::default()
        }
    }

    /// Whether this is exactly the plain plan.
    pub fn is_off(&self) -> bool {
        self.noise == 0.0 && !self.flooding
    }

    pub fn validate(&self) -> Result<(), PllError> {
        let bad = |why: String| Err(PllError::Settings(why));
        if !(self.noise.is_finite() && (0.0..=MAX_NOISE).contains(&self.noise)) {
            // `{:?}` keeps 1e300 short where `{}` writes every digit.
            return bad(format!("noise {:?} is not in [0, {MAX_NOISE}]", self.noise));
        }
        if !(self.flood_divergence.is_finite() && self.flood_divergence > 0.0) {
            return bad(format!(
                "flood divergence {:?} must be positive",
                self.flood_divergence
            ));
        }
        if self.budget == 0 {
            return bad("a budget of 0 queries serves nobody".into());
        }
        if self.max_clients == 0 {
            return bad("max_clients must be at least 1".into());
        }
        Ok(())
    }
}
