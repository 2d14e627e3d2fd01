//! The job queue and its worker threads.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use lathe_registry::Repository;
use lathe_store::{JobRecord, JobState, MetadataStore};
use lathe_train::{rfc3339_now, CheckpointStore, Event};
use lathe_types::{ApiError, ErrorKind};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::claims::{fetch_dataset, CheckpointShipper, ClaimConfig};
use crate::train_version::{train_version, JobOrigin, TrainObserver, TrainRun, VersionError};
use crate::JobRequest;

/// Settings of the job runner.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs running at once; more wait in the queue.
    pub max_concurrent: usize,
    /// Most jobs waiting; more are refused with 429.
    pub max_queued: usize,
    /// Folder holding one folder per uploaded dataset.
    pub datasets_root: PathBuf,
    /// Threads each fit may use (0: automatic).
    pub threads_per_job: usize,
    /// Take jobs from the shared store (leases, heartbeats, checkpoints in the object store)
    /// instead of this process's queue; `max_concurrent` workers claim them (0: none here,
    /// submitted jobs wait for `lathe worker`s).
    pub claim: Option<ClaimConfig>,
}

/// Something that happened to a job, as the event stream sends it.
#[derive(Debug, Clone, Serialize)]
pub struct JobEvent {
    /// Job id.
    pub job: String,
    /// `state`, `progress`, `epoch`, `log`.
    pub kind: &'static str,
    /// Details.
    pub data: Value,
}

struct Inner {
    queue: VecDeque<String>,
    cancel: HashMap<String, Arc<AtomicBool>>,
    shutting_down: bool,
}

/// Runs training jobs.
pub struct JobRunner {
    store: Arc<dyn MetadataStore>,
    repo: Repository,
    config: JobsConfig,
    inner: Mutex<Inner>,
    wake: Condvar,
    channels: Mutex<HashMap<String, broadcast::Sender<JobEvent>>>,
    counter: AtomicU64,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

impl JobRunner {
    /// Starts the workers and re-queues jobs a previous run left queued or running (those
    /// resume from their last epoch checkpoint).
    pub fn start(
        store: Arc<dyn MetadataStore>,
        repo: Repository,
        config: JobsConfig,
    ) -> Result<Arc<JobRunner>, ApiError> {
        let mut pending = match config.claim {
            // Leases decide who runs what: nothing to re-queue.
            Some(_) => Vec::new(),
            None => store.jobs(&[JobState::Queued, JobState::Running]).map_err(internal)?,
        };
        pending.reverse(); // oldest first
        let runner = Arc::new(JobRunner {
            store,
            repo,
            inner: Mutex::new(Inner { queue: VecDeque::new(), cancel: HashMap::new(), shutting_down: false }),
            wake: Condvar::new(),
            channels: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            workers: Mutex::new(Vec::new()),
            config,
        });
        for mut job in pending {
            // A crash between publishing and recording leaves a version that names this job:
            // the files are the truth, so the job succeeded.
            if runner.record_if_published(&mut job).map_err(internal)? {
                continue;
            }
            if job.state == JobState::Running {
                job.state = JobState::Queued;
                runner.store.put_job(&job).map_err(internal)?;
                tracing::info!(job = %job.id, "re-queued after a restart; it resumes from its last checkpoint");
            }
            runner.inner.lock().expect("jobs lock").queue.push_back(job.id);
        }
        let workers = match runner.config.claim {
            Some(_) => runner.config.max_concurrent,
            None => runner.config.max_concurrent.max(1),
        };
        for i in 0..workers {
            let r = runner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("job-worker-{i}"))
                .spawn(move || match r.config.claim.clone() {
                    Some(claim) => r.work_claimed(claim),
                    None => r.work(),
                })
                .map_err(internal)?;
            runner.workers.lock().expect("workers lock").push(handle);
        }
        Ok(runner)
    }

