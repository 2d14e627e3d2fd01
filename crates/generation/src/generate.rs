//! The generation loop: prompt processing (with the KV cache's common prefix reused), then one
//! token at a time — sample, check end-of-generation tokens and stop strings, decode to text
//! without splitting characters — until a stop, the token limit or the context's end.

use std::time::Instant;

use thiserror::Error;

use crate::decoder::{KvCache, OpTimes};
use crate::model::LanguageModel;
use crate::sampling::{Sampler, SamplingError};
use crate::stop::StopStrings;
use crate::tokenizer::Detokenizer;

/// Prompt tokens run per forward pass.
const PREFILL_CHUNK: usize = 512;

/// Most alternatives per position in logprobs (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// One generation: a prompt and everything else about it.
#[derive(Debug, Clone)]
pub struct Request {
    /// Prompt token ids (at least one).
    pub prompt: Vec<u32>,
    /// Sampling, limits, stops and logprobs.
    pub params: GenerationParams,
}

impl Request {
    /// A request for `prompt` with OpenAI's defaults and `max_tokens`.
    pub fn new(prompt: Vec<u32>, max_tokens: usize) -> Request {
        Request { prompt, params: GenerationParams::new(max_tokens) }
    }
}

pub use lathe_engine::generation::{FinishReason, TokenLogprob};
use lathe_engine::generation::{GenerationParams, TokenStep};

/// Where the time went, as llama.cpp's server reports it.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// Prompt tokens run (those not found in the KV cache).
    pub prompt_tokens: usize,
    /// Milliseconds spent on them.
    pub prompt_ms: f64,
    /// Tokens generated.
    pub predicted_tokens: usize,
    /// Milliseconds spent generating.
    pub predicted_ms: f64,
    /// Time per operation over the whole request.
    pub ops: OpTimes,
}

impl Timings {
    /// Prompt tokens per second.
    pub fn prompt_per_second(&self) -> f64 {
        per_second(self.prompt_tokens, self.prompt_ms)
    }

    /// Generated tokens per second.
    pub fn predicted_per_second(&self) -> f64 {
        per_second(self.predicted_tokens, self.predicted_ms)
    }
}

fn per_second(tokens: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        tokens as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The generated text (stop strings and end tokens left out).
    pub text: String,
    /// The generated token ids (the ending token left out).
    pub token_ids: Vec<u32>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens sampled (the ending token included).
    pub completion_tokens: usize,
    /// Per generated token, when asked for.
    pub logprobs: Vec<TokenLogprob>,
    /// Speed.
    pub timings: Timings,
}

/// A request that cannot run.
#[derive(Debug, Error)]
pub enum GenerateError {
    /// A sampling parameter or stop list is out of range.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// The prompt does not fit the context.
    #[error("prompt: {prompt} tokens do not fit the model's context of {context} tokens")]
    ContextExceeded {
        /// Prompt tokens.
        prompt: usize,
        /// Context length.
        context: usize,
    },
    /// The prompt has no token, or one outside the vocabulary.
    #[error("prompt: {0}")]
    Prompt(String),
}

/// A sequence's KV cache and the tokens it holds, kept between requests so that a prompt
/// that extends the previous one (a chat) runs only its new tokens.
pub struct Session {
    cache: KvCache,
    tokens: Vec<u32>,
}

impl Session {
    /// An empty session for `model`.
    pub fn new(model: &LanguageModel) -> Session {
        Session { cache: model.decoder.new_cache(), tokens: Vec::new() }
    }

