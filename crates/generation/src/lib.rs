//! Lathe's text-generation engine: decoder-only language models (Llama, Mistral, Qwen2) read
//! from GGUF files and Hugging Face folders, with their tokenizers and chat templates.
//!
//! - [`gguf`], [`hf`]: a GGUF file or a folder's safetensors mapped into memory and checked
//!   before anything is built from them; `config.json` in both RoPE forms.
//! - [`config`], [`weights`], [`decoder`]: a decoder's hyperparameters, its weights as views
//!   of the maps, and the forward pass over new tokens with a KV cache.
//! - [`tokenizer`]: GGUF vocabularies as llama.cpp tokenizes them, `tokenizer.json` as
//!   transformers does; decoding that never splits a character.
//! - [`chat`]: chat templates rendered as transformers renders them.
//! - [`sampling`], [`stop`], [`generate`]: choosing tokens, stop strings, the generation loop.
//! - [`model`], [`import`]: a model ready to generate, and checking one before it is published.
//! - [`served`]: a published version as the engine contract's `TextGenerator`, for the
//!   runtime's scheduler (continuous batching over a paged KV cache).
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
pub mod served;
pub mod stop;
pub mod tokenizer;
pub mod weights;

pub use chat::{ChatTemplate, Message, TemplateError};
pub use config::{Architecture, DecoderConfig, RopeStyle};
pub use decoder::{Decoder, KvCache};
pub use generate::{generate, Completion, Decoding, FinishReason, GenerateError, Request, Session, TokenLogprob};
pub use gguf::{GgufError, GgufFile, MetadataValue, TensorSlice};
pub use model::{GenerationDefaults, LanguageModel, LoadError, ModelFacts, PromptError};
pub use sampling::{Sampler, SamplingError, SamplingParams};
pub use served::{CausalLmLoader, CausalLmModel, Generator};
pub use stop::{Checked, StopStrings};
pub use tokenizer::{Detokenizer, TextTokenizer, TokenType, TokenizerError};
pub use weights::{Weights, WeightsError};
