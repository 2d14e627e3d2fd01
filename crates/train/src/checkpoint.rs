//! Epoch-end checkpoints, so that an interrupted or killed run can continue with `--resume`.
//!
//! A checkpoint is two files written atomically in order: `checkpoint.safetensors` (weights,
//! optimizer moments, best weights) and then `checkpoint.json` (progress, with the sha256 of
//! the tensor file). A crash between the two leaves a JSON whose digest does not match, which
//! is reported instead of resuming from a mix of two epochs.

use std::path::{Path, PathBuf};

use lathe_formats::atomic::{sha256_hex, write_atomic};
use lathe_formats::{read_weights, write_weights, EpochRecord, NamedTensor};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

const TENSORS: &str = "checkpoint.safetensors";
const STATE: &str = "checkpoint.json";

/// Progress of a run at the end of an epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Their metrics.
    pub history: Vec<EpochRecord>,
    /// Best monitored value so far (early stopping).
    pub best_value: Option<f64>,
    /// Epoch of the best value.
    pub best_epoch: usize,
    /// Epochs since the best value.
    pub wait: usize,
    /// Optimizer steps taken.
    pub optimizer_step: u64,
    /// Canonical spec of the run.
    pub spec: serde_json::Value,
    /// Fingerprint of the data.
    pub data_fingerprint: String,
    /// Seed of the run.
    pub seed: u64,
    /// Fit seconds spent before the checkpoint.
    pub fit_seconds: f64,
    /// sha256 of the tensor file this state belongs to.
    pub tensors_sha256: String,
}

/// A folder holding the checkpoint of one training run.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    dir: PathBuf,
}

fn ck_err(dir: &Path, what: &str, e: impl std::fmt::Display) -> TrainError {
    TrainError::Checkpoint(format!("{}: {what}: {e}", dir.display()))
}

impl CheckpointStore {
    /// A store in `dir` (created when the first checkpoint is written).
    pub fn new(dir: impl Into<PathBuf>) -> CheckpointStore {
        CheckpointStore { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a checkpoint exists.
    pub fn exists(&self) -> bool {
        self.dir.join(STATE).is_file()
    }

    /// Writes a checkpoint, replacing the previous one.
    pub fn save(&self, mut state: CheckpointState, tensors: &[NamedTensor]) -> Result<(), TrainError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| ck_err(&self.dir, "cannot create", e))?;
        let bytes = write_weights(tensors, None).map_err(|e| ck_err(&self.dir, "cannot encode", e))?;
        state.tensors_sha256 = sha256_hex(&bytes);
        write_atomic(&self.dir.join(TENSORS), &bytes).map_err(|e| ck_err(&self.dir, "cannot write", e))?;
        let json = serde_json::to_vec_pretty(&state).expect("state serialises");
        write_atomic(&self.dir.join(STATE), &json).map_err(|e| ck_err(&self.dir, "cannot write", e))
    }

    /// Reads the checkpoint.
    pub fn load(&self) -> Result<(CheckpointState, Vec<NamedTensor>), TrainError> {
        let text = std::fs::read(self.dir.join(STATE)).map_err(|e| ck_err(&self.dir, "cannot read", e))?;
        let state: CheckpointState =
            serde_json::from_slice(&text).map_err(|e| ck_err(&self.dir, "corrupt state", e))?;
        let bytes = std::fs::read(self.dir.join(TENSORS)).map_err(|e| ck_err(&self.dir, "cannot read", e))?;
        if sha256_hex(&bytes) != state.tensors_sha256 {
            return Err(ck_err(&self.dir, "tensors do not match the state", "sha256 mismatch"));
        }
        let tensors = read_weights(&bytes).map_err(|e| ck_err(&self.dir, "corrupt tensors", e))?;
        Ok((state, tensors))
    }

    /// Deletes the checkpoint (after the version is published).
    pub fn remove(&self) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
