//! An adapter as the PLL server holds it: the plan and the protection parameters derived
//! once at registration (noise std from B, flooding std from a self-test).

use super::flooding::{calibrate, check_flood_fits, flood_std};
use super::noise::{perturbation_std, Perturbation};
use super::settings::MAX_NOISE;
use super::{shape_factor, ExtractionBound, PllError, PllSettings};
use crate::ckks::{Backend, Encoder, Evaluator};
use crate::linear::{LoraPlan, Matrix};

pub struct Adapter<B: Backend> {
    pub(crate) plan: LoraPlan<B>,
    /// σ_E, absolute (σ·rms(B)); 0 without noise.
    noise_std: f64,
    /// How to draw E; None without noise.
    pub(crate) perturbation: Option<Perturbation>,
    /// σ_f in coefficient units; 0 without flooding.
    pub(crate) flood_std: f64,
    circuit_error: f64,
    bound: ExtractionBound,
}

impl<B: Backend> Adapter<B> {
    /// Encodes the plan on `evaluator` and, when flooding, measures the plan's own error on
    /// `calibration` (an evaluator whose keys it replaces).
    pub(crate) fn new(
        evaluator: &Evaluator<B>,
        calibration: &mut Evaluator<B>,
        encoder: &Encoder,
        a: &Matrix,
        b: &Matrix,
        level: usize,
        settings: &PllSettings,
    ) -> Result<Self, PllError> {
        let plan = LoraPlan::new(evaluator, encoder, a, b, level)?;
        let params = evaluator.params();
        let (circuit_error, flood) = if settings.flooding {
            let rms = calibrate(calibration, encoder, &plan)?;
            let std = flood_std(rms, settings.budget, settings.flood_security);
            check_flood_fits(params, plan.output_level(), std)?;
            (rms, std)
        } else {
            (0.0, 0.0)
        };
        let kappa = shape_factor(a, b);
        let noise = settings.noise_for(a.cols(), kappa);
        if !(noise.is_finite() && noise <= MAX_NOISE) {
            return Err(PllError::Settings(format!(
                "the target error needs σ = {noise:.3e} for this adapter (κ = {kappa:.3}), \
                 beyond {MAX_NOISE}: raise the target or lower the budget"
            )));
        }
        let noise_std = perturbation_std(noise, b);
        let perturbation = (noise_std > 0.0)
            .then(|| Perturbation::new(params, &plan, noise_std))
            .transpose()?;
        Ok(Self {
            noise_std,
            perturbation,
            flood_std: flood,
            circuit_error,
            bound: ExtractionBound {
                noise,
                rank: a.cols(),
                d_in: a.rows(),
                d_out: b.cols(),
                kappa,
            },
            plan,
        })
    }

    pub fn plan(&self) -> &LoraPlan<B> {
        &self.plan
    }

    /// σ: the relative noise this adapter runs with (the settings' own, or the one its κ
    /// and rank need for the target error).
    pub fn noise(&self) -> f64 {
        self.bound.noise
    }

    /// σ_E: std of each entry of the per-query perturbation E of B.
    pub fn noise_std(&self) -> f64 {
        self.noise_std
    }

    /// σ_f: std of the flooding term per coefficient (integer units at the output scale).
    pub fn flood_std(&self) -> f64 {
        self.flood_std
    }

    /// The bound on the plan's own error (rms per coefficient) the flooding was sized for.
    pub fn circuit_error(&self) -> f64 {
        self.circuit_error
    }

    /// What a client can extract from this adapter, by number of queries.
    pub fn extraction_bound(&self) -> &ExtractionBound {
        &self.bound
    }
}
