//! What `generate`, `chat` and `bench generate` share: opening a `causal-lm` version, the
//! thread pool, and sampling flags.

use anyhow::{bail, Context, Result};
use clap::Args;
use lathe_generation::{LanguageModel, SamplingParams};
use lathe_types::ModelRef;

use crate::Cli;

/// Opens the `causal-lm` version `model` names.
pub fn open(cli: &Cli, model: &ModelRef) -> Result<LanguageModel> {
    let info = cli.synced(Some(&model.name))?.resolve(model)?;
    let Some(spec) = info.manifest.causal_lm() else {
        bail!(
            "{}:{} is a {} model; text generation needs a causal-lm (import one with `lathe import gguf|hf`)",
            info.name,
            info.version,
            info.manifest.kind()
        );
    };
    lathe_generation::import::open_version(&info.path, spec)
        .with_context(|| format!("loading {}:{}", info.name, info.version))
}

/// Sizes rayon's global pool: `threads` (0: one per core).
pub fn set_threads(threads: usize) -> Result<()> {
    if threads > 0 {
        rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("starting the thread pool")?;
    }
    Ok(())
}

/// Sampling flags; unset ones take the model's generation_config.json, else OpenAI's defaults.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, env = "LATHE_MAX_TOKENS", default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature, 0 to 2 (0: greedy, always the most likely token).
    #[arg(long, env = "LATHE_TEMPERATURE")]
    pub temperature: Option<f32>,
    /// Nucleus sampling: keep the most likely tokens whose probabilities sum to this.
    #[arg(long, env = "LATHE_TOP_P")]
    pub top_p: Option<f32>,
    /// Keep only the k most likely tokens (0: all).
    #[arg(long, env = "LATHE_TOP_K")]
    pub top_k: Option<usize>,
    /// Drop tokens less likely than this fraction of the most likely one.
    #[arg(long, env = "LATHE_MIN_P")]
    pub min_p: Option<f32>,
    /// Seed of the draws: the same seed, prompt and settings give the same text.
    #[arg(long, env = "LATHE_SEED")]
    pub seed: Option<u64>,
    /// Penalty on tokens already seen (1: none; >1 discourages repeats).
    #[arg(long, env = "LATHE_REPETITION_PENALTY")]
    pub repetition_penalty: Option<f32>,
    /// Stop when this text is generated (repeatable, at most 4).
    #[arg(long, env = "LATHE_STOP", value_delimiter = ',')]
    pub stop: Vec<String>,
    /// Threads for the forward pass (0: one per core).
    #[arg(long, env = "LATHE_THREADS", default_value_t = 0)]
    pub threads: usize,
}

impl SamplingArgs {
    /// The sampling parameters: flags, then the model's defaults, then OpenAI's.
    pub fn params(&self, model: &LanguageModel) -> SamplingParams {
        let d = &model.defaults;
        let base = SamplingParams::default();
        SamplingParams {
            temperature: self.temperature.or(d.temperature).unwrap_or(base.temperature),
            top_p: self.top_p.or(d.top_p).unwrap_or(base.top_p),
            top_k: self.top_k.or(d.top_k).unwrap_or(base.top_k),
            min_p: self.min_p.or(d.min_p).unwrap_or(base.min_p),
            seed: self.seed,
            repetition_penalty: self.repetition_penalty.or(d.repetition_penalty).unwrap_or(base.repetition_penalty),
            ..base
        }
    }
}
