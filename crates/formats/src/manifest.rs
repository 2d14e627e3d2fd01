use std::collections::BTreeMap;

use lathe_types::Signature;
use serde::{Deserialize, Serialize};

use crate::Preprocessing;

/// File name of the manifest inside a version folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights inside a version folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Schema version of `manifest.json` written by this build.
pub const MANIFEST_FORMAT: u32 = 1;

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class name.
    pub class: String,
    /// TP / (TP + FP); 0 when the class is never predicted.
    pub precision: f64,
    /// TP / (TP + FN); 0 when the class never occurs.
    pub recall: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
    /// Number of samples whose true class this is.
    pub support: u64,
}

/// Evaluation of a model on a labelled data set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Samples evaluated.
    pub samples: u64,
    /// Mean loss.
    pub loss: f64,
    /// Fraction classified correctly.
    pub accuracy: f64,
    /// Unweighted mean of the per-class precisions.
    pub macro_precision: f64,
    /// Unweighted mean of the per-class recalls.
    pub macro_recall: f64,
    /// Unweighted mean of the per-class F1 scores.
    pub macro_f1: f64,
    /// Per-class figures, in class order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
}

/// Metrics of one training epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Training accuracy over the epoch.
    pub accuracy: f64,
    /// Validation loss, when a validation split exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    /// Validation accuracy, when a validation split exists.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_accuracy: Option<f64>,
    /// Learning rate used in the epoch (at its start).
    pub lr: f64,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// Where the training data came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataLineage {
    /// The path given by the user.
    pub source: String,
    /// Dataset format (`idx`, `csv`).
    pub format: String,
    /// sha256 over the decoded samples and labels of every split.
    pub fingerprint: String,
    /// Samples used for gradient steps.
    pub train_samples: u64,
    /// Samples held out for validation.
    pub validation_samples: u64,
    /// Samples in the test split the metrics were measured on.
    pub test_samples: u64,
}

/// How the training run went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Epochs completed.
    pub epochs_run: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Wall time of the fit, data loading excluded.
    pub fit_seconds: f64,
    /// Whether the run was resumed from a checkpoint.
    pub resumed: bool,
}

/// Where a version trained by a job came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobLineage {
    /// The job id.
    pub job: String,
    /// The dataset name.
    pub dataset: String,
    /// sha256 over the dataset's file digests (name order).
    pub dataset_sha256: String,
    /// The model's latest version when this one was published.
    pub parent_version: Option<u64>,
    /// Wall time of the job, seconds.
    pub duration_seconds: f64,
}

/// A file of the version and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Hex sha256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The manifest of one model version. The version number is the name of the folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version of this document.
    pub format: u32,
    /// Model name.
    pub name: String,
    /// Kind of model, which decides the engine (`native-sequential`).
    pub kind: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Version of Lathe that wrote it.
    pub lathe_version: String,
    /// The spec, in canonical form.
    pub spec: serde_json::Value,
    /// Input and output tensors.
    pub signature: Signature,
    /// Preprocessing applied to raw inputs.
    pub preprocessing: Preprocessing,
    /// Class names, indexed by output unit.
    pub class_names: Vec<String>,
    /// Names of the input features of tabular models, in input order (empty for images).
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// Evaluation on the test split (empty for imported models).
    #[serde(default)]
    pub metrics: Evaluation,
    /// Per-epoch training history.
    #[serde(default)]
    pub history: Vec<EpochRecord>,
    /// Lineage of the training data.
    #[serde(default)]
    pub data: DataLineage,
    /// Seed of the run.
    #[serde(default)]
    pub seed: u64,
    /// How training went.
    #[serde(default)]
    pub training: TrainingInfo,
    /// The training job, when a job trained it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobLineage>,
    /// Every other file of the version with its digest.
    pub files: BTreeMap<String, FileEntry>,
}
