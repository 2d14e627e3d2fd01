//! Publishing into a real folder: numbering, digests, atomicity, concurrency, resolution.

use std::fs;

use lathe_formats::{DataLineage, Evaluation, Manifest, ModelSection, SequentialSection, TrainingInfo, MANIFEST_FILE};
use lathe_registry::{RegistryError, Repository};
use lathe_types::{DType, ModelRef, Signature, TensorSignature};

fn manifest(name: &str) -> Manifest {
    Manifest {
        format: 1,
        name: name.into(),
        created_at: "2026-01-01T00:00:00Z".into(),
        lathe_version: "test".into(),
        signature: Signature {
            inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 2] }],
            outputs: vec![TensorSignature { name: "probabilities".into(), datatype: DType::F32, shape: vec![-1, 2] }],
        },
        model: ModelSection::Sequential(SequentialSection {
            spec: serde_json::json!({}),
            preprocessing: lathe_formats::Preprocessing::None,
            class_names: vec!["a".into(), "b".into()],
            feature_names: vec![],
            columns: vec![],
            targets: vec![],
            metrics: Evaluation { accuracy: Some(0.5), ..Evaluation::default() },
            history: vec![],
            data: DataLineage {
                source: "x".into(),
                format: "csv".into(),
                fingerprint: "f".into(),
                train_samples: 0,
                validation_samples: 0,
                test_samples: 0,
            },
            seed: 1,
            training: TrainingInfo {
                epochs_run: 1,
                stopped_early: false,
                best_epoch: 1,
                fit_seconds: 0.0,
                resumed: false,
            },
            job: None,
        }),
        files: Default::default(),
    }
}

fn latest(name: &str) -> ModelRef {
    ModelRef { name: name.into(), version: None }
}

#[test]
fn versions_are_numbered_and_digested() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path());
    let p1 = repo.publish("m", &[("weights.safetensors", b"one")], manifest("m")).unwrap();
    let p2 = repo.publish("m", &[("weights.safetensors", b"two!")], manifest("m")).unwrap();
    assert_eq!((p1.version, p2.version), (1, 2));
    assert_eq!(repo.versions("m").unwrap(), vec![1, 2]);
    assert_eq!(repo.models(), vec!["m".to_string()]);
    let v2 = repo.resolve(&latest("m")).unwrap();
    assert_eq!(v2.version, 2);
    let entry = &v2.manifest.files["weights.safetensors"];
    assert_eq!(entry.bytes, 4);
    assert_eq!(entry.sha256, lathe_formats::atomic::sha256_hex(b"two!"));
    assert_eq!(fs::read(v2.path.join("weights.safetensors")).unwrap(), b"two!");
    let v1 = repo.resolve(&"m:1".parse().unwrap()).unwrap();
    assert_eq!(v1.version, 1);
}

#[test]
fn missing_models_and_versions_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path());
    assert!(matches!(repo.resolve(&latest("none")), Err(RegistryError::ModelNotFound { .. })));
    repo.publish("m", &[], manifest("m")).unwrap();
    let e = repo.resolve(&"m:7".parse().unwrap()).unwrap_err();
    assert_eq!(e.to_string(), "model \"m\" has no version 7; available: [1]");
    assert!(repo.publish("../escape", &[], manifest("x")).is_err());
}

#[test]
fn a_killed_publish_is_invisible_and_cleaned_up() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path());
    // What a publisher killed mid-write leaves: a hidden temp folder of a dead process,
    // with weights but no manifest, and an incomplete numbered folder without a manifest.
    let stale = dir.path().join("m/.tmp-4194303-1");
    fs::create_dir_all(&stale).unwrap();
    fs::write(stale.join("weights.safetensors"), b"partial").unwrap();
    fs::create_dir_all(dir.path().join("m/5")).unwrap();
    assert!(repo.versions("m").unwrap().is_empty());
    assert!(repo.models().is_empty());
    let p = repo.publish("m", &[("weights.safetensors", b"w")], manifest("m")).unwrap();
    assert_eq!(p.version, 1);
    assert!(!stale.exists(), "stale temp folder removed");
    assert!(p.path.join(MANIFEST_FILE).is_file());
}

#[test]
fn concurrent_publishers_get_distinct_versions() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path());
    let versions: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let repo = repo.clone();
                s.spawn(move || {
                    let bytes = vec![i as u8; 1000];
                    repo.publish("m", &[("weights.safetensors", &bytes)], manifest("m")).unwrap().version
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut sorted = versions.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, vec![1, 2, 3, 4, 5, 6]);
    for v in 1..=6 {
        let info = repo.resolve(&ModelRef { name: "m".into(), version: Some(v) }).unwrap();
        let bytes = fs::read(info.path.join("weights.safetensors")).unwrap();
        assert_eq!(lathe_formats::atomic::sha256_hex(&bytes), info.manifest.files["weights.safetensors"].sha256);
    }
}
