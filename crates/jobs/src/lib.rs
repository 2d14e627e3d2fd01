//! [`train_version`]: the one way a spec and a data set become a published version, shared by
//! `lathe train` and the job runner.
//!
//! Training jobs: submitted over the API, queued (at most `max_concurrent` run at once), run
//! on their own threads with epoch checkpoints, and published as model versions.
//!
//! Every state change is written to the metadata store first, so a restarted server finds
//! its jobs: queued ones run, interrupted ones resume from their last checkpoint. Progress
//! goes to subscribers (the SSE stream) through a broadcast channel per job.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod claims;
mod evaluations;
mod request;
mod runner;
mod train_version;

pub use claims::{ClaimConfig, CHECKPOINT_AREA, DATASET_AREA};
pub use evaluations::{dataset_digest, evaluate};
pub use request::{AutoPromote, JobRequest};
pub use runner::{JobEvent, JobRunner, JobsConfig};
pub use train_version::{train_version, JobOrigin, TrainObserver, TrainRun, TrainedVersion, VersionError};
