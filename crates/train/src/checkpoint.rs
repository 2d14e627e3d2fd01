//! Epoch-end checkpoints, so that an interrupted or killed run can continue with `--resume`.
//!
//! A checkpoint is two files written atomically in order: `checkpoint-<epoch>.safetensors`
//! (weights, optimizer moments, best weights) and then `checkpoint.json` (progress, naming that
//! tensor file and its sha256). Older tensor files are removed only after the new state is in
//! place, so a crash at any moment leaves a state whose tensor file is complete: the previous
//! epoch's, or the new one's.

use std::path::{Path, PathBuf};

use lathe_formats::atomic::{sha256_hex, write_atomic};
use lathe_formats::{read_weights, write_weights, EpochRecord, NamedTensor};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

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
    /// Name of that tensor file in the checkpoint folder.
    #[serde(default)]
    pub tensors_file: String,
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
        let file = format!("checkpoint-{}.safetensors", state.epochs_done);
        state.tensors_sha256 = sha256_hex(&bytes);
        state.tensors_file = file.clone();
        write_atomic(&self.dir.join(&file), &bytes).map_err(|e| ck_err(&self.dir, "cannot write", e))?;
        let json = serde_json::to_vec_pretty(&state).expect("state serialises");
        write_atomic(&self.dir.join(STATE), &json).map_err(|e| ck_err(&self.dir, "cannot write", e))?;
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("checkpoint-") && name.ends_with(".safetensors") && name != file {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// Reads the checkpoint.
    pub fn load(&self) -> Result<(CheckpointState, Vec<NamedTensor>), TrainError> {
        let text = std::fs::read(self.dir.join(STATE)).map_err(|e| ck_err(&self.dir, "cannot read", e))?;
        let state: CheckpointState =
            serde_json::from_slice(&text).map_err(|e| ck_err(&self.dir, "corrupt state", e))?;
        let bytes =
            std::fs::read(self.dir.join(&state.tensors_file)).map_err(|e| ck_err(&self.dir, "cannot read", e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(epochs_done: usize) -> CheckpointState {
        CheckpointState {
            epochs_done,
            history: vec![],
            best_value: None,
            best_epoch: 0,
            wait: 0,
            optimizer_step: epochs_done as u64,
            spec: serde_json::json!({}),
            data_fingerprint: "f".into(),
            seed: 1,
            fit_seconds: 0.0,
            tensors_sha256: String::new(),
            tensors_file: String::new(),
        }
    }

    fn tensors(x: f32) -> Vec<NamedTensor> {
        vec![NamedTensor { name: "w".into(), shape: vec![1], data: vec![x] }]
    }

    #[test]
    fn a_crash_between_the_two_writes_leaves_the_previous_epoch_loadable() {
        let dir = tempfile::tempdir().unwrap();
        let store = CheckpointStore::new(dir.path().join("ck"));
        store.save(state(1), &tensors(1.0)).unwrap();
        // The next epoch's tensors are written, then the process dies before the state.
        std::fs::write(dir.path().join("ck/checkpoint-2.safetensors"), write_weights(&tensors(2.0), None).unwrap())
            .unwrap();
        let (s, t) = store.load().unwrap();
        assert_eq!((s.epochs_done, t[0].data[0]), (1, 1.0));
        store.save(state(2), &tensors(2.0)).unwrap();
        let (s, t) = store.load().unwrap();
        assert_eq!((s.epochs_done, t[0].data[0]), (2, 2.0));
        let files: Vec<_> = std::fs::read_dir(dir.path().join("ck")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "only the state and the current tensors remain: {files:?}");
    }
}
