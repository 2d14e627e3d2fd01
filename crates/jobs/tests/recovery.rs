//! Restart recovery: the store is brought in line with the version folders.

use std::sync::Arc;

use lathe_jobs::{JobRunner, JobsConfig};
use lathe_registry::Repository;
use lathe_store::{JobRecord, JobState, MetadataStore, SqliteStore};

#[test]
fn a_job_whose_version_was_published_before_a_crash_is_recorded_as_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("lathe.db")).unwrap());
    let repo = Repository::new(dir.path().join("models"));
    // A version whose manifest names job "job-1", published just before the crash.
    let manifest_json = serde_json::json!({
        "format": 1, "name": "m", "kind": "native-sequential", "created_at": "t", "lathe_version": "x", "spec": {},
        "signature": {"inputs": [], "outputs": []}, "preprocessing": {"kind": "none"}, "class_names": [],
        "metrics": {
            "samples": 0, "loss": 0.0, "accuracy": 0.0, "macro_precision": 0.0, "macro_recall": 0.0, "macro_f1": 0.0,
            "per_class": [], "confusion": []
        },
        "history": [],
        "data": {
            "source": "d", "format": "idx", "fingerprint": "f",
            "train_samples": 0, "validation_samples": 0, "test_samples": 0
        },
        "seed": 1,
        "training": {"epochs_run": 1, "stopped_early": false, "best_epoch": 1, "fit_seconds": 0.0, "resumed": false},
        "job": {"job": "job-1", "dataset": "d", "dataset_sha256": "s", "parent_version": null, "duration_seconds": 1.0},
        "files": {}
    });
    let manifest: lathe_formats::Manifest = serde_json::from_value(manifest_json).unwrap();
    repo.publish("m", &[], manifest).unwrap();
    store
        .put_job(&JobRecord {
            id: "job-1".into(),
            request: serde_json::json!({"name": "m", "dataset": "d", "spec": {}}),
            state: JobState::Running,
            version: None,
            error: None,
            progress: None,
            created_at: "t".into(),
            started_at: Some("t".into()),
            finished_at: None,
        })
        .unwrap();
    let runner = JobRunner::start(
        store.clone(),
        repo,
        JobsConfig {
            max_concurrent: 1,
            max_queued: 10,
            datasets_root: dir.path().join("datasets"),
            threads_per_job: 1,
            claim: None,
        },
    )
    .unwrap();
    let job = store.job("job-1").unwrap().unwrap();
    assert_eq!((job.state.as_str(), job.version), ("succeeded", Some(1)));
    runner.shutdown();
}
