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

/// Where a training job is: `queued` → `running` → `succeeded` | `failed` | `cancelled`
/// (a running job interrupted by a restart goes back to `queued`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Training on a worker.
    Running,
    /// Published a version.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 5] =
        [JobState::Queued, JobState::Running, JobState::Succeeded, JobState::Failed, JobState::Cancelled];

    /// The name stored and sent over the API (`queued`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// The state a name stands for.
    pub fn parse(name: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the job is over (succeeded, failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Job id.
    pub id: String,
    /// The submitted request (model name, spec, dataset, seed, promotion rule).
    pub request: serde_json::Value,
    /// Where the job is in its life.
    pub state: JobState,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_round_trip_by_name_and_serde() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(JobState::parse("done"), None);
        let finished: Vec<_> = JobState::ALL.into_iter().filter(|s| s.is_finished()).collect();
        assert_eq!(finished, [JobState::Succeeded, JobState::Failed, JobState::Cancelled]);
    }
}
