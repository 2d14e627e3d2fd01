//! Lathe training: read a data set, fit a spec'd model on the native engine, evaluate it.
//!
//! The pieces are separate so that each can be tested on its own and reused by the server's
//! training jobs: [`data`] decodes files into raw samples, [`prepare()`] splits them and fits
//! the preprocessing, [`fit()`] runs the loop, [`metrics`] scores predictions. Publishing the
//! result is the registry's job, not this crate's.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod checkpoint;
mod columns;
pub mod data;
mod defaults;
mod error;
mod evaluate;
mod evaluate_servable;
mod events;
mod fit;
mod loss;
pub mod metrics;
mod optim;
mod prepare;
mod shard;
mod version;

pub use checkpoint::{CheckpointState, CheckpointStore};
pub use columns::{encode_samples, fit_columns};
pub use defaults::default_spec;
pub use error::TrainError;
pub use evaluate::{evaluate_version, label_columns_for};
pub use evaluate_servable::evaluate_servable;
pub use events::Event;
pub use fit::{auto_threads, fit, FitOptions, FitResult, PhaseTimes};
pub use loss::{class_probabilities, predicted_class, Loss};
pub use optim::{learning_rate, Optimizer};
pub use prepare::{prepare, Prepared, Split};
pub use version::{rfc3339_now, version_files, DataSource, VersionFiles, SEQUENTIAL_KIND};
