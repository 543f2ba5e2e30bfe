//! The extraction attack, run against the real protocol: a client with its own keys
//! chooses inputs freely (basis vectors or random vectors, at any scale), has each one
//! encrypted, evaluated by a [`PllServer`] holding random LoRA factors A (d×r), B (r×d),
//! and decrypted, then estimates W = A·B from all answers by least squares — and, since
//! it knows W has rank r, by the best rank-r approximation of that estimate. It reports
//! ‖Ŵ − W‖_F / ‖W‖_F for both, and the lower bound of docs/security.md.

// Public: `helora attack behaviour` (the engine) fits its copies of real adapters with it.
pub mod linalg;

use super::{bound, ClientId, PllError, PllServer, PllSettings};
use crate::ckks::{
    Decryptor, Encoder, KeyGenerator, KeySeed, ParamSpec, Params, SymmetricEncryptor,
};
use crate::linear::{random_lora_factors, MAX_RANK};
use crate::math::sampling::{self, standard_normal, ChaCha20Rng};
use linalg::{cholesky, cholesky_solve, low_rank_approximation, Mat};
use std::time::Instant;

/// How the attacker picks its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
pub enum Design {
    /// x = scale·√d·e_(q mod d): each answer is a row of W; averaging is least squares.
    Basis,
    /// x = scale·g, g standard normal: least squares by normal equations.
    Random,
}

