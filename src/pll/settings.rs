//! What the operator chooses: the noise level (directly, or from the extraction error to
//! aim at), flooding, the per-client query budget and the limits on clients.

use super::PllError;

#[derive(Clone, Debug, PartialEq)]
pub struct PllSettings {
    /// σ: std of the per-query perturbation of B relative to B's rms entry. An output's
    /// relative error is then ≈ σ whatever the input's scale. 0 turns the noise off.
    pub noise: f64,
    /// Instead of one σ for every adapter: the extraction error ε* to hold any client to
    /// over its whole budget. Each adapter then gets σ = ε*·√(budget / (κ·r)) with its own
    /// rank r and shape factor κ ([`super::shape_factor`]), and `noise` is not used.
    pub noise_target: Option<f64>,
    /// Re-randomise every output and flood its error (circuit privacy).
    pub flooding: bool,
    /// Statistical security s of the flooding, in bits, over a client's whole budget for
    /// one adapter: σ_f = 2^(s/2)·√(12·budget)·ρ, as OpenFHE sizes its flooding for s bits
    /// and that many decryptions (at least [`MIN_FLOOD_SECURITY`]).
    pub flood_security: u32,
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
            noise_target: None,
            flooding: true,
            flood_security: MIN_FLOOD_SECURITY,
            budget: 4096,
            max_clients: 1024,
            max_key_bytes: 512 << 20,
        }
    }
}

/// The least statistical security the flooding is sized for: OpenFHE's default.
pub const MIN_FLOOD_SECURITY: u32 = 30;
/// Beyond this no parameter set here holds the flood.
const MAX_FLOOD_SECURITY: u32 = 80;

/// Largest accepted σ: beyond it the output is mostly noise.
pub(crate) const MAX_NOISE: f64 = 1e3;

impl PllSettings {
    /// No protection: the plain plan's output, and no budget.
    pub fn off() -> Self {
        Self {
            noise: 0.0,
            noise_target: None,
            flooding: false,
            budget: u64::MAX,
            ..Self::default()
        }
    }

    /// Whether this is exactly the plain plan.
    pub fn is_off(&self) -> bool {
        self.noise == 0.0 && self.noise_target.is_none() && !self.flooding
    }

    /// σ for an adapter of rank `rank` and shape factor `kappa`: the target's when one is
    /// set, else `noise`.
    pub fn noise_for(&self, rank: usize, kappa: f64) -> f64 {
        match self.noise_target {
            Some(target) => super::noise_for_target(target, self.budget, rank, kappa),
            None => self.noise,
        }
    }

    pub fn validate(&self) -> Result<(), PllError> {
        let bad = |why: String| Err(PllError::Settings(why));
        if !(self.noise.is_finite() && (0.0..=MAX_NOISE).contains(&self.noise)) {
            // `{:?}` keeps 1e300 short where `{}` writes every digit.
            return bad(format!("noise {:?} is not in [0, {MAX_NOISE}]", self.noise));
        }
        if !(MIN_FLOOD_SECURITY..=MAX_FLOOD_SECURITY).contains(&self.flood_security) {
            return bad(format!(
                "flooding security of {} bits is not in {MIN_FLOOD_SECURITY} … {MAX_FLOOD_SECURITY}",
                self.flood_security
            ));
        }
        if let Some(target) = self.noise_target {
            if !(target.is_finite() && target > 0.0 && target <= 1.0) {
                return bad(format!(
                    "target extraction error {target:?} is not in (0, 1]"
                ));
            }
            if !self.flooding {
                return bad(
                    "a target extraction error needs flooding: without it the decrypted \
                     error exposes the adapter whatever the noise"
                        .into(),
                );
            }
        }
        if self.noise > 0.0 && !self.flooding {
            // The noise is added to B's encoded diagonals: without flooding, the error the
            // client decrypts is a function of them (Li–Micciancio), so noise alone would
            // leak what it is meant to blur.
            return bad(format!(
                "noise {:?} without flooding: the decrypted error would expose the adapter; \
                 turn flooding on, or the noise off",
                self.noise
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
