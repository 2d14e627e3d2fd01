//! The Postgres metadata store: the same records as [`crate::SqliteStore`] in a server
//! database, so that every replica and worker of a deployment agrees on them.
//!
//! The client (`postgres`, the synchronous face of `tokio-postgres`) runs its own small
//! runtime, which may not be entered from an async executor; so one dedicated thread owns the
//! connection and every call is handed to it over a channel. The thread reconnects when the
//! connection was lost. Migrations run at open, inside a transaction holding an advisory lock,
//! so that replicas starting together apply each one once.
//!
//! URLs are libpq's (`postgres://user:password@host:port/database?sslmode=require`).
//! `sslmode` is `disable`, `prefer` (the default) or `require`; TLS runs on rustls, trusting the
//! system's roots or, with `sslrootcert=FILE`, the PEM certificates of that file.

use std::str::FromStr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use postgres::{Client, Config, Row};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{lease_ms, AuditEntry, DatasetRecord, EvaluationRecord, JobRecord, JobState, MetadataStore, StoreError};

impl From<postgres::Error> for StoreError {
    /// The error with its causes (a TLS handshake failure names the certificate problem).
    fn from(e: postgres::Error) -> Self {
        let mut message = format!("postgres: {e}");
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(&format!(": {c}"));
            cause = c.source();
        }
        StoreError(message)
    }
}

/// How long a connection attempt may take unless the URL says (`connect_timeout`, seconds).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The key of the advisory lock migrations run under ("lathe" in ASCII).
const MIGRATION_LOCK: i64 = 0x6c_61_74_68_65;

/// Schema migrations, applied in order; `lathe_schema.version` records how many ran.
const MIGRATIONS: [&str; 3] = [
    "
    CREATE TABLE datasets (
        name TEXT PRIMARY KEY,
        files JSONB NOT NULL,
        summary JSONB,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        request JSONB NOT NULL,
        state TEXT NOT NULL,
        version BIGINT,
        error TEXT,
        progress JSONB,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX jobs_state ON jobs(state);
    CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE TABLE evaluations (
        id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        version BIGINT NOT NULL,
        dataset TEXT NOT NULL,
        dataset_sha256 TEXT NOT NULL,
        metrics JSONB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX evaluations_model ON evaluations(model, version);
",
    "
    -- Revisions come from one sequence, so a document removed and made again never repeats
    -- a revision a writer may still hold.
    CREATE SEQUENCE document_revisions;
    CREATE TABLE documents (
        model TEXT NOT NULL,
        file TEXT NOT NULL,
        body BYTEA NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (model, file)
    );
",
    "
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until BIGINT;
",
];

/// Milliseconds since the epoch by the database's clock, in SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

type Task = Box<dyn FnOnce(&mut Client) + Send>;

/// The Postgres-backed store; see the module documentation.
pub struct PostgresStore {
    tasks: Mutex<mpsc::Sender<Task>>,
    /// How to open further connections (the listener's).
    pub(crate) target: Target,
    /// The URL without its password, for messages.
    pub(crate) shown: String,
}

/// How to reach the database: the parsed URL and the TLS connector.
#[derive(Clone)]
pub(crate) struct Target {
    config: Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl Target {
    pub(crate) fn connect(&self) -> Result<Client, StoreError> {
        Ok(self.config.connect(self.tls.clone())?)
    }
}

impl PostgresStore {
    /// Connects to the database at `url`, applies the migrations it lacks and starts the
    /// connection's thread. Errors name the URL without its password.
    pub fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let shown = redact(url);
        let target = parse(url).map_err(|e| StoreError(format!("{shown}: {e}")))?;
        let mut client = target.connect().map_err(|e| StoreError(format!("{shown}: {}", e.0)))?;
        migrate(&mut client).map_err(|e| StoreError(format!("{shown}: {}", e.0)))?;
        let (tx, rx) = mpsc::channel::<Task>();
        let connection = target.clone();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || serve(client, connection, rx))
            .map_err(|e| StoreError(format!("starting the postgres thread: {e}")))?;
        Ok(PostgresStore { tasks: Mutex::new(tx), target, shown })
    }

    /// Runs `f` on the connection's thread and waits for its answer.
    pub(crate) fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<R, postgres::Error> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let task: Task = Box::new(move |client| {
            let _ = tx.send(f(client).map_err(StoreError::from));
        });
        self.tasks
            .lock()
            .expect("postgres channel lock")
            .send(task)
            .map_err(|_| StoreError("the postgres thread stopped".into()))?;
        rx.recv().map_err(|_| StoreError("the postgres thread stopped".into()))?
    }
}