impl Design {
    pub fn name(self) -> &'static str {
        match self {
            Design::Basis => "basis",
            Design::Random => "random",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AttackConfig {
    /// A is d×r and B is r×d.
    pub d: usize,
    pub r: usize,
    pub queries: u64,
    /// The server's protection; its budget is set to `queries` when protection is on.
    pub settings: PllSettings,
    pub design: Design,
    /// Every input is multiplied by this (a client trying to outgrow the noise). At 1 the
    /// inputs of both designs have norm ≈ √d, like a unit-variance hidden state.
    pub input_scale: f64,
}

impl AttackConfig {
    pub fn new(d: usize, r: usize, queries: u64, pll: bool) -> Self {
        Self {
            d,
            r,
            queries,
            settings: if pll {
                PllSettings::default()
            } else {
                PllSettings::off()
            },
            design: Design::Basis,
            input_scale: 1.0,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AttackReport {
    pub d: usize,
    pub r: usize,
    pub queries: u64,
    pub pll: bool,
    pub design: Design,
    pub input_scale: f64,
    /// σ, the relative noise the server applied.
    pub noise: f64,
    /// σ_f, the flooding std per coefficient.
    pub flood_std: f64,
    /// κ of the server's factors.
    pub kappa: f64,
    /// ‖Ŵ − W‖_F / ‖W‖_F of the least-squares estimate.
    pub least_squares_error: f64,
    /// The same after the best rank-r approximation.
    pub low_rank_error: f64,
    /// The attacker's best: the smaller of the two.
    pub relative_error: f64,
    /// The lower bound σ·√(κ·r/Q) (0 without noise).
    pub bound: f64,
    /// What the analysis predicts for the two estimates (isotropic factors), once the
    /// queries determine W (Q ≥ d for basis inputs, Q > d + 1 for random ones).
    pub predicted_least_squares_error: Option<f64>,
    pub predicted_low_rank_error: Option<f64>,
    /// Time spent in the protocol (encrypt, server, decrypt), and in the solve.
    pub protocol_seconds: f64,
    pub solve_seconds: f64,
    pub seconds: f64,
}

/// Largest d the harness accepts (A·B and the estimate are d × d dense).
pub const MAX_DIMENSION: usize = 8192;
/// Largest Q·d for random inputs (the attacker keeps every input and answer).
const MAX_RANDOM_ENTRIES: u64 = 1 << 27;
/// Largest input scale: at N = 2^13 the answers start to wrap around the level-0 modulus
/// near 10^7 (d = 16, r = 2: relative error 4·10⁻³ at 10^7, 10⁻⁹ at 3·10^6).
pub const MAX_INPUT_SCALE: f64 = 1e6;
/// Subspace iterations for the rank-r approximation (the signal gap is large).
const LOW_RANK_ITERATIONS: usize = 15;

pub fn run(config: &AttackConfig) -> Result<AttackReport, PllError> {
    run_with_progress(config, |_, _| {})
}

/// As [`run`], calling `progress(done, total)` after every query.
pub fn run_with_progress(
    config: &AttackConfig,
    mut progress: impl FnMut(u64, u64),
) -> Result<AttackReport, PllError> {
    validate(config)?;
    let start = Instant::now();
    let (d, r) = (config.d, config.r);
    let params = Params::new(ParamSpec::n13_depth2())?;
    let mut rng = sampling::os_rng()?;
    let (a, b) = random_lora_factors(d, d, r, &mut rng)?;
    let w = Mat {
        rows: d,
        cols: r,
        data: (0..d * r).map(|i| a.get(i / r, i % r)).collect(),
    }
    .mul(&Mat {
        rows: r,
        cols: d,
        data: (0..r * d).map(|i| b.get(i / d, i % d)).collect(),
    });

    // Server.
    let mut settings = config.settings.clone();
    if !settings.is_off() {
        settings.budget = config.queries;
    }
    let mut server = PllServer::cpu(&params, settings.clone())?;
    let level = params.max_level();
    let adapter = server.add_adapter(&a, &b, level)?;
    let (layout_in, layout_out) = {
        let plan = server.adapter(adapter)?.plan();
        (*plan.input_layout(), *plan.output_layout())
    };

    // Client.
    let mut keygen = KeyGenerator::new(&params)?;
    // The server's registration challenge: the seed of the keys' `a` halves.
    let key_seed = KeySeed::random()?;
    keygen.set_key_seed(key_seed);
    let keys = keygen.evaluation_keys(&server.rotation_steps(), false)?;
    let client = ClientId(1);
    server.register_client(client, &keys, keygen.public_key(), &key_seed)?;
    let encoder = Encoder::new(params.n())?;
    let mut encryptor = SymmetricEncryptor::new(&params, keygen.secret_key())?;
    let decryptor = Decryptor::new(&params, keygen.secret_key())?;
    let scale = params.default_scale();

    // Queries.
    let protocol = Instant::now();
    let mut answers = Answers::new(config, d);
    for q in 0..config.queries {
        let x = answers.input(q, config.input_scale, &mut rng);
        let cts = layout_in
            .pack(&x)?
            .iter()
            .map(|slots| {
                let seeded =
                    encryptor.encrypt_seeded(&encoder.encode_at(&params, slots, level, scale)?)?;
                Ok(crate::ckks::expand_seeded(&params, &seeded)?)
            })
            .collect::<Result<Vec<_>, PllError>>()?;
        let out = server.apply(client, adapter, &cts)?;
        let decoded = out
            .iter()
            .map(|ct| {
                let pt = decryptor.decrypt(ct)?;
                Ok(encoder.decode(params.ring(), &pt.poly, pt.scale)?)
            })
            .collect::<Result<Vec<_>, PllError>>()?;
        answers.record(q, x, layout_out.unpack(&decoded)?);
        progress(q + 1, config.queries);
    }
    let protocol_seconds = protocol.elapsed().as_secs_f64();

    // Estimates.
    let solve = Instant::now();
    let estimate = answers.least_squares()?;
    let low_rank = low_rank_approximation(&estimate, r, LOW_RANK_ITERATIONS);
    let w_norm = w.frobenius();
    let error = |e: &Mat| {
        e.data
            .iter()
            .zip(&w.data)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
            / w_norm
    };
    let (least_squares_error, low_rank_error) = (error(&estimate), error(&low_rank));
    let solve_seconds = solve.elapsed().as_secs_f64();

    let held = server.adapter(adapter)?;
    let bound = held.extraction_bound();
    let predicted = match config.design {
        Design::Basis => (config.queries >= d as u64)
            .then(|| bound::least_squares_error(settings.noise, d, config.queries)),
        Design::Random => Some(bound::random_least_squares_error(
            settings.noise,
            d,
            config.queries,
        ))
        .filter(|e| e.is_finite()),
    };
    Ok(AttackReport {
        d,
        r,
        queries: config.queries,
        pll: !settings.is_off(),
        design: config.design,
        input_scale: config.input_scale,
        noise: settings.noise,
        flood_std: held.flood_std(),
        kappa: bound.kappa,
        least_squares_error,
        low_rank_error,
        relative_error: least_squares_error.min(low_rank_error),
        bound: bound.relative_error(config.queries),
        predicted_least_squares_error: predicted,
        predicted_low_rank_error: predicted.map(|e| bound::low_rank_error(e, r, d, d)),
        protocol_seconds,
        solve_seconds,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn validate(config: &AttackConfig) -> Result<(), PllError> {
    let bad = |why: String| Err(PllError::InvalidAttack(why));
    if config.d == 0 || config.d > MAX_DIMENSION {
        return bad(format!("d = {} is not in 1 … {MAX_DIMENSION}", config.d));
    }
    if config.r == 0 || config.r > MAX_RANK.min(config.d) {
        return bad(format!(
            "r = {} is not in 1 … {}",
            config.r,
            MAX_RANK.min(config.d)
        ));
    }
    if config.queries == 0 {
        return bad("at least one query is needed".into());
    }
    if config.design == Design::Random
        && config.queries.saturating_mul(config.d as u64) > MAX_RANDOM_ENTRIES
    {
        return bad(format!(
            "random inputs keep Q·d values: {}·{} is above {MAX_RANDOM_ENTRIES}",
            config.queries, config.d
        ));
    }
    if !(config.input_scale > 0.0 && config.input_scale <= MAX_INPUT_SCALE) {
        return bad(format!(
            "input scale {:e} is not in (0, {MAX_INPUT_SCALE:e}]: larger answers overflow \
             the output modulus",
            config.input_scale
        ));
    }
    config.settings.validate()
}

/// What the attacker keeps: per design, just enough for its least-squares solve.
enum Answers {
    /// Sum of the answers per basis vector (already divided by the scale) and counts.
    Basis { sums: Mat, counts: Vec<u64> },
    /// Every input and answer, one row per query.
    Random { inputs: Mat, outputs: Mat },
}

impl Answers {
    fn new(config: &AttackConfig, d: usize) -> Self {
        match config.design {
            Design::Basis => Answers::Basis {
                sums: Mat::zeros(d, d),
                counts: vec![0; d],
            },
            Design::Random => {
                let q = config.queries as usize;
                Answers::Random {
                    inputs: Mat::zeros(q, d),
                    outputs: Mat::zeros(q, d),
                }
            }
        }
    }

    fn input(&self, q: u64, scale: f64, rng: &mut ChaCha20Rng) -> Vec<f64> {
        match self {
            Answers::Basis { counts, .. } => {
                let d = counts.len();
                let mut x = vec![0.0; d];
                x[(q % d as u64) as usize] = scale * (d as f64).sqrt();
                x
            }
            Answers::Random { inputs, .. } => (0..inputs.cols)
                .map(|_| scale * standard_normal(rng))
                .collect(),
        }
    }

    fn record(&mut self, q: u64, x: Vec<f64>, y: Vec<f64>) {
        match self {
            Answers::Basis { sums, counts } => {
                let d = counts.len();
                let i = (q % d as u64) as usize;
                let s = x[i];
                sums.row_mut(i)
                    .iter_mut()
                    .zip(&y)
                    .for_each(|(acc, v)| *acc += v / s);
                counts[i] += 1;
            }
            Answers::Random { inputs, outputs } => {
                let q = q as usize;
                inputs.row_mut(q).copy_from_slice(&x);
                outputs.row_mut(q).copy_from_slice(&y);
            }
        }
    }

    /// Ŵ minimising Σ_q ‖x_q·Ŵ − y_q‖² (the minimum-norm one with fewer queries than d).
    fn least_squares(self) -> Result<Mat, PllError> {
        match self {
            Answers::Basis { mut sums, counts } => {
                for (i, &c) in counts.iter().enumerate() {
                    if c > 0 {
                        sums.row_mut(i).iter_mut().for_each(|v| *v /= c as f64);
                    }
                }
                Ok(sums)
            }
            Answers::Random { inputs, outputs } => {
                let xt = inputs.transpose();
                if inputs.rows >= inputs.cols {
                    // Normal equations: (XᵀX)·Ŵ = XᵀY.
                    let mut gram = xt.mul(&inputs);
                    let mut rhs = xt.mul(&outputs);
                    factor(&mut gram)?;
                    cholesky_solve(&gram, &mut rhs);
                    Ok(rhs)
                } else {
                    // Ŵ = Xᵀ·(XXᵀ)⁻¹·Y.
                    let mut gram = inputs.mul(&xt);
                    let mut alpha = outputs;
                    factor(&mut gram)?;
                    cholesky_solve(&gram, &mut alpha);
                    Ok(xt.mul(&alpha))
                }
            }
        }
    }
}

/// Cholesky with a tiny ridge when the Gram matrix is numerically singular.
fn factor(gram: &mut Mat) -> Result<(), PllError> {
    let original = gram.clone();
    if cholesky(gram).is_ok() {
        return Ok(());
    }
    let n = gram.rows;
    let trace: f64 = (0..n).map(|i| original.data[i * n + i]).sum();
    *gram = original;
    for i in 0..n {
        gram.data[i * n + i] += 1e-12 * trace / n as f64;
    }
    cholesky(gram).map_err(|pivot| {
        PllError::InvalidAttack(format!(
            "the inputs' Gram matrix is singular (pivot {pivot})"
        ))
    })
}