    /// Tokens in the KV cache.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the KV cache is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

pub(crate) fn check_params(model: &LanguageModel, params: &GenerationParams) -> Result<(), GenerateError> {
    params.sampling.validate(model.decoder.config().vocab_size)?;
    if params.top_logprobs.is_some_and(|n| n > MAX_TOP_LOGPROBS) {
        let message = format!("expected at most {MAX_TOP_LOGPROBS}");
        return Err(SamplingError { field: "top_logprobs", message }.into());
    }
    StopStrings::new(params.stop.clone())?;
    Ok(())
}

fn check(model: &LanguageModel, req: &Request) -> Result<(), GenerateError> {
    let (vocab, context) = (model.decoder.config().vocab_size, model.decoder.config().context_length);
    check_params(model, &req.params)?;
    if req.prompt.is_empty() {
        return Err(GenerateError::Prompt("expected at least one token".into()));
    }
    if let Some(bad) = req.prompt.iter().find(|&&id| id as usize >= vocab) {
        return Err(GenerateError::Prompt(format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    if req.prompt.len() >= context {
        return Err(GenerateError::ContextExceeded { prompt: req.prompt.len(), context });
    }
    Ok(())
}

/// Runs the prompt's tokens that `session` does not hold yet; returns the last logits.
fn prefill(model: &LanguageModel, session: &mut Session, prompt: &[u32], t: &mut Timings) -> Vec<f32> {
    let mut common = session.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
    if common == prompt.len() {
        common -= 1; // the last prompt token must run again to give logits
    }
    session.cache.truncate(common);
    session.tokens.truncate(common);
    let start = Instant::now();
    let mut logits = Vec::new();
    for chunk in prompt[common..].chunks(PREFILL_CHUNK) {
        logits = model.decoder.run(chunk, &mut session.cache, &mut t.ops);
        session.tokens.extend_from_slice(chunk);
    }
    t.prompt_tokens = prompt.len() - common;
    t.prompt_ms = start.elapsed().as_secs_f64() * 1000.0;
    logits
}

/// Log-probability of `id` and the `top` most likely tokens under `logits`.
fn logprobs_of(logits: &[f32], id: u32, top: usize) -> TokenLogprob {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let log_z = max + logits.iter().map(|&v| ((v - max) as f64).exp()).sum::<f64>().ln() as f32;
    let mut best: Vec<u32> = Vec::with_capacity(top + 1);
    for (i, &v) in logits.iter().enumerate() {
        if best.len() < top || best.last().is_some_and(|&b| v > logits[b as usize]) {
            let at = best.partition_point(|&b| logits[b as usize] >= v);
            best.insert(at, i as u32);
            best.truncate(top);
        }
    }
    TokenLogprob {
        id,
        logprob: logits[id as usize] - log_z,
        top: best.into_iter().map(|b| (b, logits[b as usize] - log_z)).collect(),
    }
}

/// The per-token side of one generation: sampling, end-of-generation and stop tokens, stop
/// strings, `max_tokens`, and decoding to text that never splits a character. Shared by
/// [`generate`] and the served engine's sequences.
pub struct Decoding {
    sampler: Sampler,
    detok: Detokenizer,
    stops: StopStrings,
    max_tokens: usize,
    sampled: usize,
    top_logprobs: Option<usize>,
    ignore_eos: bool,
    stop_token_ids: Vec<u32>,
}

impl Decoding {
    /// The decoding of `params` (checked by the caller; an invalid stop list errors here).
    pub fn new(params: &GenerationParams) -> Result<Decoding, SamplingError> {
        Ok(Decoding {
            sampler: Sampler::new(params.sampling.clone()),
            detok: Detokenizer::default(),
            stops: StopStrings::new(params.stop.clone())?,
            max_tokens: params.max_tokens,
            sampled: 0,
            top_logprobs: params.top_logprobs,
            ignore_eos: params.ignore_eos,
            stop_token_ids: params.stop_token_ids.clone(),
        })
    }

    /// Tokens sampled so far (an ending token included).
    pub fn sampled(&self) -> usize {
        self.sampled
    }

    /// Samples from `logits` (changed in place) and decides what the token does.
    pub fn step(&mut self, model: &LanguageModel, logits: &mut [f32], prompt: &[u32], generated: &[u32]) -> TokenStep {
        let raw = self.top_logprobs.map(|top| (logits.to_vec(), top));
        let id = self.sampler.sample(logits, prompt, generated);
        self.sampled += 1;
        let ends = (!self.ignore_eos && model.end_of_generation.contains(&id)) || self.stop_token_ids.contains(&id);
        if ends {
            return TokenStep {
                id,
                text: self.finish(),
                emitted: false,
                logprob: None,
                finish: Some(FinishReason::Stop),
            };
        }
        let logprob = raw.map(|(raw, top)| logprobs_of(&raw, id, top));
        let checked = self.stops.push(&self.detok.push(&model.tokenizer.token_bytes(id, false)));
        let mut step = TokenStep { id, text: checked.text, emitted: true, logprob, finish: None };
        if checked.stopped {
            step.finish = Some(FinishReason::Stop);
        } else if self.sampled >= self.max_tokens {
            step.text += &self.finish();
            step.finish = Some(FinishReason::Length);
        }
        step
    }

    /// Ends generation: what was held back (a partial character, a possible stop string).
    pub fn finish(&mut self) -> String {
        self.stops.push(&self.detok.finish()).text + &self.stops.finish()
    }
}

/// Generates for `req`, reusing what `session` holds; `on_text` receives text as soon as it
/// is final and returns `false` to stop.
pub fn generate(
    model: &LanguageModel,
    session: &mut Session,
    req: &Request,
    on_text: &mut dyn FnMut(&str) -> bool,
) -> Result<Completion, GenerateError> {
    check(model, req)?;
    let mut decoding = Decoding::new(&req.params)?;
    let mut timings = Timings::default();
    let mut logits = prefill(model, session, &req.prompt, &mut timings);
    let context = model.decoder.config().context_length;
    let (mut text, mut ids, mut logprobs) = (String::new(), Vec::new(), Vec::new());
    let (mut finish, start) = (None, Instant::now());
    if req.params.max_tokens == 0 {
        finish = Some(FinishReason::Length);
    }
    while finish.is_none() {
        let step = decoding.step(model, &mut logits, &req.prompt, &ids);
        if step.emitted {
            ids.push(step.id);
            logprobs.extend(step.logprob);
        }
        text.push_str(&step.text);
        finish = step.finish;
        if !step.text.is_empty() && !on_text(&step.text) && finish.is_none() {
            finish = Some(FinishReason::Cancelled);
        }
        if finish.is_none() && session.len() >= context {
            let rest = decoding.finish();
            if !rest.is_empty() {
                on_text(&rest);
                text.push_str(&rest);
            }
            finish = Some(FinishReason::Length);
        }
        if finish.is_none() {
            logits = model.decoder.run(&[step.id], &mut session.cache, &mut timings.ops);
            session.tokens.push(step.id);
        }
    }
    timings.predicted_tokens = decoding.sampled();
    timings.predicted_ms = start.elapsed().as_secs_f64() * 1000.0;
    Ok(Completion {
        text,
        token_ids: ids,
        finish_reason: finish.unwrap_or(FinishReason::Length),
        prompt_tokens: req.prompt.len(),
        completion_tokens: decoding.sampled(),
        logprobs,
        timings,
    })
}
