//! The contract of text-generation engines: a [`TextGenerator`] runs forward passes of many
//! sequences at once over a paged KV cache ([`KvBlocks`]) that the runtime's scheduler owns
//! and allocates, and makes one [`TokenSequence`] per request that turns logits into tokens
//! and text (sampling, end tokens, stop strings, detokenization).
//!
//! The paging follows vLLM's PagedAttention (Kwon et al. 2023): token position `p` of a
//! sequence lives in slot `p % block_size` of block `blocks[p / block_size]`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use lathe_types::ApiError;

/// A sampling parameter out of range; the message names it and the range.
#[derive(Debug, Error, PartialEq)]
#[error("{field}: {message}")]
pub struct SamplingError {
    /// The parameter (`temperature`, `logit_bias`, …).
    pub field: &'static str,
    /// What was expected.
    pub message: String,
}

/// Most `logit_bias` entries (OpenAI's limit).
pub const MAX_LOGIT_BIAS: usize = 300;

/// How to choose tokens (OpenAI's defaults: temperature 1, top_p 1, no penalties).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 chooses the most likely token; higher values flatten the distribution (0 to 2).
    pub temperature: f32,
    /// Keep the smallest set of most likely tokens whose probabilities sum to at least this.
    pub top_p: f32,
    /// Keep only the `top_k` most likely tokens (0: all).
    pub top_k: usize,
    /// Drop tokens less likely than `min_p` times the most likely one (0: none).
    pub min_p: f32,
    /// Seed of the draws: the same seed, prompt and parameters give the same text.
    pub seed: Option<u64>,
    /// Divides positive logits (multiplies negative ones) of tokens already seen (1: off).
    pub repetition_penalty: f32,
    /// Subtracted once from the logit of every token already generated (−2 to 2).
    pub presence_penalty: f32,
    /// Subtracted per occurrence from the logit of generated tokens (−2 to 2).
    pub frequency_penalty: f32,
    /// Added to the logits of these token ids (−100 to 100).
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            seed: None,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: Vec::new(),
        }
    }
}

fn check(ok: bool, field: &'static str, message: &str) -> Result<(), SamplingError> {
    match ok {
        true => Ok(()),
        false => Err(SamplingError { field, message: message.into() }),
    }
}