    /// Records `job` as succeeded when a version naming it was published (its runner stopped
    /// between publishing and recording it: the files are the truth); true when one was.
    pub(crate) fn record_if_published(&self, job: &mut JobRecord) -> Result<bool, lathe_store::StoreError> {
        let Some(version) = self.published_by(job) else { return Ok(false) };
        job.state = JobState::Succeeded;
        job.version = Some(version);
        job.finished_at = Some(rfc3339_now());
        self.store.put_job(job)?;
        tracing::info!(job = %job.id, version, "recorded a version published before its runner stopped");
        Ok(true)
    }

    /// The version of the job's model whose manifest names the job, if one was published.
    fn published_by(&self, job: &JobRecord) -> Option<u64> {
        let name = job.request.get("name")?.as_str()?;
        self.repo.versions(name).ok()?.into_iter().rev().find(|v| {
            self.repo
                .resolve(&lathe_types::ModelRef { name: name.to_string(), version: Some(*v) })
                .is_ok_and(|info| info.manifest.job().is_some_and(|j| j.job == job.id))
        })
    }

    /// Stops taking jobs; running fits stop at a batch boundary and stay queued for the next
    /// start, which resumes them from their checkpoints.
    pub fn shutdown(&self) {
        {
            let mut inner = self.inner.lock().expect("jobs lock");
            inner.shutting_down = true;
            inner.cancel.values().for_each(|f| f.store(true, Ordering::SeqCst));
        }
        self.wake.notify_all();
        for h in self.workers.lock().expect("workers lock").drain(..) {
            let _ = h.join();
        }
    }

