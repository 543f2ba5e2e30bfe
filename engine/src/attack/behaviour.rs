//! `helora attack behaviour`: extraction measured by what the stolen copy *does*. An
//! attacker with K client ids queries a real adapter through the real protocol (the PLL
//! as the server would run it), fits a copy of every attacked projection's ΔW, and the
//! copy's greedy answers on held-out domain prompts are compared with the true adapter's,
//! beside the base model's (the adapter without the attacked projections), at each point
//! of a curve over the number of queries.

use super::agreement::{self, encode_prompt, Agreement, Reference};
use super::collect::{Attacker, Observations};
use super::copy::{ProductHook, ProjectionKey};
use super::fit::{self, FitOptions};
use super::prompts::{PromptSource, HELD_OUT};
use super::sites::{attacked_sites, parse_layers, Site};
use crate::adapter::LoraAdapter;
use crate::demo;
use crate::model::{fetch, load_model, LoadedModel, Model};
use crate::progress::Progress;
use crate::switch::Switch;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use helora::pll::PllSettings;
use serde::Serialize;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Most queries per site (basis) or tokens (text) at one curve point.
pub const MAX_QUERIES: u64 = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueryDesign {
    /// Chosen inputs: scaled basis vectors of R^d_in sent to every attacked site; each
    /// reply is a row of that site's ΔW (with the PLL's noise).
    Basis,
    /// Ordinary use: prompts run through the model by a normal client; every token's
    /// input and decrypted reply at each site is kept (ridge regression).
    Text,
}

#[derive(Debug, Args)]
pub struct BehaviourArgs {
    /// The PEFT LoRA adapter to steal. Default (with the default model): the demo adapter.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// A GGUF file or a Hugging Face directory. Default: SmolLM2-135M-Instruct.
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = QueryDesign::Basis)]
    pub design: QueryDesign,
    /// The curve's points, ascending, comma-separated: queries per site (basis) or prompt
    /// tokens in all (text). The attack runs once, up to the last; each point fits on a
    /// prefix.
    #[arg(long, value_delimiter = ',', required = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_QUERIES))]
    pub queries: Vec<u64>,
    /// The text design's prompts: `generic` (general questions), `customer` (the domain's
    /// ordinary support questions, none asking for the adapter's facts), or a file with
    /// one prompt per line. Default: generic.
    #[arg(long, value_parser = PromptSource::parse)]
    pub prompts: Option<PromptSource>,
    /// Client ids the attacker registers, each with its own budget; queries are split
    /// evenly among them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub clients: u32,
    /// The server's Private Linear Layer (noise on B, flooding, query budget).
    #[arg(long, value_enum, default_value_t = Switch::On)]
    pub pll: Switch,
    /// σ: relative noise of the PLL (with --pll on). Default: the PLL's, 0.1.
    #[arg(long)]
    pub noise: Option<f64>,
    /// Basis design: inputs are scale·√d_in·e_i (norm ≈ a hidden state's at 1).
    #[arg(long)]
    pub scale: Option<f64>,
    /// Text design: the ridge's λ relative to the mean diagonal of XᵀX. Default: 1e-3.
    #[arg(long)]
    pub ridge: Option<f64>,
    /// Keep the best approximation of the adapter's rank of each fitted ΔW (SVD).
    #[arg(long)]
    pub truncate_rank: bool,
    /// Attack only the sites of these layers, `A..B` (B excluded): the copy replaces the
    /// adapter there and the true adapter stays elsewhere, and the base model is the
    /// adapter without them. Default: every layer.
    #[arg(long, value_parser = parse_layers, value_name = "A..B")]
    pub layers: Option<Range<usize>>,
    /// Judge on the first N held-out domain prompts (of 11).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=HELD_OUT.len() as i64))]
    pub held_out: Option<u32>,
    /// Length of the greedy answers compared (shorter at an end of sequence).
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_new_tokens: u32,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Draw agreement against queries (copy and base, token and answer) into FILE.png.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
}

