//! The records the metadata store keeps.

use serde::{Deserialize, Serialize};

/// A file of an uploaded dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFile {
    /// File name.
    pub name: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex sha256.
    pub sha256: String,
}

/// An uploaded dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// Name (also its folder).
    pub name: String,
    /// Its files.
    pub files: Vec<DatasetFile>,
    /// Description computed from the data (rows, columns, class balance), once read.
    pub summary: Option<serde_json::Value>,
    /// Creation time, RFC 3339.
    pub created_at: String,
    /// Last upload, RFC 3339.
    pub updated_at: String,
}

/// A training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// The submitted request (model name, spec, dataset, seed, promotion rule).
    pub request: serde_json::Value,
    /// `queued`, `running`, `succeeded`, `failed`, `cancelled`.
    pub state: String,
    /// Published version, once succeeded.
    pub version: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Latest progress (epoch, loss, accuracy, …).
    pub progress: Option<serde_json::Value>,
    /// Submission time.
    pub created_at: String,
    /// Start of the latest run.
    pub started_at: Option<String>,
    /// End time.
    pub finished_at: Option<String>,
}

/// A stored evaluation of a version on a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    /// Id.
    pub id: String,
    /// Model name.
    pub model: String,
    /// Version.
    pub version: u64,
    /// Dataset name.
    pub dataset: String,
    /// sha256 over the dataset's file digests when evaluated.
    pub dataset_sha256: String,
    /// The evaluation.
    pub metrics: serde_json::Value,
    /// When, RFC 3339.
    pub created_at: String,
}

/// An audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When, RFC 3339.
    pub at: String,
    /// Key name of who did it.
    pub actor: String,
    /// What (`dataset.upload`, `job.submit`, …).
    pub action: String,
    /// On what.
    pub target: String,
    /// Details (never secrets).
    pub detail: String,
}
