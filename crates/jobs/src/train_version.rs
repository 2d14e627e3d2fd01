//! The one way a spec and a data set become a published model version: load, prepare,
//! fit (with checkpoints), evaluate on the test split, write the version's files and publish
//! them. `lathe train` and training jobs both call [`train_version`].

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use lathe_formats::spec::{MissingPolicy, Task};
use lathe_formats::{JobLineage, Spec, WeightsError};
use lathe_registry::{Published, RegistryError, Repository};
use lathe_train::data::{choose_task, Dataset, LoadOptions};
use lathe_train::default_spec;
use lathe_train::{auto_threads, fit, prepare, version_files, CheckpointStore, DataSource, Event, FitOptions};
use lathe_train::{FitResult, Prepared, TrainError};
use lathe_types::{ApiError, ErrorKind, HasErrorKind};

/// Everything one training run needs.
pub struct TrainRun<'a> {
    /// Where the version is published.
    pub repo: &'a Repository,
    /// Model name.
    pub name: &'a str,
    /// The spec; `None` trains the default network for the data and task
    /// (`lathe_train::default_spec`).
    pub spec: Option<Spec>,
    /// The task, over the spec's; `None` leaves it to the spec, else to the data.
    pub task: Option<Task>,
    /// The seed, over the spec's.
    pub seed: Option<u64>,
    /// The data set: an IDX folder or a CSV file.
    pub data: &'a Path,
    /// How the data set is named in the version's lineage (the path given, or the dataset).
    pub source: &'a str,
    /// Label columns of CSV data (default: the spec's `targets`, else `label`, else the last
    /// column).
    pub label_columns: Vec<String>,
    /// Fraction held out for the test evaluation, in [0, 1).
    pub test_fraction: f64,
    /// Threads per step (0: chosen from the step size).
    pub threads: usize,
    /// Where epoch checkpoints go; removed once the version is published.
    pub checkpoints: CheckpointStore,
    /// Continue from the checkpoint, if one matches.
    pub resume: bool,
    /// Set to stop at the next batch boundary; nothing is published then.
    pub stop: Option<&'a AtomicBool>,
    /// The training job, recorded in the manifest, when a job runs this.
    pub job: Option<JobOrigin>,
}

/// Where a version trained by a job came from.
pub struct JobOrigin {
    /// The job id.
    pub id: String,
    /// The dataset name.
    pub dataset: String,
    /// sha256 over the dataset's file digests (name order).
    pub dataset_sha256: String,
    /// When the job started running (the lineage records the duration).
    pub started: Instant,
}

/// What [`train_version`] reports while it runs.
pub trait TrainObserver {
    /// The data is loaded and split (before the fit starts); `default_spec` names the default
    /// network when no spec was given.
    fn prepared(&mut self, _prepared: &Prepared, _default_spec: Option<&str>, _load_seconds: f64) {}
    /// A fit event (progress, epoch end, …).
    fn event(&mut self, event: &Event);
}

/// A published version and the fit that made it.
pub struct TrainedVersion {
    /// The version as published.
    pub published: Published,
    /// The fit's result (history, test evaluation, timings).
    pub result: FitResult,
    /// Samples in the training split.
    pub train_samples: usize,
    /// Why the run's checkpoint could not be removed after publishing, if it could not (the
    /// version is published all the same; callers decide whether that matters).
    pub checkpoint_left: Option<std::io::Error>,
}

/// Why a training run published nothing.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    /// `test_fraction` is outside [0, 1).
    #[error("test fraction: expected a number in [0, 1), got {0}")]
    TestFraction(f64),
    /// Loading, preparing or fitting failed (or the run was interrupted).
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The weights could not be serialised.
    #[error(transparent)]
    Weights(#[from] WeightsError),
    /// The version could not be published.
    #[error(transparent)]
    Publish(#[from] RegistryError),
}

impl VersionError {
    /// Whether the run stopped at a batch boundary because its stop flag was set.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, VersionError::Train(TrainError::Interrupted))
    }
}

