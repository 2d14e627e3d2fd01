//! Lathe's text-generation engine: decoder-only language models read from GGUF files (and,
//! later in this crate, Hugging Face folders), with their tokenizers and chat templates.
//!
//! - [`gguf`]: a GGUF file mapped into memory, its metadata and its tensors checked against
//!   the file before anything is built from them.
//! - [`config`], [`weights`], [`decoder`]: a decoder's hyperparameters, its weights as views
//!   of the file, and the forward pass with a KV cache (the portable reference).
//! - [`sampling`]: choosing the next token (greedy, temperature, top-k/p, min-p, penalties,
//!   logit bias, seeds).
//! - [`stop`]: stop strings, also when split across tokens.
//! - [`chat`]: chat templates rendered as transformers renders them.
//! - [`tokenizer`]: the tokenizers of GGUF vocabularies, as llama.cpp tokenizes.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod chat;
pub mod config;
pub mod decoder;
pub mod generate;
pub mod gguf;
pub mod hf;
pub mod import;
pub mod model;
pub mod sampling;
pub mod stop;
pub mod tokenizer;
pub mod weights;

pub use chat::{ChatTemplate, Message, TemplateError};
pub use config::{Architecture, DecoderConfig, RopeStyle};
pub use decoder::{Decoder, KvCache};
pub use generate::{generate, Completion, FinishReason, GenerateError, Request, Session, TokenLogprob};
pub use gguf::{GgufError, GgufFile, MetadataValue, TensorSlice};
pub use model::{GenerationDefaults, LanguageModel, LoadError, ModelFacts, PromptError};
pub use sampling::{Sampler, SamplingError, SamplingParams};
pub use stop::{Checked, StopStrings};
pub use tokenizer::{Detokenizer, TextTokenizer, TokenType, TokenizerError};
pub use weights::{Weights, WeightsError};
