//! Jobs claimed from a shared metadata store (`lathe worker`, or `lathe serve --run-jobs` with
//! Postgres): each worker thread claims the oldest claimable job (`MetadataStore::claim_job`),
//! renews its lease from a heartbeat thread, keeps the fit's checkpoints in the object store
//! after every epoch, and stops when the lease is lost (the job was cancelled, or another
//! worker took it over after the lease expired). A worker killed mid-job leaves a checkpoint;
//! whoever claims the job after the lease expires resumes from it.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lathe_registry::Repository;
use lathe_store::{JobRecord, MetadataStore};
use serde_json::Value;

use crate::runner::JobRunner;

/// Where a remote repository keeps the checkpoints of running jobs: `<prefix>/.checkpoints/<job>/`.
pub const CHECKPOINT_AREA: &str = ".checkpoints";
/// Where a remote repository keeps uploaded datasets: `<prefix>/.datasets/<name>/`.
pub const DATASET_AREA: &str = ".datasets";
/// The checkpoint's state file, uploaded after the tensors it names.
const CHECKPOINT_STATE: &str = "checkpoint.json";

/// How a runner takes jobs from the store instead of its own queue.
#[derive(Debug, Clone)]
pub struct ClaimConfig {
    /// This worker's name in leases (host and process by default).
    pub owner: String,
    /// How long a claim holds without a heartbeat; renewed every third of it.
    pub lease: Duration,
    /// How often an idle worker looks for a job.
    pub poll: Duration,
}

impl ClaimConfig {
    /// A claim by `owner` with a lease of `lease_seconds` (at least 0.3 s) and a look for work
    /// every `poll_seconds` (at least 0.05 s) while idle.
    pub fn new(owner: String, lease_seconds: f64, poll_seconds: f64) -> ClaimConfig {
        ClaimConfig {
            owner,
            lease: Duration::from_secs_f64(lease_seconds.max(0.3)),
            poll: Duration::from_secs_f64(poll_seconds.max(0.05)),
        }
    }

    /// `host-pid` (the `HOSTNAME` variable, as Kubernetes sets it, when there is one).
    pub fn default_owner() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "lathe".into());
        format!("{host}-{}", std::process::id())
    }
}