impl SamplingParams {
    /// Checks every parameter against its range for a vocabulary of `vocab_size` tokens.
    pub fn validate(&self, vocab_size: usize) -> Result<(), SamplingError> {
        check((0.0..=2.0).contains(&self.temperature), "temperature", "expected a number from 0 to 2")?;
        check(self.top_p > 0.0 && self.top_p <= 1.0, "top_p", "expected a number above 0 and at most 1")?;
        check((0.0..=1.0).contains(&self.min_p), "min_p", "expected a number from 0 to 1")?;
        let penalty = self.repetition_penalty;
        check(penalty > 0.0 && penalty <= 2.0, "repetition_penalty", "expected a number above 0 and at most 2")?;
        check((-2.0..=2.0).contains(&self.presence_penalty), "presence_penalty", "expected a number from -2 to 2")?;
        check((-2.0..=2.0).contains(&self.frequency_penalty), "frequency_penalty", "expected a number from -2 to 2")?;
        if self.logit_bias.len() > MAX_LOGIT_BIAS {
            let message = format!("{} entries, more than {MAX_LOGIT_BIAS}", self.logit_bias.len());
            return Err(SamplingError { field: "logit_bias", message });
        }
        for &(id, bias) in &self.logit_bias {
            if (id as usize) >= vocab_size || !(-100.0..=100.0).contains(&bias) {
                let message = format!("token id {id}: expected an id below {vocab_size} with a bias from -100 to 100");
                return Err(SamplingError { field: "logit_bias", message });
            }
        }
        Ok(())
    }
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role` with `content`.
    pub fn new(role: &str, content: &str) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// Why generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-generation token, a stop token or a stop string.
    Stop,
    /// `max_tokens` or the context length was reached.
    Length,
    /// The caller stopped it.
    Cancelled,
}

impl FinishReason {
    /// OpenAI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// A generated token's log-probability and the most likely alternatives, from the model's
/// distribution (log-softmax of the raw logits, before penalties, bias and temperature).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token.
    pub id: u32,
    /// Its natural-log probability.
    pub logprob: f32,
    /// The most likely tokens and their log-probabilities, most likely first.
    pub top: Vec<(u32, f32)>,
}

/// Everything about one generation besides its prompt.
#[derive(Debug, Clone)]
pub struct GenerationParams {
    /// Sampling.
    pub sampling: SamplingParams,
    /// Most tokens to generate (at least 1).
    pub max_tokens: usize,
    /// Stop strings (at most 4), not included in the text.
    pub stop: Vec<String>,
    /// Token ids that end generation besides the model's end-of-generation tokens.
    pub stop_token_ids: Vec<u32>,
    /// Alternatives to report per generated token (`None`: no log-probabilities; at most 20).
    pub top_logprobs: Option<usize>,
    /// Keep going past the model's end-of-generation tokens.
    pub ignore_eos: bool,
}

impl GenerationParams {
    /// `max_tokens` tokens with OpenAI's sampling defaults.
    pub fn new(max_tokens: usize) -> GenerationParams {
        GenerationParams {
            sampling: SamplingParams::default(),
            max_tokens,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            top_logprobs: None,
            ignore_eos: false,
        }
    }
}

/// What one sampled token did.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenStep {
    /// The token sampled.
    pub id: u32,
    /// Text that became final with it (may be empty: a partial character or a possible stop
    /// string is held back; on the last step, whatever was held back and may be sent).
    pub text: String,
    /// Whether the token is part of the output (`false` for an end-of-generation or stop
    /// token, which ends generation without being shown).
    pub emitted: bool,
    /// Its log-probability, when asked for.
    pub logprob: Option<TokenLogprob>,
    /// Set when generation ends with this token.
    pub finish: Option<FinishReason>,
}

/// The per-request side of generation: turns each position's logits into the next token.
pub trait TokenSequence: Send {
    /// Samples the next token from `logits` (modified in place) given the prompt and the tokens
    /// generated so far; ends generation on an end token, a stop string or `max_tokens`.
    fn next(&mut self, logits: &mut [f32], prompt: &[u32], generated: &[u32]) -> TokenStep;

    /// Ends generation from outside (the context is full): the held-back text.
    fn finish(&mut self) -> String;
}

/// A pool of KV-cache blocks: `blocks × floats_per_block` f32 values whose layout inside a
/// block only the engine that made it knows.
pub struct KvBlocks {
    /// Token positions per block.
    pub block_size: usize,
    /// f32 values per block.
    pub floats_per_block: usize,
    /// The values, block after block.
    pub data: Vec<f32>,
}

impl KvBlocks {
    /// Blocks in the pool.
    pub fn len(&self) -> usize {
        self.data.len() / self.floats_per_block.max(1)
    }

    /// Whether the pool has no block.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block `id`'s values.
    ///
    /// # Panics
    /// When `id` is not a block of the pool.
    pub fn block(&self, id: u32) -> &[f32] {
        let at = id as usize * self.floats_per_block;
        &self.data[at..at + self.floats_per_block]
    }

    /// Block `id`'s values, to write.
    ///
    /// # Panics
    /// When `id` is not a block of the pool.
    pub fn block_mut(&mut self, id: u32) -> &mut [f32] {
        let at = id as usize * self.floats_per_block;
        &mut self.data[at..at + self.floats_per_block]
    }
}

/// New tokens of one sequence for one forward pass.
#[derive(Debug, Clone, Copy)]
pub struct SequenceChunk<'a> {
    /// The token ids, at positions `start..start + tokens.len()`.
    pub tokens: &'a [u32],
    /// Position of the first one (positions before it are in the KV cache).
    pub start: usize,
    /// The sequence's block table, covering at least `start + tokens.len()` positions.
    pub blocks: &'a [u32],
    /// Whether to return the logits after the last token.
    pub logits: bool,
}

/// What a generator is, for listings, limits and memory planning.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorFacts {
    /// Longest sequence (prompt and output) in tokens.
    pub context_length: usize,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// KV-cache bytes one token position takes (every layer, keys and values).
    pub kv_bytes_per_token: usize,
    /// Whether the model has a chat template.
    pub chat_template: bool,
}

/// A text-generation model, shared by the scheduler thread and the HTTP handlers.
pub trait TextGenerator: Send + Sync + 'static {
    /// What it is.
    fn facts(&self) -> GeneratorFacts;

    /// Token ids of `text`; `special` adds the BOS token the vocabulary asks for and parses
    /// special tokens written in the text.
    fn tokenize(&self, text: &str, special: bool) -> Result<Vec<u32>, ApiError>;

    /// Text of `ids` (special tokens rendered); errors name an id outside the vocabulary.
    fn detokenize(&self, ids: &[u32]) -> Result<String, ApiError>;

    /// The text of one token as it would be generated (bytes of a partial character as
    /// `\ufffd`), for log-probability listings.
    fn token_text(&self, id: u32) -> String;

    /// The prompt of a chat: the template rendered with the generation prompt, tokenized.
    fn chat_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, ApiError>;

    /// Sampling defaults the model ships (`generation_config.json`) over OpenAI's.
    fn sampling_defaults(&self) -> SamplingParams;

    /// A sequence for `params`, checked (a 400 names the field out of range).
    fn start(&self, params: &GenerationParams) -> Result<Box<dyn TokenSequence>, ApiError>;

    /// A KV-cache pool of `blocks` blocks of `block_size` positions, zeroed.
    fn new_kv_blocks(&self, blocks: usize, block_size: usize) -> KvBlocks;

    /// Runs every chunk's tokens through the model in one pass (their KV written into their
    /// blocks of `kv`); returns the logits (`vocab_size` each) of the chunks that ask for
    /// them, in order.
    fn forward(&self, chunks: &[SequenceChunk<'_>], kv: &mut KvBlocks) -> Vec<Vec<f32>>;
}