/// The connection's thread: runs tasks in order, reconnecting first when the connection was
/// closed (a task that finds it closed fails, and the next one reconnects). A task that panics
/// fails its caller ("the postgres thread stopped") and the thread goes on.
fn serve(mut client: Client, target: Target, tasks: mpsc::Receiver<Task>) {
    for task in tasks {
        if client.is_closed() {
            match target.connect() {
                Ok(c) => client = c,
                Err(e) => tracing::warn!(error = %e, "reconnecting to postgres failed"),
            }
        }
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(&mut client))).is_err() {
            tracing::error!("a metadata store call panicked; the connection is kept");
        }
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Splits `sslrootcert` (which the client does not read) off the URL and builds the connector.
fn parse(url: &str) -> Result<Target, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut root_file = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslrootcert", file)) => root_file = Some(file.to_string()),
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let mut config = Config::from_str(&url).map_err(|e| format!("not a Postgres URL: {e}"))?;
    // Calls wait for their answer: an unreachable server fails them instead of hanging.
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let roots = match root_file {
        Some(file) => roots_from_file(&file)?,
        None => system_roots(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Target { config, tls: tokio_postgres_rustls::MakeRustlsConnect::new(tls) })
}

fn roots_from_file(file: &str) -> Result<rustls::RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(file).map_err(|e| format!("sslrootcert {file}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {file}: {e}"))?;
        roots.add(cert).map_err(|e| format!("sslrootcert {file}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {file}: no PEM certificate in the file"));
    }
    Ok(roots)
}

fn system_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// Applies the migrations the database lacks, under the advisory lock, in one transaction each.
fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    // Everything, the schema table's creation included, waits for the lock: concurrent
    // `CREATE TABLE IF NOT EXISTS` statements can still collide in Postgres.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS lathe_schema (version INTEGER NOT NULL)")?;
    let applied: i32 = match tx.query_opt("SELECT version FROM lathe_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO lathe_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let applied = applied as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError(format!(
            "the database was written by a newer Lathe (schema {applied}, this build knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(m)?;
        tx.execute("UPDATE lathe_schema SET version = $1", &[&((i + 1) as i32)])?;
    }
    tx.commit()?;
    Ok(())
}

fn job_from_row(r: &Row) -> JobRecord {
    let state: String = r.get(2);
    JobRecord {
        id: r.get(0),
        request: r.get(1),
        state: JobState::parse(&state).unwrap_or(JobState::Failed),
        version: r.get::<_, Option<i64>>(3).map(|v| v as u64),
        error: r.get(4),
        progress: r.get(5),
        created_at: r.get(6),
        started_at: r.get(7),
        finished_at: r.get(8),
    }
}

fn dataset_from_row(r: &Row) -> DatasetRecord {
    DatasetRecord {
        name: r.get(0),
        files: serde_json::from_value(r.get(1)).unwrap_or_default(),
        summary: r.get(2),
        created_at: r.get(3),
        updated_at: r.get(4),
    }
}

const JOB_COLUMNS: &str = "id, request, state, version, error, progress, created_at, started_at, finished_at";

impl MetadataStore for PostgresStore {
    fn put_dataset(&self, d: &DatasetRecord) -> Result<(), StoreError> {
        let d = d.clone();
        self.run(move |c| {
            let files = serde_json::to_value(&d.files).expect("files serialise");
            c.execute(
                "INSERT INTO datasets (name, files, summary, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET files = excluded.files, summary = excluded.summary,
                 updated_at = excluded.updated_at",
                &[&d.name, &files, &d.summary, &d.created_at, &d.updated_at],
            )
            .map(drop)
        })
    }

    fn dataset(&self, name: &str) -> Result<Option<DatasetRecord>, StoreError> {
        let name = name.to_string();
        self.run(move |c| {
            let sql = "SELECT name, files, summary, created_at, updated_at FROM datasets WHERE name = $1";
            Ok(c.query_opt(sql, &[&name])?.as_ref().map(dataset_from_row))
        })
    }

    fn datasets(&self) -> Result<Vec<DatasetRecord>, StoreError> {
        self.run(|c| {
            let sql = "SELECT name, files, summary, created_at, updated_at FROM datasets ORDER BY name";
            Ok(c.query(sql, &[])?.iter().map(dataset_from_row).collect())
        })
    }

    fn delete_dataset(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.run(move |c| Ok(c.execute("DELETE FROM datasets WHERE name = $1", &[&name])? > 0))
    }

