//! The job queue and its worker threads.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use lathe_formats::{JobLineage, WEIGHTS_FILE};
use lathe_registry::Repository;
use lathe_store::{JobRecord, MetadataStore};
use lathe_train::data::{Dataset, LoadOptions};
use lathe_train::{
    fit, prepare, rfc3339_now, version_files, CheckpointStore, DataSource, Event, FitOptions, TrainError,
};
use lathe_types::{ApiError, ErrorKind};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

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

const FINISHED: [&str; 3] = ["succeeded", "failed", "cancelled"];

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
        let mut pending = store.jobs(&["queued", "running"]).map_err(internal)?;
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
            if let Some(version) = runner.published_by(&job) {
                job.state = "succeeded".into();
                job.version = Some(version);
                job.finished_at = Some(rfc3339_now());
                runner.store.put_job(&job).map_err(internal)?;
                tracing::info!(job = %job.id, version, "recorded a version published before a restart");
                continue;
            }
            if job.state == "running" {
                job.state = "queued".into();
                runner.store.put_job(&job).map_err(internal)?;
                tracing::info!(job = %job.id, "re-queued after a restart; it resumes from its last checkpoint");
            }
            runner.inner.lock().expect("jobs lock").queue.push_back(job.id);
        }
        for i in 0..runner.config.max_concurrent.max(1) {
            let r = runner.clone();
            let handle = std::thread::Builder::new()
                .name(format!("job-worker-{i}"))
                .spawn(move || r.work())
                .map_err(internal)?;
            runner.workers.lock().expect("workers lock").push(handle);
        }
        Ok(runner)
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
        if inner.queue.len() >= self.config.max_queued {
            return Err(ApiError::new(
                ErrorKind::ResourceExhausted,
                format!("{} jobs are queued already; retry later", inner.queue.len()),
            ));
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let job = JobRecord {
            id: format!("job-{:x}{:x}", nanos, n),
            request: serde_json::to_value(&req).expect("request serialises"),
            state: "queued".into(),
            version: None,
            error: None,
            progress: None,
            created_at: rfc3339_now(),
            started_at: None,
            finished_at: None,
        };
        self.store.put_job(&job).map_err(internal)?;
        inner.queue.push_back(job.id.clone());
        drop(inner);
        self.wake.notify_one();
        self.emit(&job.id, "state", json!({ "state": "queued" }));
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
        if FINISHED.contains(&job.state.as_str()) {
            return Err(ApiError::new(ErrorKind::Conflict, format!("job {id:?} already {}", job.state)));
        }
        let mut inner = self.inner.lock().expect("jobs lock");
        if let Some(pos) = inner.queue.iter().position(|j| j == id) {
            inner.queue.remove(pos);
            drop(inner);
            job.state = "cancelled".into();
            job.finished_at = Some(rfc3339_now());
            self.store.put_job(&job).map_err(internal)?;
            self.emit(id, "state", json!({ "state": "cancelled" }));
        } else if let Some(flag) = inner.cancel.get(id) {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(job)
    }

    /// Whether a queued or running job trains on `dataset`.
    pub fn dataset_in_use(&self, dataset: &str) -> bool {
        self.store
            .jobs(&["queued", "running"])
            .map(|jobs| jobs.iter().any(|j| j.request.get("dataset").and_then(Value::as_str) == Some(dataset)))
            .unwrap_or(true)
    }

    /// Events of a job from now on.
    pub fn subscribe(&self, id: &str) -> broadcast::Receiver<JobEvent> {
        self.channels
            .lock()
            .expect("channels lock")
            .entry(id.to_string())
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
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
            self.run(&id, &flag);
            self.inner.lock().expect("jobs lock").cancel.remove(&id);
        }
    }

    fn run(&self, id: &str, stop: &AtomicBool) {
        let Ok(Some(mut job)) = self.store.job(id) else { return };
        job.state = "running".into();
        job.started_at = Some(rfc3339_now());
        let _ = self.store.put_job(&job);
        self.emit(id, "state", json!({ "state": "running" }));
        let started = Instant::now();
        let outcome = self.train(id, &job, stop, started);
        let shutting_down = self.inner.lock().expect("jobs lock").shutting_down;
        job.progress = self.store.job(id).ok().flatten().and_then(|j| j.progress).or(job.progress);
        match outcome {
            Ok((version, promoted)) => {
                job.state = "succeeded".into();
                job.version = Some(version);
                let mut p = job.progress.take().unwrap_or_else(|| json!({}));
                if let Some(obj) = p.as_object_mut() {
                    obj.insert("promoted".into(), json!(promoted));
                }
                job.progress = Some(p);
            }
            Err(TrainError::Interrupted) if shutting_down => {
                job.state = "queued".into();
                let _ = self.store.put_job(&job);
                return;
            }
            Err(TrainError::Interrupted) => job.state = "cancelled".into(),
            Err(e) => {
                job.state = "failed".into();
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
    fn train(&self, id: &str, job: &JobRecord, stop: &AtomicBool, started: Instant) -> Result<(u64, bool), TrainError> {
        let req: JobRequest = serde_json::from_value(job.request.clone())
            .map_err(|e| TrainError::Data(format!("stored request: {e}")))?;
        let spec = req.validate().map_err(|e| TrainError::Data(e.message))?;
        let dataset = self
            .store
            .dataset(&req.dataset)
            .ok()
            .flatten()
            .ok_or_else(|| TrainError::Data(format!("dataset {:?} is gone", req.dataset)))?;
        let dir = self.config.datasets_root.join(&req.dataset);
        let path = lathe_train::data::dataset_path(&dir);
        let data = Dataset::load(&path, &LoadOptions { label_column: req.label_column.clone() })?;
        let (format, feature_names) = (data.format, data.feature_names.clone());
        let prepared = prepare(&spec, data, 0.2, spec.fit.seed)?;
        let checkpoints = CheckpointStore::new(self.repo.root().join(".checkpoints").join(id));
        let mut last_progress = Instant::now();
        let mut on_event = |e: &Event| {
            let (kind, data) = match e {
                Event::EpochEnd(r) => ("epoch", serde_json::to_value(r).expect("record serialises")),
                Event::Progress { .. } if last_progress.elapsed().as_millis() < 200 => return,
                other => ("progress", serde_json::to_value(other).expect("event serialises")),
            };
            last_progress = Instant::now();
            if kind == "epoch" {
                if let Ok(Some(mut j)) = self.store.job(id) {
                    j.progress = Some(data.clone());
                    let _ = self.store.put_job(&j);
                }
            }
            self.emit(id, kind, data);
        };
        let threads = if self.config.threads_per_job == 0 {
            lathe_train::auto_threads(&spec)
        } else {
            self.config.threads_per_job
        };
        let result = fit(
            &spec,
            &prepared,
            FitOptions {
                seed: spec.fit.seed,
                threads,
                stop: Some(stop),
                checkpoints: Some(&checkpoints),
                resume: true,
                on_event: &mut on_event,
            },
        )?;
        let source = DataSource { source: &req.dataset, format, feature_names: &feature_names };
        let (weights, mut manifest) = version_files(&req.name, &spec, &prepared, &source, &result)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let parent = self.repo.versions(&req.name).ok().and_then(|v| v.last().copied());
        let digests: String = dataset.files.iter().map(|f| format!("{}:{}\n", f.name, f.sha256)).collect();
        let Some(section) = manifest.sequential_mut() else {
            return Err(TrainError::Data("training produced a manifest of another kind".into()));
        };
        section.job = Some(JobLineage {
            job: id.to_string(),
            dataset: req.dataset.clone(),
            dataset_sha256: lathe_formats::atomic::sha256_hex(digests.as_bytes()),
            parent_version: parent,
            duration_seconds: started.elapsed().as_secs_f64(),
        });
        let published = self
            .repo
            .publish(&req.name, &[(WEIGHTS_FILE, &weights)], manifest)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let _ = checkpoints.remove();
        let promoted = match &req.auto_promote {
            Some(rule) => {
                self.promote(&req.name, published.version, rule).map_err(|e| TrainError::Data(e.to_string()))?
            }
            None => false,
        };
        self.emit(
            id,
            "log",
            json!({ "message": format!("published {}:{}", req.name, published.version), "promoted": promoted }),
        );
        Ok((published.version, promoted))
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
            Some(if rule.metric == "macro_f1" { m.macro_f1 } else { m.accuracy })
        };
        let current = self.repo.labels(name)?.get(&rule.label).copied();
        let better = match current {
            None => true,
            Some(c) => metric(version).unwrap_or(f64::MIN) >= metric(c).unwrap_or(f64::MAX),
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