/// Renews a claim's lease until dropped; sets `stop` and `lost` when the lease is gone.
pub(crate) struct Heartbeat {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Heartbeat {
    pub(crate) fn start(
        store: Arc<dyn MetadataStore>,
        job: &str,
        claim: &ClaimConfig,
        stop: Arc<AtomicBool>,
        lost: Arc<AtomicBool>,
    ) -> Heartbeat {
        let done = Arc::new(AtomicBool::new(false));
        let (id, owner, lease, quit) = (job.to_string(), claim.owner.clone(), claim.lease, done.clone());
        let every = (lease / 3).max(Duration::from_millis(50));
        let thread = std::thread::Builder::new()
            .name(format!("lease-{id}"))
            .spawn(move || {
                let mut renewed = std::time::Instant::now();
                let give_up = lease * 2 / 3;
                while !quit.load(Ordering::SeqCst) {
                    std::thread::sleep(every);
                    if quit.load(Ordering::SeqCst) {
                        return;
                    }
                    let gone = match store.renew_job_lease(&id, &owner, lease) {
                        Ok(true) => {
                            renewed = std::time::Instant::now();
                            false
                        }
                        Ok(false) => {
                            tracing::warn!(job = %id, "the job's lease is gone (cancelled or taken over); stopping");
                            true
                        }
                        // Unrenewed for most of the lease: stop before another worker may take
                        // the job over, so that two never publish it.
                        Err(e) if renewed.elapsed() >= give_up => {
                            tracing::warn!(job = %id, error = %e, "the lease could not be renewed in time; stopping");
                            true
                        }
                        Err(e) => {
                            tracing::warn!(job = %id, error = %e, "renewing the job's lease failed; retrying");
                            false
                        }
                    };
                    if gone {
                        lost.store(true, Ordering::SeqCst);
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            })
            .ok();
        Heartbeat { done, thread }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies a job's checkpoint between the object store and its local folder.
pub(crate) struct CheckpointShipper<'a> {
    pub(crate) repo: &'a Repository,
    pub(crate) job: &'a str,
    pub(crate) dir: &'a Path,
    /// An epoch ended; its checkpoint is written right after, and shipped at the next event.
    pub(crate) pending: bool,
}

impl CheckpointShipper<'_> {
    /// Fetches the job's checkpoint from the store when this machine has none.
    pub(crate) fn pull(&self) {
        let Some(remote) = self.repo.remote() else { return };
        if self.dir.join(CHECKPOINT_STATE).is_file() {
            return;
        }
        match remote.pull_folder(CHECKPOINT_AREA, self.job, self.dir) {
            Ok(0) => {}
            Ok(n) => tracing::info!(job = self.job, files = n, "resuming from the checkpoint in the object store"),
            Err(e) => tracing::warn!(job = self.job, error = %e, "fetching the job's checkpoint failed; starting over"),
        }
    }

    /// Ships the checkpoint written since the last epoch ended.
    pub(crate) fn after_event(&mut self, epoch_ended: bool) {
        if self.pending && !epoch_ended {
            self.pending = false;
            self.push();
        }
        self.pending |= epoch_ended;
    }

    fn push(&self) {
        let Some(remote) = self.repo.remote() else { return };
        if !self.dir.join(CHECKPOINT_STATE).is_file() {
            return;
        }
        if let Err(e) = remote.push_folder(CHECKPOINT_AREA, self.job, self.dir, &[CHECKPOINT_STATE]) {
            tracing::warn!(job = self.job, error = %e, "storing the checkpoint failed; a takeover would start earlier");
        }
    }

    /// Removes the stored checkpoint once the version is published.
    pub(crate) fn remove(&self) {
        if let Some(remote) = self.repo.remote() {
            if let Err(e) = remote.delete_folder(CHECKPOINT_AREA, self.job) {
                tracing::warn!(job = self.job, error = %e, "removing the stored checkpoint failed");
            }
        }
    }
}

/// Makes the files of dataset `record` present and verified in `dir`, fetching them from the
/// object store when this machine lacks them (another replica took the upload).
pub(crate) fn fetch_dataset(repo: &Repository, record: &lathe_store::DatasetRecord, dir: &Path) -> Result<(), String> {
    let verified = |dir: &Path| {
        record.files.iter().all(|f| {
            lathe_formats::atomic::sha256_file(&dir.join(&f.name))
                .is_ok_and(|(sha, bytes)| sha == f.sha256 && bytes == f.bytes)
        })
    };
    if verified(dir) {
        return Ok(());
    }
    let Some(remote) = repo.remote() else {
        return Err(format!("dataset {:?}: its files are not in {}", record.name, dir.display()));
    };
    remote.pull_folder(DATASET_AREA, &record.name, dir).map_err(|e| format!("dataset {:?}: {e}", record.name))?;
    if verified(dir) {
        Ok(())
    } else {
        Err(format!("dataset {:?}: the stored files do not match their recorded sha256", record.name))
    }
}

impl JobRunner {
    /// A claiming worker's loop: claim, run, repeat; sleeps `poll` when there is nothing.
    pub(crate) fn work_claimed(self: Arc<Self>, claim: ClaimConfig) {
        loop {
            if self.is_shutting_down() {
                return;
            }
            match self.store().claim_job(&claim.owner, claim.lease) {
                Ok(Some(job)) => self.run_claimed(job, &claim),
                Ok(None) => self.idle(claim.poll),
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed; retrying");
                    self.idle(claim.poll);
                }
            }
        }
    }

    fn run_claimed(&self, mut job: JobRecord, claim: &ClaimConfig) {
        tracing::info!(job = %job.id, owner = %claim.owner, "claimed");
        if let Some(name) = job.request.get("name").and_then(Value::as_str) {
            let _ = self.repo().sync_model(name);
        }
        // A worker that died between publishing and recording it: the version is the truth.
        match self.record_if_published(&mut job) {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "recording a published job failed");
                return;
            }
        }
        let (stop, lost) = (self.cancel_flag(&job.id), Arc::new(AtomicBool::new(false)));
        let heartbeat = Heartbeat::start(self.store().clone(), &job.id, claim, stop.clone(), lost.clone());
        self.run(&job.id, &stop, Some(&lost));
        drop(heartbeat);
        self.forget(&job.id);
    }
}
