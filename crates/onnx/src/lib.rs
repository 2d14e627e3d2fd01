//! Lathe's ONNX engine: graphs exported from Keras (tf2onnx), PyTorch (`torch.onnx.export`)
//! and scikit-learn (skl2onnx), checked at import and served with tract
//! (<https://github.com/sonos/tract>), a pure-Rust ONNX runtime.
//!
//! - [`graph`] reads a file and refuses, by name, what tract does not run: operators, the
//!   default operator set outside 9–18, input types Lathe does not carry, external data
//!   outside the file's folder.
//! - [`plan`] types and optimizes the graph: one plan for every shape, and per value of the
//!   symbolic dimensions other than the batch (a sequence length) a plan made for it, in a
//!   bounded least-recently-used cache.
//! - [`OnnxModel`] serves it behind [`lathe_engine::Servable`]: requests are batched along
//!   the first dimension when every input and output starts with the same symbolic one,
//!   run one at a time otherwise.
//! - [`import::prepare`] makes a version's files and manifest (kind `onnx`).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod convert;
mod error;
pub mod graph;
pub mod import;
pub mod plan;
mod servable;

pub use error::OnnxError;
pub use import::{prepare, OnnxImport};
pub use lathe_engine::Batching;
pub use lathe_formats::ONNX_KIND;
pub use servable::{OnnxLoader, OnnxModel, PLATFORM};