    fn put_job(&self, j: &JobRecord) -> Result<(), StoreError> {
        let j = j.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO jobs (id, request, state, version, error, progress, created_at, started_at, finished_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state, version = excluded.version,
                   error = excluded.error, progress = excluded.progress, started_at = excluded.started_at,
                   finished_at = excluded.finished_at",
                &[
                    &j.id,
                    &j.request,
                    &j.state.as_str(),
                    &j.version.map(|v| v as i64),
                    &j.error,
                    &j.progress,
                    &j.created_at,
                    &j.started_at,
                    &j.finished_at,
                ],
            )
            .map(drop)
        })
    }

    fn job(&self, id: &str) -> Result<Option<JobRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
            Ok(c.query_opt(&sql, &[&id])?.as_ref().map(job_from_row))
        })
    }

    fn jobs(&self, states: &[JobState]) -> Result<Vec<JobRecord>, StoreError> {
        let states: Vec<String> = states.iter().map(|s| s.as_str().to_string()).collect();
        self.run(move |c| {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE cardinality($1::text[]) = 0 OR state = ANY($1)
                 ORDER BY created_at DESC, id DESC"
            );
            Ok(c.query(&sql, &[&states])?.iter().map(job_from_row).collect())
        })
    }

    fn put_evaluation(&self, e: &EvaluationRecord) -> Result<(), StoreError> {
        let e = e.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO evaluations (id, model, version, dataset, dataset_sha256, metrics, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET model = excluded.model, version = excluded.version,
                   dataset = excluded.dataset, dataset_sha256 = excluded.dataset_sha256,
                   metrics = excluded.metrics, created_at = excluded.created_at",
                &[&e.id, &e.model, &(e.version as i64), &e.dataset, &e.dataset_sha256, &e.metrics, &e.created_at],
            )
            .map(drop)
        })
    }

    fn evaluations(&self, model: Option<&str>, version: Option<u64>) -> Result<Vec<EvaluationRecord>, StoreError> {
        let (model, version) = (model.map(str::to_string), version.map(|v| v as i64));
        self.run(move |c| {
            let sql = "SELECT id, model, version, dataset, dataset_sha256, metrics, created_at FROM evaluations
                 WHERE ($1::text IS NULL OR model = $1) AND ($2::bigint IS NULL OR version = $2)
                 ORDER BY created_at DESC, id DESC";
            let rows = c.query(sql, &[&model, &version])?;
            Ok(rows
                .iter()
                .map(|r| EvaluationRecord {
                    id: r.get(0),
                    model: r.get(1),
                    version: r.get::<_, i64>(2) as u64,
                    dataset: r.get(3),
                    dataset_sha256: r.get(4),
                    metrics: r.get(5),
                    created_at: r.get(6),
                })
                .collect())
        })
    }

    fn audit(&self, at: &str, actor: &str, action: &str, target: &str, detail: &str) -> Result<(), StoreError> {
        let row = [at, actor, action, target, detail].map(str::to_string);
        self.run(move |c| {
            let sql = "INSERT INTO audit (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)";
            c.execute(sql, &[&row[0], &row[1], &row[2], &row[3], &row[4]]).map(drop)
        })
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = limit as i64;
        self.run(move |c| {
            let sql = "SELECT id, at, actor, action, target, detail FROM audit ORDER BY id DESC LIMIT $1";
            Ok(c.query(sql, &[&limit])?
                .iter()
                .map(|r| AuditEntry {
                    id: r.get(0),
                    at: r.get(1),
                    actor: r.get(2),
                    action: r.get(3),
                    target: r.get(4),
                    detail: r.get(5),
                })
                .collect())
        })
    }

    fn claim_job(&self, owner: &str, lease: Duration) -> Result<Option<JobRecord>, StoreError> {
        let (owner, lease) = (owner.to_string(), lease_ms(lease));
        let columns = JOB_COLUMNS.split(", ").map(|c| format!("jobs.{c}")).collect::<Vec<_>>().join(", ");
        self.run(move |c| {
            let sql = format!(
                "WITH next AS (
                   SELECT id FROM jobs
                   WHERE state = 'queued' OR (state = 'running' AND lease_until < {NOW_MS})
                   ORDER BY created_at, id LIMIT 1
                   FOR UPDATE SKIP LOCKED)
                 UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = {NOW_MS} + $2
                 FROM next WHERE jobs.id = next.id
                 RETURNING {columns}"
            );
            Ok(c.query_opt(&sql, &[&owner, &lease])?.as_ref().map(job_from_row))
        })
    }

    fn renew_job_lease(&self, id: &str, owner: &str, lease: Duration) -> Result<bool, StoreError> {
        let (id, owner, lease) = (id.to_string(), owner.to_string(), lease_ms(lease));
        self.run(move |c| {
            let sql = format!(
                "UPDATE jobs SET lease_until = {NOW_MS} + $3 \
                 WHERE id = $1 AND lease_owner = $2 AND state = 'running'"
            );
            Ok(c.execute(&sql, &[&id, &owner, &lease])? == 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(redact("postgres://lathe:s3cret@db:5432/lathe"), "postgres://lathe:***@db:5432/lathe");
        assert_eq!(redact("postgres://lathe@db/lathe"), "postgres://lathe@db/lathe");
        assert_eq!(redact("host=db user=lathe"), "host=db user=lathe");
    }

    #[test]
    fn sslrootcert_is_read_by_lathe_and_a_missing_file_is_named() {
        let e = parse("postgres://u@localhost/db?sslmode=require&sslrootcert=/nonexistent/ca.pem").err().unwrap();
        assert!(e.contains("sslrootcert /nonexistent/ca.pem"), "{e}");
        assert!(parse("postgres://u@localhost/db?sslmode=require").is_ok());
        assert!(parse("mysql://x").is_err());
    }
}
