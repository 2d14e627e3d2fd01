//! Lathe's transformer engine: sentence-embedding encoders.
//!
//! An [`Embedder`] is a Hugging Face sentence-transformers folder (BERT-family `config.json`,
//! `model.safetensors`, `tokenizer.json`, pooling and normalisation modules) loaded for
//! inference on the CPU: texts are tokenised (truncated to the model's `max_seq_length`),
//! run through the encoder, pooled (mean, CLS or last token, as the pooling config says)
//! and, when the model has a Normalize module, L2-normalised. The encoder is Lathe's own
//! ([`encoder`]: packed sequences, bfloat16 or f32 products) or candle's BERT ([`Backend`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod embedder;
pub mod encoder;
mod error;
mod import;
mod servable;

pub use embedder::{Backend, Embedder, Pooling, TokenizedBatch};
pub use error::EmbedError;
pub use import::import_hf;
pub use servable::{embedding_signature, platform_of, EmbeddingLoader, EmbeddingModel, EMBEDDING_KIND};