    /// Queues a job.
    pub fn submit(&self, req: JobRequest) -> Result<JobRecord, ApiError> {
        req.validate()?;
        if self.store.dataset(&req.dataset).map_err(internal)?.is_none() {
            return Err(ApiError::not_found(format!("dataset {:?} not found; upload it first", req.dataset)));
        }
        let mut inner = self.inner.lock().expect("jobs lock");
        let queued = match self.config.claim {
            Some(_) => self.store.jobs(&[JobState::Queued]).map_err(internal)?.len(),
            None => inner.queue.len(),
        };
        if queued >= self.config.max_queued {
            return Err(ApiError::new(
                ErrorKind::ResourceExhausted,
                format!("{queued} jobs are queued already; retry later"),
            ));
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let job = JobRecord {
            id: format!("job-{:x}{:x}", nanos, n),
            request: serde_json::to_value(&req).expect("request serialises"),
            state: JobState::Queued,
            version: None,
            error: None,
            progress: None,
            created_at: rfc3339_now(),
            started_at: None,
            finished_at: None,
        };
        self.store.put_job(&job).map_err(internal)?;
        if self.config.claim.is_none() {
            inner.queue.push_back(job.id.clone());
        }
        drop(inner);
        self.wake.notify_one();
        self.emit(&job.id, "state", json!({ "state": JobState::Queued }));
        Ok(job)
    }

    /// A job.
    pub fn get(&self, id: &str) -> Result<JobRecord, ApiError> {
        self.store.job(id).map_err(internal)?.ok_or_else(|| ApiError::not_found(format!("job {id:?} not found")))
    }

    /// Every job, newest first.
    pub fn list(&self) -> Result<Vec<JobRecord>, ApiError> {
        self.store.jobs(&[]).map_err(internal)
    }

    /// Cancels a queued or running job (a running fit stops at its next batch boundary).
    pub fn cancel(&self, id: &str) -> Result<JobRecord, ApiError> {
        let mut job = self.get(id)?;
        if job.state.is_finished() {
            return Err(ApiError::new(ErrorKind::Conflict, format!("job {id:?} already {}", job.state)));
        }
        let mut inner = self.inner.lock().expect("jobs lock");
        if let Some(pos) = inner.queue.iter().position(|j| j == id) {
            inner.queue.remove(pos);
            drop(inner);
            job.state = JobState::Cancelled;
            job.finished_at = Some(rfc3339_now());
            self.store.put_job(&job).map_err(internal)?;
            self.emit(id, "state", json!({ "state": JobState::Cancelled }));
        } else if self.config.claim.is_some() {
            // Whoever runs it (here or on a worker) loses its lease and stops.
            if let Some(flag) = inner.cancel.get(id) {
                flag.store(true, Ordering::SeqCst);
            }
            drop(inner);
            job.state = JobState::Cancelled;
            job.finished_at = Some(rfc3339_now());
            self.store.put_job(&job).map_err(internal)?;
            self.emit(id, "state", json!({ "state": JobState::Cancelled }));
        } else if let Some(flag) = inner.cancel.get(id) {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(job)
    }

    pub(crate) fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    pub(crate) fn repo(&self) -> &Repository {
        &self.repo
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.inner.lock().expect("jobs lock").shutting_down
    }

    /// The stop flag of job `id` while it runs here (cancellation and shutdown set it).
    pub(crate) fn cancel_flag(&self, id: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        self.inner.lock().expect("jobs lock").cancel.insert(id.to_string(), flag.clone());
        flag
    }

    pub(crate) fn forget(&self, id: &str) {
        self.inner.lock().expect("jobs lock").cancel.remove(id);
    }

    /// Waits `poll`, or less when the runner shuts down.
    pub(crate) fn idle(&self, poll: std::time::Duration) {
        let inner = self.inner.lock().expect("jobs lock");
        if !inner.shutting_down {
            let _ = self.wake.wait_timeout(inner, poll);
        }
    }

    /// Whether a queued or running job trains on `dataset`.
    pub fn dataset_in_use(&self, dataset: &str) -> bool {
        self.store
            .jobs(&[JobState::Queued, JobState::Running])
            .map(|jobs| jobs.iter().any(|j| j.request.get("dataset").and_then(Value::as_str) == Some(dataset)))
            .unwrap_or(true)
    }

    /// Events of a job from now on.
    pub fn subscribe(self: &Arc<Self>, id: &str) -> broadcast::Receiver<JobEvent> {
        let mut channels = self.channels.lock().expect("channels lock");
        let fresh = !channels.contains_key(id);
        let rx = channels.entry(id.to_string()).or_insert_with(|| broadcast::channel(1024).0).subscribe();
        drop(channels);
        let running_here = self.inner.lock().expect("jobs lock").cancel.contains_key(id);
        if fresh && self.config.claim.is_some() && !running_here {
            self.clone().relay_stored_events(id.to_string());
        }
        rx
    }

    /// Emits the `state` and `epoch` changes of a job another process runs, read from the
    /// store every half second, while someone listens.
    fn relay_stored_events(self: Arc<Self>, id: String) {
        let spawned = std::thread::Builder::new().name(format!("relay-{id}")).spawn(move || {
            let mut last: Option<(JobState, Option<Value>)> = None;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                let listening = self.channels.lock().expect("channels lock").get(&id).map(|tx| tx.receiver_count());
                let Ok(Some(job)) = self.store.job(&id) else { break };
                if listening.unwrap_or(0) == 0 {
                    break;
                }
                let seen = last.as_ref();
                if seen.is_some_and(|(_, p)| *p != job.progress) || (seen.is_none() && job.progress.is_some()) {
                    if let Some(p) = &job.progress {
                        self.emit(&id, "epoch", p.clone());
                    }
                }
                if seen.is_none_or(|(s, _)| *s != job.state) {
                    let state = json!({ "state": job.state, "version": job.version, "error": job.error });
                    self.emit(&id, "state", state);
                }
                if job.state.is_finished() {
                    break;
                }
                last = Some((job.state, job.progress));
            }
            self.channels.lock().expect("channels lock").remove(&id);
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot relay a job's events");
        }
    }

    fn emit(&self, id: &str, kind: &'static str, data: Value) {
        if let Some(tx) = self.channels.lock().expect("channels lock").get(id) {
            let _ = tx.send(JobEvent { job: id.to_string(), kind, data });
        }
    }

    fn work(self: Arc<Self>) {
        loop {
            let (id, flag) = {
                let mut inner = self.inner.lock().expect("jobs lock");
                loop {
                    if inner.shutting_down {
                        return;
                    }
                    if let Some(id) = inner.queue.pop_front() {
                        let flag = Arc::new(AtomicBool::new(false));
                        inner.cancel.insert(id.clone(), flag.clone());
                        break (id, flag);
                    }
                    inner = self.wake.wait(inner).expect("jobs lock");
                }
            };
            self.run(&id, &flag, None);
            self.inner.lock().expect("jobs lock").cancel.remove(&id);
        }
    }

    /// Runs job `id` and records how it ended, unless `lost` says its lease went to another
    /// worker (or it was cancelled) meanwhile: then whoever holds it now records it.
    pub(crate) fn run(&self, id: &str, stop: &AtomicBool, lost: Option<&AtomicBool>) {
        let Ok(Some(mut job)) = self.store.job(id) else { return };
        if job.state.is_finished() {
            // Cancelled between its claim and now.
            return;
        }
        job.state = JobState::Running;
        job.started_at = Some(rfc3339_now());
        let _ = self.store.put_job(&job);
        self.emit(id, "state", json!({ "state": JobState::Running }));
        let started = Instant::now();
        let outcome = self.train(id, &job, stop, started);
        if lost.is_some_and(|l| l.load(Ordering::SeqCst)) {
            tracing::info!(job = id, "the job's lease was lost; leaving it to its new owner");
            return;
        }
        let shutting_down = self.inner.lock().expect("jobs lock").shutting_down;
        job.progress = self.store.job(id).ok().flatten().and_then(|j| j.progress).or(job.progress);
        match outcome {
            Ok((version, promoted)) => {
                job.state = JobState::Succeeded;
                job.version = Some(version);
                let mut p = job.progress.take().unwrap_or_else(|| json!({}));
                if let Some(obj) = p.as_object_mut() {
                    obj.insert("promoted".into(), json!(promoted));
                }
                job.progress = Some(p);
            }
            Err(e) if e.is_interrupted() && shutting_down => {
                job.state = JobState::Queued;
                let _ = self.store.put_job(&job);
                return;
            }
            Err(e) if e.is_interrupted() => job.state = JobState::Cancelled,
            Err(e) => {
                job.state = JobState::Failed;
                job.error = Some(e.to_string());
            }
        }
        job.finished_at = Some(rfc3339_now());
        let _ = self.store.put_job(&job);
        let _ = self.store.audit(
            &rfc3339_now(),
            "job-runner",
            &format!("job.{}", job.state),
            id,
            &json!({ "version": job.version, "error": job.error }).to_string(),
        );
        self.emit(id, "state", json!({ "state": job.state, "version": job.version, "error": job.error }));
    }

    /// Runs the fit and publishes; returns the version and whether a label moved.
    fn train(&self, id: &str, job: &JobRecord, stop: &AtomicBool, started: Instant) -> Result<(u64, bool), JobFailure> {
        let req: JobRequest = serde_json::from_value(job.request.clone())
            .map_err(|e| JobFailure::Request(format!("stored request: {e}")))?;
        let spec = req.validate().map_err(|e| JobFailure::Request(e.message))?;
        let dataset = self
            .store
            .dataset(&req.dataset)
            .ok()
            .flatten()
            .ok_or_else(|| JobFailure::Request(format!("dataset {:?} is gone", req.dataset)))?;
        let dataset_dir = self.config.datasets_root.join(&req.dataset);
        fetch_dataset(&self.repo, &dataset, &dataset_dir).map_err(JobFailure::Request)?;
        let path = lathe_train::data::dataset_path(&dataset_dir);
        let checkpoint_dir = self.repo.root().join(".checkpoints").join(id);
        let shipper = CheckpointShipper { repo: &self.repo, job: id, dir: &checkpoint_dir, pending: false };
        shipper.pull();
        let digests: String = dataset.files.iter().map(|f| format!("{}:{}\n", f.name, f.sha256)).collect();
        let run = TrainRun {
            repo: &self.repo,
            name: &req.name,
            spec: Some(spec),
            task: None,
            seed: None,
            data: &path,
            source: &req.dataset,
            label_columns: req.label_columns(),
            test_fraction: 0.2,
            threads: self.config.threads_per_job,
            checkpoints: CheckpointStore::new(&checkpoint_dir),
            resume: true,
            stop: Some(stop),
            job: Some(JobOrigin {
                id: id.to_string(),
                dataset: req.dataset.clone(),
                dataset_sha256: lathe_formats::atomic::sha256_hex(digests.as_bytes()),
                started,
            }),
        };
        let mut observer = JobObserver { runner: self, id, last_progress: Instant::now(), shipper };
        let trained = train_version(run, &mut observer)?;
        observer.shipper.remove();
        if let Some(e) = &trained.checkpoint_left {
            tracing::warn!(job = id, error = %e, "the job's checkpoint could not be removed");
        }
        let version = trained.published.version;
        let promoted = match &req.auto_promote {
            Some(rule) => self.promote(&req.name, version, rule).map_err(JobFailure::Promote)?,
            None => false,
        };
        self.emit(id, "log", json!({ "message": format!("published {}:{version}", req.name), "promoted": promoted }));
        Ok((version, promoted))
    }

    /// Moves the rule's label to `version` when its metric is at least the labelled version's.
    fn promote(
        &self,
        name: &str,
        version: u64,
        rule: &crate::AutoPromote,
    ) -> Result<bool, lathe_registry::RegistryError> {
        let metric = |v: u64| -> Option<f64> {
            let m = self
                .repo
                .resolve(&lathe_types::ModelRef { name: name.to_string(), version: Some(v) })
                .ok()?
                .manifest
                .metrics()
                .cloned()?;
            rule.metric_of(&m)
        };
        let current = self.repo.shared_labels(name)?.get(&rule.label).copied();
        let better = match (metric(version), current) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(new), Some(c)) => new >= metric(c).unwrap_or(f64::MAX),
        };
        if better {
            self.repo.set_label(name, &rule.label, version)?;
            let _ = self.store.audit(
                &rfc3339_now(),
                "job-runner",
                "label.promote",
                name,
                &json!({ "label": rule.label, "version": version, "from": current }).to_string(),
            );
        }
        Ok(better)
    }
}

