//! The SQLite metadata store (WAL mode, versioned migrations), the embedded default.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::{lease_ms, AuditEntry, DatasetRecord, EvaluationRecord, JobRecord, JobState, MetadataStore, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
const MIGRATIONS: [&str; 3] = [
    "
    CREATE TABLE datasets (
        name TEXT PRIMARY KEY,
        files TEXT NOT NULL,
        summary TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER,
        error TEXT,
        progress TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
",
    "
    CREATE TABLE evaluations (
        id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        version INTEGER NOT NULL,
        dataset TEXT NOT NULL,
        dataset_sha256 TEXT NOT NULL,
        metrics TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX evaluations_model ON evaluations(model, version);
",
    "
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until INTEGER;
",
];

/// Milliseconds since the epoch by this machine's clock.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX / 2)
}

const JOB_COLUMNS: &str = "id, request, state, version, error, progress, created_at, started_at, finished_at";

/// The SQLite-backed store; one connection behind a mutex (writes are small and rare).
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn json_col(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

fn parse_json(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

impl SqliteStore {
    /// Opens (creating and migrating) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| StoreError(format!("{}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let applied: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if applied > MIGRATIONS.len() {
            return Err(StoreError(format!(
                "{} was written by a newer Lathe (schema {applied}, this build knows {})",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        for (i, m) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(SqliteStore { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().expect("store lock")
    }

    fn job_from_row(r: &rusqlite::Row) -> rusqlite::Result<JobRecord> {
        Ok(JobRecord {
            id: r.get(0)?,
            request: parse_json(r.get(1)?).unwrap_or_default(),
            state: {
                let name: String = r.get(2)?;
                JobState::parse(&name).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Text,
                        format!("job state {name:?}").into(),
                    )
                })?
            },
            version: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
            error: r.get(4)?,
            progress: parse_json(r.get(5)?),
            created_at: r.get(6)?,
            started_at: r.get(7)?,
            finished_at: r.get(8)?,
        })
    }
}

impl MetadataStore for SqliteStore {
    /// Inserts or replaces a dataset record.
    fn put_dataset(&self, d: &DatasetRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO datasets (name, files, summary, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET files = excluded.files, summary = excluded.summary,
             updated_at = excluded.updated_at",
            params![
                d.name,
                serde_json::to_string(&d.files).expect("files serialise"),
                json_col(&d.summary),
                d.created_at,
                d.updated_at
            ],
        )?;
        Ok(())
    }

    /// A dataset by name.
    fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name, files, summary, created_at, updated_at FROM datasets WHERE name = ?1",
                [name],
                |r| {
                    Ok(DatasetRecord {
                        name: r.get(0)?,
                        files: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                        summary: parse_json(r.get(2)?),
                        created_at: r.get(3)?,
                        updated_at: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }

    /// Every dataset, by name.
    fn datasets(&self) -> Result<Vec<DatasetRecord>, StoreError> {
        let names: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn.prepare("SELECT name FROM datasets ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        names.iter().filter_map(|n| self.dataset(n).transpose()).collect()
    }

    /// Deletes a dataset record; true when it existed.
    fn delete_dataset(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM datasets WHERE name = ?1", [name])? > 0)
    }

    /// Inserts or replaces a job record.
    fn put_job(&self, j: &JobRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO jobs (id, request, state, version, error, progress, created_at, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, version = excluded.version, error = excluded.error,
               progress = excluded.progress, started_at = excluded.started_at, finished_at = excluded.finished_at",
            params![
                j.id,
                j.request.to_string(),
                j.state.as_str(),
                j.version.map(|v| v as i64),
                j.error,
                json_col(&j.progress),
                j.created_at,
                j.started_at,
                j.finished_at
            ],
        )?;
        Ok(())
    }

    /// A job by id.
    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, request, state, version, error, progress, created_at, started_at, finished_at FROM jobs \
                    WHERE id = ?1",
                [id],
                Self::job_from_row,
            )
            .optional()?)
    }

    /// Jobs, newest first, optionally only those in `states`.
    fn jobs(&self, states: &[JobState]) -> Result<Vec<JobRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, request, state, version, error, progress, created_at, started_at, finished_at FROM jobs ORDER \
                BY created_at DESC, id DESC",
        )?;
        let rows = stmt.query_map([], Self::job_from_row)?;
        let all: Vec<JobRecord> = rows.collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|j| states.is_empty() || states.contains(&j.state)).collect())
    }

    /// Stores an evaluation.
    fn put_evaluation(&self, e: &EvaluationRecord) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO evaluations (id, model, version, dataset, dataset_sha256, metrics, created_at) \
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![e.id, e.model, e.version as i64, e.dataset, e.dataset_sha256, e.metrics.to_string(), e.created_at],
        )?;
        Ok(())
    }

    /// Evaluations, newest first, optionally of one model (and version).
    fn evaluations(&self, model: Option<&str>, version: Option<u64>) -> Result<Vec<EvaluationRecord>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT id, model, version, dataset, dataset_sha256, metrics, created_at FROM evaluations
             WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR version = ?2) ORDER BY created_at DESC, id DESC",
        )?;
        let rows = stmt.query_map(params![model, version.map(|v| v as i64)], |r| {
            Ok(EvaluationRecord {
                id: r.get(0)?,
                model: r.get(1)?,
                version: r.get::<_, i64>(2)? as u64,
                dataset: r.get(3)?,
                dataset_sha256: r.get(4)?,
                metrics: parse_json(r.get(5)?).unwrap_or_default(),
                created_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Appends to the audit log.
    fn audit(&self, at: &str, actor: &str, action: &str, target: &str, detail: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![at, actor, action, target, detail],
        )?;
        Ok(())
    }

    /// The latest `limit` audit entries, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
        let rows = stmt.query_map([limit as i64], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn claim_job(&self, owner: &str, lease: Duration) -> Result<Option<JobRecord>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = now_ms();
        let next: Option<String> = tx
            .query_row(
                "SELECT id FROM jobs WHERE state = 'queued' OR (state = 'running' AND lease_until < ?1) \
                 ORDER BY created_at, id LIMIT 1",
                [now],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = next else { return Ok(None) };
        tx.execute(
            "UPDATE jobs SET state = 'running', lease_owner = ?2, lease_until = ?3 WHERE id = ?1",
            params![id, owner, now + lease_ms(lease)],
        )?;
        let job = tx.query_row(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"), [&id], Self::job_from_row)?;
        tx.commit()?;
        Ok(Some(job))
    }

    fn renew_job_lease(&self, id: &str, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        let renewed = self.conn().execute(
            "UPDATE jobs SET lease_until = ?3 WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
            params![id, owner, now_ms() + lease_ms(lease)],
        )?;
        Ok(renewed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatasetFile, MetadataStore};

    #[test]
    fn records_survive_reopening_and_migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lathe.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.put_dataset(&DatasetRecord {
                name: "mnist".into(),
                files: vec![DatasetFile { name: "a".into(), bytes: 3, sha256: "x".into() }],
                summary: None,
                created_at: "t0".into(),
                updated_at: "t0".into(),
            })
            .unwrap();
            let mut job = JobRecord {
                id: "j1".into(),
                request: serde_json::json!({"name": "m"}),
                state: JobState::Queued,
                version: None,
                error: None,
                progress: None,
                created_at: "t1".into(),
                started_at: None,
                finished_at: None,
            };
            s.put_job(&job).unwrap();
            job.state = JobState::Succeeded;
            job.version = Some(4);
            s.put_job(&job).unwrap();
            s.audit("t2", "ops", "job.submit", "j1", "{}").unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.dataset("mnist").unwrap().unwrap().files[0].bytes, 3);
        let j = s.job("j1").unwrap().unwrap();
        assert_eq!((j.state.as_str(), j.version), ("succeeded", Some(4)));
        assert_eq!(s.jobs(&[JobState::Queued]).unwrap().len(), 0);
        assert_eq!(s.audit_log(10).unwrap()[0].action, "job.submit");
        assert!(s.delete_dataset("mnist").unwrap());
        assert!(s.dataset("mnist").unwrap().is_none());
    }
}
