//! Lathe's sequential-network engine: Keras-like models (dense, convolution, pooling, batch
//! norm, dropout, activations) with forward and backward passes written directly on the GEMM
//! of `lathe-kernels`, for training and for serving spec models.
//!
//! Why not a general tensor library: at the batch sizes small models train with, general
//! engines spend most of their time on per-operation overhead (allocation, dispatch,
//! threading), not arithmetic. Here every buffer lives in a reusable [`Workspace`], bias and
//! activation are fused into the layer that produces them, and the heavy lifting is one
//! `sgemm` call per layer and pass. The layers keep Keras' parameter layouts so weights can
//! be compared with, and moved to, the Python stacks.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod activation;
mod error;
mod insight;
mod layer;
mod layers;
mod model;
mod network;
mod rng;
mod servable;

pub use error::EngineError;
pub use layer::{Param, Scratch};
pub use model::SequentialModel;
pub use network::{Gradients, Network, Workspace};
pub use rng::Rng;
pub use servable::{SequentialLoader, PLATFORM};

/// Kind of model (in the manifest) this engine builds.
pub use lathe_formats::SEQUENTIAL_KIND;