/// Why a job published nothing.
#[derive(Debug, thiserror::Error)]
enum JobFailure {
    /// The stored request or its dataset is unusable.
    #[error("{0}")]
    Request(String),
    /// Training or publishing failed, or the job was stopped.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// The version was published but its label could not be moved.
    #[error(transparent)]
    Promote(lathe_registry::RegistryError),
}

impl JobFailure {
    /// Whether the run stopped at a batch boundary (cancelled, or the server shutting down).
    fn is_interrupted(&self) -> bool {
        matches!(self, JobFailure::Version(v) if v.is_interrupted())
    }
}

/// Forwards a job's fit events to its subscribers and its stored progress.
struct JobObserver<'a> {
    runner: &'a JobRunner,
    id: &'a str,
    last_progress: Instant,
    /// Keeps the fit's checkpoints in the object store, for a worker that takes over.
    shipper: CheckpointShipper<'a>,
}

impl TrainObserver for JobObserver<'_> {
    fn event(&mut self, e: &Event) {
        self.shipper.after_event(matches!(e, Event::EpochEnd(_)));
        let (kind, data) = match e {
            Event::EpochEnd(r) => ("epoch", serde_json::to_value(r).expect("record serialises")),
            Event::Progress { .. } if self.last_progress.elapsed().as_millis() < 200 => return,
            other => ("progress", serde_json::to_value(other).expect("event serialises")),
        };
        self.last_progress = Instant::now();
        if kind == "epoch" {
            if let Ok(Some(mut j)) = self.runner.store.job(self.id) {
                j.progress = Some(data.clone());
                let _ = self.runner.store.put_job(&j);
            }
        }
        self.runner.emit(self.id, kind, data);
    }
}
