//! `lathe worker`: runs training jobs claimed from the shared metadata store.

use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use anyhow::{Context, Result};
use clap::Args;
use lathe_store::{MetadataStore, PostgresStore};

use crate::Cli;

/// Run training jobs submitted to any `lathe serve` of the deployment.
///
/// A worker claims the oldest queued job from the metadata store (Postgres: `SELECT … FOR
/// UPDATE SKIP LOCKED`, so workers never share one), renews its lease while it trains, keeps
/// the fit's checkpoint in the repository's object store after every epoch, publishes the
/// version, and moves the job's label when it asked for that. A worker that dies leaves its
/// job's lease to run out; then another worker claims it and resumes from the checkpoint.
/// SIGTERM or Ctrl-C stops at the next batch boundary and puts the job back in the queue.
#[derive(Args, Debug)]
#[command(after_help = "Example:\
    \n  export LATHE_REPO=s3://models/prod AWS_ENDPOINT_URL=https://minio:9000\
    \n  lathe worker --metadata postgres://lathe:secret@db:5432/lathe --job-lease 30")]
pub struct WorkerArgs {
    /// The Postgres database the servers record jobs in (`postgres://USER:PASSWORD@HOST/DB`;
    /// with SQLite a server runs its own jobs and needs no workers).
    #[arg(long, env = "LATHE_METADATA")]
    pub metadata: String,
    /// Folder for the datasets this worker fetches from the object store.
    #[arg(long, env = "LATHE_STATE_DIR", default_value = "lathe-data")]
    pub state_dir: PathBuf,
    /// Jobs this worker runs at once.
    #[arg(long, env = "LATHE_MAX_CONCURRENT_JOBS", default_value_t = 1)]
    pub max_concurrent_jobs: usize,
    /// Seconds a claim lasts without a heartbeat (renewed every third of it); another worker
    /// takes over a job whose lease ran out.
    #[arg(long, env = "LATHE_JOB_LEASE", default_value_t = 30.0)]
    pub job_lease: f64,
    /// Seconds between looks for a job while idle.
    #[arg(long, env = "LATHE_POLL_SECONDS", default_value_t = 1.0)]
    pub poll_seconds: f64,
    /// This worker's name in leases [default: HOSTNAME-PID].
    #[arg(long, env = "LATHE_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Threads each fit may use (0: all cores).
    #[arg(long, env = "LATHE_THREADS", default_value_t = 0)]
    pub threads: usize,
}

pub fn run(cli: &Cli, args: &WorkerArgs) -> Result<()> {
    if !lathe_store::is_postgres(&args.metadata) {
        anyhow::bail!(
            "--metadata: expected the deployment's Postgres URL (postgres://…); with SQLite, \
             `lathe serve` runs its own jobs and workers would run them a second time"
        );
    }
    let pg = Arc::new(PostgresStore::open(&args.metadata).map_err(anyhow::Error::msg)?);
    let repo = cli.repository()?.with_shared(pg.clone());
    let store: Arc<dyn MetadataStore> = pg;
    let owner = args.worker_id.clone().unwrap_or_else(lathe_jobs::ClaimConfig::default_owner);
    let claim = lathe_jobs::ClaimConfig::new(owner.clone(), args.job_lease, args.poll_seconds);
    let config = lathe_jobs::JobsConfig {
        max_concurrent: args.max_concurrent_jobs.max(1),
        max_queued: usize::MAX,
        datasets_root: args.state_dir.join("datasets"),
        threads_per_job: args.threads,
        claim: Some(claim),
    };
    let (stop, stopped) = mpsc::channel::<()>();
    ctrlc::set_handler(move || {
        let _ = stop.send(());
    })
    .context("installing the SIGTERM handler")?;
    let runner = lathe_jobs::JobRunner::start(store, repo.clone(), config).map_err(|e| anyhow::anyhow!("{e}"))?;
    if cli.json {
        println!("{}", serde_json::json!({ "event": "working", "owner": owner, "repo": repo.location() }));
    } else {
        eprintln!("worker {owner}: running jobs for {} (Ctrl-C stops)", repo.location());
    }
    let _ = stopped.recv();
    eprintln!("worker {owner}: stopping at the next batch boundary");
    runner.shutdown();
    Ok(())
}
