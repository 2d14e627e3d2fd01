//! Lathe's metadata store: datasets, training jobs, evaluations and the audit log.
//!
//! Version folders in the model repository stay the source of truth for weights and
//! manifests; the store records what happened around them. [`MetadataStore`] is the contract;
//! [`SqliteStore`] is the embedded default (one file, no setup), and [`PostgresStore`] keeps
//! the same records in a server database that every replica shares. [`open`] picks one by URL.
//! Publishing a version needs no store.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod postgres;
mod postgres_documents;
mod records;
mod sqlite;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use postgres::PostgresStore;
pub use postgres_documents::CHANGES_CHANNEL;
pub use records::{AuditEntry, DatasetFile, DatasetRecord, EvaluationRecord, JobRecord, JobState};
pub use sqlite::SqliteStore;

/// Opens the store a URL names: `sqlite://FILE` (a relative path after `sqlite://`, an absolute
/// one after `sqlite:///`), `postgres://…` or `postgresql://…` (see [`PostgresStore`]); without
/// a URL, SQLite at `default_sqlite`.
///
/// # Errors
/// Another scheme (named in the message with the ones accepted), or the store's own failure.
pub fn open(url: Option<&str>, default_sqlite: &Path) -> Result<Arc<dyn MetadataStore>, StoreError> {
    match url {
        None => Ok(Arc::new(SqliteStore::open(default_sqlite)?)),
        Some(u) if is_postgres(u) => Ok(Arc::new(PostgresStore::open(u)?)),
        Some(u) => match u.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(Arc::new(SqliteStore::open(Path::new(path))?)),
            _ => Err(StoreError(format!(
                "metadata URL {:?}: expected sqlite://FILE or postgres://user:password@host:port/database",
                postgres::redact(u)
            ))),
        },
    }
}

/// Whether `url` names a Postgres database (`postgres://` or `postgresql://`).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct StoreError(pub String);

/// Where datasets, jobs, evaluations and the audit log are kept. Implementations are shared
/// between threads; each call is one atomic operation.
pub trait MetadataStore: Send + Sync {
    /// Inserts or replaces a dataset record.
    fn put_dataset(&self, d: &DatasetRecord) -> Result<(), StoreError>;

    /// A dataset by name.
    fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>, StoreError>;

    /// Every dataset, by name.
    fn datasets(&self) -> Result<Vec<DatasetRecord>, StoreError>;

    /// Deletes a dataset record; true when it existed.
    fn delete_dataset(&self, name: &str) -> Result<bool, StoreError>;

    /// Inserts or replaces a job record.
    fn put_job(&self, j: &JobRecord) -> Result<(), StoreError>;

    /// A job by id.
    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// Jobs, newest first, optionally only those in `states`.
    fn jobs(&self, states: &[JobState]) -> Result<Vec<JobRecord>, StoreError>;

    /// Stores an evaluation.
    fn put_evaluation(&self, e: &EvaluationRecord) -> Result<(), StoreError>;

    /// Evaluations, newest first, optionally of one model (and version).
    fn evaluations(&self, model: Option<&str>, version: Option<u64>) -> Result<Vec<EvaluationRecord>, StoreError>;

    /// Appends to the audit log.
    fn audit(&self, at: &str, actor: &str, action: &str, target: &str, detail: &str) -> Result<(), StoreError>;

    /// The latest `limit` audit entries, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    /// Claims the oldest job that is queued, or running under an expired lease (its worker
    /// stopped renewing it; a job running without a lease, in a server's own queue, is never
    /// taken): marks it running under `owner` until `lease` from now, by the
    /// database's clock. `None` when there is none. Concurrent claimers never get the same
    /// job (Postgres: `SELECT … FOR UPDATE SKIP LOCKED`; SQLite: one writer at a time).
    fn claim_job(&self, owner: &str, lease: Duration) -> Result<Option<JobRecord>, StoreError>;

    /// Extends `owner`'s lease on the running job `id` to `lease` from now; false when the job
    /// is no longer running under that owner (cancelled, finished, or claimed by another
    /// worker after the lease expired).
    fn renew_job_lease(&self, id: &str, owner: &str, lease: Duration) -> Result<bool, StoreError>;
}

/// A lease's length in milliseconds, as the stores keep it.
fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2)
}

impl lathe_types::HasErrorKind for StoreError {
    /// A store failure is ours, never the caller's.
    fn error_kind(&self) -> lathe_types::ErrorKind {
        lathe_types::ErrorKind::Internal
    }
}
