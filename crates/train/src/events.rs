//! Progress events of a training run, for progress bars and `--json` consumers.

use lathe_formats::EpochRecord;
use serde::{Deserialize, Serialize};

/// Something that happened during a fit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// An epoch starts.
    EpochStart {
        /// Epoch number, from 1.
        epoch: usize,
        /// Total epochs planned.
        epochs: usize,
        /// Training samples in the epoch.
        samples: usize,
    },
    /// Batches were processed (sent every few batches and at the end of the epoch).
    Progress {
        /// Epoch number, from 1.
        epoch: usize,
        /// Samples processed so far in the epoch.
        seen: usize,
        /// Training samples in the epoch.
        samples: usize,
        /// Running mean loss.
        loss: f64,
        /// Running accuracy (classifiers).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        accuracy: Option<f64>,
    },
    /// An epoch ended.
    EpochEnd(EpochRecord),
    /// The run continues from a checkpoint.
    Resumed {
        /// Epochs already done.
        epochs_done: usize,
    },
    /// Early stopping ended the run.
    EarlyStop {
        /// Last epoch run.
        epoch: usize,
        /// Epoch whose weights are kept.
        best_epoch: usize,
    },
}
