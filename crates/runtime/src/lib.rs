//! Lathe runtime: what sits between the protocol adapters and the engines.
//!
//! - The engine contract (`Servable`, `Loader`) lives in `lathe-engine`; a loaded version is
//!   immutable and shared, and engines never see HTTP.
//! - [`Batcher`]: per-version bounded queue and dedicated compute threads with dynamic
//!   batching; the async side only submits and awaits a oneshot reply.
//! - [`Manager`]: the version router (policies, labels, default routes) and the load/unload
//!   state machine (Triton's states), fed by [`Watcher`] (file notifications plus polling).
//! - [`WorkPool`]: dedicated threads behind a bounded queue for explanations and layer
//!   inspection.
//! - [`generation`]: the scheduler of language-model versions (continuous batching over a
//!   paged KV cache with prefix caching and recompute preemption).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod batcher;
mod config;
pub mod generation;
mod manager;
pub mod stats;
mod watcher;
mod work_pool;

pub use batcher::{BatchConfig, Batcher, Reply};
pub use config::{ModelConfig, VersionPolicy};
pub use manager::{
    IndexEntry, LoadState, LoadedVersion, Manager, ModelView, Routed, Selector, ServeOptions, VersionView,
};
pub use watcher::Watcher;
pub use work_pool::WorkPool;