/// One point of the curve.
#[derive(Debug, Serialize)]
pub struct Point {
    /// Per site (basis) or prompt tokens (text).
    pub queries: u64,
    pub copy: Agreement,
    /// ‖ΔŴ − ΔW‖_F / ‖ΔW‖_F over the attacked projections.
    pub weight_error_mean: f64,
    pub weight_error_max: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct Seconds {
    /// Loading the model and adapter, the references, the server and the clients' keys.
    pub setup: f64,
    /// Encryption, the server and decryption of every query.
    pub protocol: f64,
    pub fit: f64,
    /// The copies' and the base's agreement.
    pub eval: f64,
    pub total: f64,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct BehaviourReport {
    pub model: String,
    pub adapter: String,
    pub design: QueryDesign,
    /// The text design's prompt set.
    pub prompts: Option<String>,
    pub pll: bool,
    pub noise: f64,
    pub flooding: bool,
    /// Queries each client id may make to each projection (none without the PLL).
    pub budget_per_client: Option<u64>,
    pub clients: usize,
    /// Queries each id made to each projection (the last point's run).
    pub queries_per_client: Vec<u64>,
    /// Encrypted requests (one per token and adapted site) sent in all.
    pub requests: u64,
    /// Attacked layers, [start, end).
    pub layers: [usize; 2],
    pub attacked_sites: usize,
    pub attacked_projections: usize,
    pub adapter_rank: usize,
    /// Basis design: inputs are this × √d_in times a basis vector.
    pub input_scale: Option<f64>,
    pub ridge: Option<f64>,
    pub truncate_rank: bool,
    pub max_new_tokens: usize,
    /// The held-out prompts and the true adapter's greedy answers.
    pub references: Vec<Reference>,
    /// The reference's own token agreement, teacher-forced (1 unless the batched and the
    /// incremental forward passes round a near-tie apart).
    pub reference_self_agreement: f64,
    /// The adapter without the attacked projections (the base model when all are).
    pub base: Agreement,
    pub points: Vec<Point>,
    pub seconds: Seconds,
}

/// The checks the flags alone allow, before anything loads: the PLL settings.
fn settings(args: &BehaviourArgs) -> Result<PllSettings> {
    if !args.queries.windows(2).all(|w| w[0] < w[1]) {
        bail!("--queries must be ascending without repeats, e.g. 64,192,576");
    }
    let settings = super::pll_settings(args.pll, args.noise)?;
    match args.design {
        QueryDesign::Basis if args.prompts.is_some() || args.ridge.is_some() => {
            bail!("--prompts and --ridge are the text design's: add --design text")
        }
        QueryDesign::Text if args.scale.is_some() => {
            bail!("--scale is the basis design's: the text design sends the model's hidden states")
        }
        _ => {}
    }
    if let Some(scale) = args.scale {
        if !(scale.is_finite() && scale > 0.0 && scale <= helora::pll::attack::MAX_INPUT_SCALE) {
            bail!(
                "--scale {scale:?} is not in (0, {:e}]",
                helora::pll::attack::MAX_INPUT_SCALE
            );
        }
    }
    if let Some(ridge) = args.ridge {
        if !(ridge.is_finite() && ridge >= 0.0) {
            bail!("--ridge {ridge:?} is not a number ≥ 0");
        }
    }
    if args.model.is_some() && args.adapter.is_none() {
        bail!("the demo adapter is for the default model: give --adapter DIR with --model");
    }
    settings.validate().context("--noise")?;
    let k = u64::from(args.clients);
    let most = args.queries.last().copied().unwrap_or(0);
    if args.pll == Switch::On
        && args.design == QueryDesign::Basis
        && most.div_ceil(k) > settings.budget
    {
        bail!(
            "{most} queries per site from {k} client id(s) exceed the budget of {} per id and \
             projection: use --clients {} or more",
            settings.budget,
            most.div_ceil(settings.budget)
        );
    }
    Ok(settings)
}

/// Runs `helora attack behaviour` and returns its report (and draws `--plot`).
pub fn run(args: &BehaviourArgs) -> Result<BehaviourReport> {
    let started = Instant::now();
    let settings = settings(args)?;
    if let Some(path) = &args.plot {
        crate::chart::check_plot_path(path)?;
    }
    let prompts = match args.design {
        QueryDesign::Text => Some(args.prompts.clone().unwrap_or(PromptSource::Generic)),
        QueryDesign::Basis => None,
    };
    let prompt_texts = prompts.as_ref().map(PromptSource::load).transpose()?;

    let model_path = match &args.model {
        Some(path) => path.clone(),
        None => fetch::default_model_path(true)?,
    };
    let LoadedModel {
        weights,
        tokenizer,
        chat,
        source,
    } = load_model(&model_path, &Device::Cpu, true)?;
    let model = Model::new(weights).with_context(|| format!("model {}", source.display()))?;
    let adapter_dir = match &args.adapter {
        Some(dir) => dir.clone(),
        None => demo::adapter_dir()?,
    };
    let adapter = LoraAdapter::load(&adapter_dir, model.config())
        .with_context(|| format!("--adapter {}", adapter_dir.display()))?;
    let layers = args.layers.clone().unwrap_or(0..model.config().num_layers);
    let sites = attacked_sites(&adapter, model.config(), &layers)?;
    let attacked: Vec<ProjectionKey> = sites.iter().flat_map(Site::keys).collect();

    // The text design's queries: prompts as a client sends them, up to the last point.
    let most = args.queries.last().copied().unwrap_or(0) as usize;
    let text_queries = match &prompt_texts {
        Some(texts) => Some(text_tokens(
            texts,
            &tokenizer,
            chat.as_ref(),
            model.config().max_positions,
            most,
        )?),
        None => None,
    };

    // The references and the base first: they do not depend on the attack.
    let held_out = &HELD_OUT[..args.held_out.map_or(HELD_OUT.len(), |n| n as usize)];
    let max_new = args.max_new_tokens as usize;
    let eval_start = Instant::now();
    let references = reference_answers(
        &model,
        &adapter,
        &tokenizer,
        chat.as_ref(),
        held_out,
        max_new,
    )?;
    let mut truth = ProductHook::adapter_without(&adapter, &[]);
    let reference_self = agreement::agreement(&model, &mut truth, &references)?;
    let base = agreement::agreement(
        &model,
        &mut ProductHook::adapter_without(&adapter, &attacked),
        &references,
    )?;
    let mut eval = eval_start.elapsed();

    let mut attacker = Attacker::start(&adapter, settings.clone(), args.clients as usize)?;
    let setup = started.elapsed().saturating_sub(eval);
    let scale = args.scale.unwrap_or(1.0);
    let observed = match &text_queries {
        None => attacker.basis(&sites, most, scale)?,
        Some(prompts) => attacker.text(&model, &sites, prompts)?,
    };

    let options = FitOptions {
        ridge: args.ridge.unwrap_or(1e-3),
        truncate_to: args.truncate_rank.then_some(adapter.rank),
    };
    let truths = sites
        .iter()
        .flat_map(Site::keys)
        .map(|(layer, module)| {
            adapter
                .get(layer, &module)
                .map(fit::true_delta)
                .transpose()?
                .with_context(|| format!("layer {layer} {module} is not adapted"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut fit_time = Duration::ZERO;
    let mut points = Vec::with_capacity(args.queries.len());
    let progress = Progress::start("fitting and judging the copies", args.queries.len() as u64);
    for &queries in &args.queries {
        let start = Instant::now();
        let copies = fit_copies(&observed, queries as usize, &options)?;
        fit_time += start.elapsed();
        let errors: Vec<f64> = copies
            .iter()
            .zip(&truths)
            .map(|((_, fitted), truth)| fit::relative_error(fitted, truth))
            .collect();
        let start = Instant::now();
        let mut hook = ProductHook::adapter_with(&adapter, &copies)?;
        let copy = agreement::agreement(&model, &mut hook, &references)?;
        eval += start.elapsed();
        points.push(Point {
            queries,
            copy,
            weight_error_mean: errors.iter().sum::<f64>() / errors.len().max(1) as f64,
            weight_error_max: errors.iter().copied().fold(0.0, f64::max),
        });
        progress.advance();
    }
    progress.finish();

    let adapted_sites = (0..model.config().num_layers)
        .flat_map(|layer| crate::model::input_sites(model.config().arch, layer))
        .filter(|s| s.modules.iter().any(|m| adapter.get(s.layer, m).is_some()))
        .count();
    let requests = match &text_queries {
        None => most * sites.len(),
        Some(prompts) => prompts.iter().map(Vec::len).sum::<usize>() * adapted_sites,
    } as u64;
    let report = BehaviourReport {
        model: source.display().to_string(),
        adapter: adapter_dir.display().to_string(),
        design: args.design,
        prompts: prompts.as_ref().map(PromptSource::name),
        pll: !settings.is_off(),
        noise: settings.noise,
        flooding: settings.flooding,
        budget_per_client: (!settings.is_off()).then_some(settings.budget),
        clients: args.clients as usize,
        queries_per_client: attacker.queries_per_client.clone(),
        requests,
        layers: [layers.start, layers.end],
        attacked_sites: sites.len(),
        attacked_projections: attacked.len(),
        adapter_rank: adapter.rank,
        input_scale: text_queries.is_none().then_some(scale),
        ridge: text_queries.is_some().then_some(options.ridge),
        truncate_rank: args.truncate_rank,
        max_new_tokens: max_new,
        references,
        reference_self_agreement: reference_self.token_agreement,
        base,
        points,
        seconds: Seconds {
            setup: setup.as_secs_f64(),
            protocol: attacker.protocol.as_secs_f64(),
            fit: fit_time.as_secs_f64(),
            eval: eval.as_secs_f64(),
            total: started.elapsed().as_secs_f64(),
        },
    };
    if let Some(path) = &args.plot {
        super::plot::draw(&report, path)?;
    }
    Ok(report)
}

/// The prompts' token ids (each within the context) up to `tokens` in all: the last one
/// cut short where the count is reached.
fn text_tokens(
    texts: &[String],
    tokenizer: &crate::model::TextTokenizer,
    chat: Option<&crate::model::ChatTemplate>,
    context: usize,
    tokens: usize,
) -> Result<Vec<Vec<u32>>> {
    let mut prompts = Vec::new();
    let mut total = 0;
    for text in texts {
        if total == tokens {
            break;
        }
        let mut ids = encode_prompt(tokenizer, chat, text)?;
        ids.truncate(context.min(tokens - total));
        total += ids.len();
        prompts.push(ids);
    }
    if total < tokens {
        bail!(
            "the prompts hold {total} tokens (as a client sends them), --queries asks for \
             {tokens}: give more prompts with --prompts FILE"
        );
    }
    Ok(prompts)
}

/// The true adapter's greedy answer to each held-out prompt.
fn reference_answers(
    model: &Model,
    adapter: &LoraAdapter,
    tokenizer: &crate::model::TextTokenizer,
    chat: Option<&crate::model::ChatTemplate>,
    held_out: &[&str],
    max_new: usize,
) -> Result<Vec<Reference>> {
    let mut hook = ProductHook::adapter_without(adapter, &[]);
    let progress = Progress::start("the true adapter's answers", held_out.len() as u64);
    let references = held_out
        .iter()
        .map(|prompt| {
            let prompt_ids = encode_prompt(tokenizer, chat, prompt)?;
            let answer_ids = agreement::greedy_answer(
                model,
                &mut hook,
                tokenizer.eos_ids(),
                &prompt_ids,
                max_new,
            )?;
            progress.advance();
            Ok(Reference {
                prompt: prompt.to_string(),
                answer: tokenizer.decode(&answer_ids)?,
                prompt_ids,
                answer_ids,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    progress.finish();
    Ok(references)
}

/// Every attacked projection's copy from the first `queries` of its site.
fn fit_copies(
    observed: &[Observations],
    queries: usize,
    options: &FitOptions,
) -> Result<Vec<(ProjectionKey, helora::pll::attack::linalg::Mat)>> {
    let mut copies = Vec::new();
    for site in observed {
        let fitted = fit::fit(site, queries, options)?;
        copies.extend(site.site.keys().zip(fitted));
    }
    Ok(copies)
}

impl BehaviourReport {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let pll = if self.pll {
            format!(
                "on (σ = {}, flooding {}, budget {} per id and projection)",
                self.noise,
                if self.flooding { "on" } else { "off" },
                self.budget_per_client.unwrap_or_default()
            )
        } else {
            "off".into()
        };
        let design = match (&self.prompts, self.input_scale) {
            (Some(prompts), _) => format!(
                "text ({prompts} prompts, ridge {:e})",
                self.ridge.unwrap_or_default()
            ),
            (None, Some(scale)) => format!("basis (inputs {scale}·√d_in·e_i)"),
            (None, None) => "basis".into(),
        };
        let rows = [
            ("adapter", self.adapter.clone()),
            ("design", design),
            ("pll", pll),
            (
                "attacked",
                format!(
                    "layers {}..{}: {} sites, {} projections (rank {}{})",
                    self.layers[0],
                    self.layers[1],
                    self.attacked_sites,
                    self.attacked_projections,
                    self.adapter_rank,
                    if self.truncate_rank {
                        ", copies truncated to it"
                    } else {
                        ""
                    }
                ),
            ),
            (
                "client ids",
                format!(
                    "{} (queries per id and projection: {:?})",
                    self.clients, self.queries_per_client
                ),
            ),
            (
                "held out",
                format!(
                    "{} domain prompts, greedy answers of ≤ {} tokens",
                    self.references.len(),
                    self.max_new_tokens
                ),
            ),
        ];
        for (k, v) in rows {
            out += &format!("{k:<12} {v}\n");
        }
        let n = self.references.len();
        out += &format!(
            "\n{:>8}  {:>15}  {:>15}  {:>12}\n",
            "queries", "token agreement", "answers equal", "ΔW error"
        );
        out += &format!(
            "{:>8}  {:>15.3}  {:>15}  {:>12}\n",
            "base",
            self.base.token_agreement,
            format!("{}/{n}", self.base.answers_equal),
            "—"
        );
        for p in &self.points {
            out += &format!(
                "{:>8}  {:>15.3}  {:>15}  {:>12.3e}\n",
                p.queries,
                p.copy.token_agreement,
                format!("{}/{n}", p.copy.answers_equal),
                p.weight_error_mean
            );
        }
        let s = &self.seconds;
        out += &format!(
            "\ntime         {:.1} s ({:.1} s setup, {:.1} s protocol, {:.1} s fit, {:.1} s eval)\n",
            s.total, s.setup, s.protocol, s.fit, s.eval
        );
        out
    }
}