impl HasErrorKind for VersionError {
    fn error_kind(&self) -> ErrorKind {
        match self {
            VersionError::TestFraction(_) => ErrorKind::InvalidArgument,
            VersionError::Train(e) => e.error_kind(),
            VersionError::Publish(e) => e.error_kind(),
            VersionError::Weights(_) => ErrorKind::Internal,
        }
    }
}

impl From<VersionError> for ApiError {
    fn from(e: VersionError) -> ApiError {
        e.to_api_error()
    }
}

/// The spec to train: the given one, or the default for the data and the task (given, or
/// decided from the data: then with the reason), with the task and seed given over it; and the
/// default's name when it is one.
fn spec_for(
    spec: Option<Spec>,
    task: Option<Task>,
    seed: Option<u64>,
    data: &Dataset,
) -> (Spec, Option<&'static str>, Option<String>) {
    let (mut spec, default_name, reason) = match spec {
        Some(spec) => (spec, None, None),
        None => {
            let names = data.label_columns_or_default();
            let (task, reason) = choose_task(task, None, data.format, &data.train, &names);
            let (mut spec, name) = default_spec(data.format, task);
            // The defaults impute the missing cells of a table that has any.
            if data.missing_cell.is_some() {
                spec.input.preprocessing.missing = MissingPolicy::Impute;
            }
            (spec, Some(name), reason)
        }
    };
    if task.is_some() {
        spec.task = task;
    }
    if let Some(seed) = seed {
        spec.fit.seed = seed;
    }
    (spec, default_name, reason)
}

/// Loads the data, fits `run.spec`, evaluates on the test split and publishes the next
/// version of `run.name` (files first, manifest last; see `Repository::publish`).
///
/// # Errors
/// [`VersionError`] says which step failed; nothing is published then, and the checkpoint
/// stays for `resume`. A checkpoint that cannot be removed after publishing is no error
/// (see [`TrainedVersion::checkpoint_left`]).
pub fn train_version(run: TrainRun, observer: &mut dyn TrainObserver) -> Result<TrainedVersion, VersionError> {
    if !(0.0..1.0).contains(&run.test_fraction) {
        return Err(VersionError::TestFraction(run.test_fraction));
    }
    let load_start = Instant::now();
    let spec_targets = run.spec.as_ref().map(|s| s.targets.clone()).unwrap_or_default();
    let label_columns = if run.label_columns.is_empty() { spec_targets } else { run.label_columns };
    let dataset = Dataset::load(run.data, &LoadOptions { label_columns })?;
    let (format, feature_names) = (dataset.format, dataset.feature_names.clone());
    let (spec, default_name, task_reason) = spec_for(run.spec, run.task, run.seed, &dataset);
    let mut prepared = prepare(&spec, dataset, run.test_fraction, spec.fit.seed)?;
    prepared.task_reason = prepared.task_reason.or(task_reason);
    observer.prepared(&prepared, default_name, load_start.elapsed().as_secs_f64());
    let spec = &prepared.spec;
    let threads = if run.threads == 0 { auto_threads(spec) } else { run.threads };
    let result = fit(
        spec,
        &prepared,
        FitOptions {
            seed: spec.fit.seed,
            threads,
            stop: run.stop,
            checkpoints: Some(&run.checkpoints),
            resume: run.resume,
            on_event: &mut |e| observer.event(e),
        },
    )?;
    let source = DataSource { source: run.source, format, feature_names: &feature_names };
    let mut version = version_files(run.name, spec, &prepared, &source, &result)?;
    if let (Some(job), Some(section)) = (run.job, version.manifest.sequential_mut()) {
        section.job = Some(JobLineage {
            job: job.id,
            dataset: job.dataset,
            dataset_sha256: job.dataset_sha256,
            parent_version: run.repo.versions(run.name).ok().and_then(|v| v.last().copied()),
            duration_seconds: job.started.elapsed().as_secs_f64(),
        });
    }
    let published = run.repo.publish(run.name, &version.files(), version.manifest.clone())?;
    let checkpoint_left = run.checkpoints.remove().err();
    Ok(TrainedVersion { published, result, train_samples: prepared.train.len(), checkpoint_left })
}
