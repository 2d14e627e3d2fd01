//! The reconcile plan (a pure function) and a reconcile paused in its scan.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use lathe_engine::{Loader, Servable};
use lathe_formats::Manifest;
use lathe_registry::{Repository, Route, Traffic};
use lathe_types::{ApiError, DType, Signature, Tensor, TensorData, TensorSignature};

use super::reconcile::{plan, ModelPlan, ModelScan, RepoScan, Step};
use super::{LoadState, Manager, ModelEntry, Selector, ServeOptions, VersionEntry};
use crate::{BatchConfig, ModelConfig, VersionPolicy};

fn scanned(versions: &[u64], policy: VersionPolicy) -> ModelScan {
    ModelScan {
        versions: versions.to_vec(),
        signatures: versions.iter().map(|&v| (v, 100 + v)).collect(),
        config: ModelConfig { version_policy: policy, batching: BatchConfig::default() },
        config_error: None,
        labels: BTreeMap::new(),
        traffic: None,
    }
}

fn entry(states: &[(u64, LoadState)]) -> ModelEntry {
    let versions = states
        .iter()
        .map(|&(v, state)| (v, VersionEntry { state, ..VersionEntry::loading(Default::default()) }))
        .collect();
    ModelEntry {
        versions,
        labels: BTreeMap::new(),
        traffic: None,
        config: ModelConfig::defaults(&BatchConfig::default()),
        config_error: None,
        unloaded_by_api: false,
    }
}

fn one(scan: ModelScan, current: Option<ModelEntry>) -> ModelPlan {
    let scan: RepoScan = [("m".to_string(), scan)].into();
    let models: BTreeMap<String, ModelEntry> = current.into_iter().map(|e| ("m".to_string(), e)).collect();
    plan(&scan, &models).remove("m").unwrap()
}

const LATEST: VersionPolicy = VersionPolicy::Latest { num_versions: 1 };

#[test]
fn a_new_model_loads_what_its_policy_selects() {
    assert_eq!(one(scanned(&[1, 2, 3], LATEST), None), ModelPlan { load: vec![3], ..Default::default() });
    let all = one(scanned(&[1, 2], VersionPolicy::All {}), None);
    assert_eq!(all.load, vec![1, 2]);
}

#[test]
fn a_superseded_version_serves_until_its_successor_is_ready() {
    let current = entry(&[(2, LoadState::Ready)]);
    assert_eq!(one(scanned(&[2, 3], LATEST), Some(current)), ModelPlan { load: vec![3], ..Default::default() });
    let loading = entry(&[(2, LoadState::Ready), (3, LoadState::Loading)]);
    assert_eq!(one(scanned(&[2, 3], LATEST), Some(loading)), ModelPlan::default());
    let ready = entry(&[(2, LoadState::Ready), (3, LoadState::Ready)]);
    let p = one(scanned(&[2, 3], LATEST), Some(ready));
    assert_eq!(p, ModelPlan { unload: vec![(2, "not selected by the version policy")], ..Default::default() });
}

#[test]
fn removed_versions_unload_at_once_and_failed_ones_are_forgotten() {
    let current = entry(&[(1, LoadState::Ready), (2, LoadState::Unavailable), (3, LoadState::Loading)]);
    let p = one(scanned(&[3], LATEST), Some(current));
    let want = ModelPlan { load: vec![], unload: vec![(1, "removed from the repository")], forget: vec![2] };
    assert_eq!(p, want);
}

#[test]
fn labels_and_traffic_keep_the_versions_they_name() {
    let mut s = scanned(&[1, 2, 3, 4], LATEST);
    s.labels.insert("stable".into(), 1);
    s.labels.insert("gone".into(), 9);
    let route = |target: &str| Route { target: target.into(), weight: 1 };
    s.traffic = Some(Traffic { routes: vec![route("2"), route("stable")], shadow: None });
    assert_eq!(one(s, None).load, vec![1, 2, 4]);
}

#[test]
fn a_failed_load_is_retried_only_when_its_folder_changes() {
    let failed = |signature| {
        let mut e = entry(&[(2, LoadState::Unavailable)]);
        e.versions.get_mut(&2).unwrap().failed_signature = Some(signature);
        e
    };
    assert_eq!(one(scanned(&[2], LATEST), Some(failed(102))).load, Vec::<u64>::new());
    assert_eq!(one(scanned(&[2], LATEST), Some(failed(7))).load, vec![2]);
}

#[test]
fn a_model_unloaded_on_request_serves_nothing() {
    let mut current = entry(&[(1, LoadState::Ready)]);
    current.unloaded_by_api = true;
    let p = one(scanned(&[1], LATEST), Some(current));
    assert_eq!(p, ModelPlan { unload: vec![(1, "not selected by the version policy")], ..Default::default() });
}

#[test]
fn a_vanished_model_unloads_everything() {
    let current = entry(&[(1, LoadState::Ready), (2, LoadState::Unavailable), (3, LoadState::Loading)]);
    let models: BTreeMap<String, ModelEntry> = [("gone".to_string(), current)].into();
    let p = plan(&RepoScan::new(), &models).remove("gone").unwrap();
    assert_eq!(p, ModelPlan { load: vec![], unload: vec![(1, "removed from the repository")], forget: vec![2] });
}

/// Doubles its input.
struct Double(Signature);

impl Servable for Double {
    fn signature(&self) -> &Signature {
        &self.0
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        let TensorData::F32(x) = &inputs[0].data else { unreachable!("conformed to FP32") };
        let data = TensorData::F32(x.iter().map(|v| v * 2.0).collect());
        Ok(vec![Tensor { name: "y".into(), shape: inputs[0].shape.clone(), data }])
    }

    fn platform(&self) -> &str {
        "test"
    }
}

struct DoubleLoader;

impl Loader for DoubleLoader {
    fn load(&self, _dir: &std::path::Path, _manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        let t = |name: &str| TensorSignature { name: name.into(), datatype: DType::F32, shape: vec![-1, 2] };
        Ok(Arc::new(Double(Signature { inputs: vec![t("x")], outputs: vec![t("y")] })))
    }
}

fn serving_manager(dir: &std::path::Path) -> Arc<Manager> {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../formats/tests/fixtures/manifest-native-sequential.json");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    let repo = Repository::new(dir);
    repo.publish("m", &[], manifest).unwrap();
    let manager = Manager::new(repo, Arc::new(DoubleLoader), ServeOptions::default());
    manager.reconcile();
    let deadline = Instant::now() + Duration::from_secs(10);
    while manager.resolve("m", &Selector::Default).is_err() {
        assert!(Instant::now() < deadline, "the version never became ready");
        std::thread::sleep(Duration::from_millis(5));
    }
    manager
}

#[test]
fn requests_are_served_while_a_scan_is_paused_and_the_lock_is_held_only_to_apply() {
    let dir = tempfile::tempdir().unwrap();
    let manager = serving_manager(dir.path());
    let (paused_tx, paused) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let applied_under_lock = Arc::new(AtomicBool::new(false));
    let weak = Arc::downgrade(&manager);
    let seen = applied_under_lock.clone();
    *manager.hook.lock().unwrap() = Some(Arc::new(move |step: Step| match step {
        Step::Scanning(_) => {
            paused_tx.send(()).unwrap();
            release_rx.lock().unwrap().recv().unwrap();
        }
        Step::Applying => {
            let m = weak.upgrade().unwrap();
            seen.store(m.models.try_read().is_err(), Ordering::SeqCst);
        }
    }));
    let reconciler = {
        let m = manager.clone();
        std::thread::spawn(move || m.reconcile())
    };
    paused.recv_timeout(Duration::from_secs(10)).expect("the scan reached the hook");
    // Mid-scan: the models lock is free, requests resolve and compute.
    assert!(manager.models.try_write().is_ok(), "no lock is held while scanning");
    let loaded = manager.resolve("m", &Selector::Default).unwrap();
    let x = Tensor { name: "x".into(), shape: vec![1, 2], data: TensorData::F32(vec![1.5, -2.0]) };
    let reply = loaded.batcher.submit(vec![x], 1).unwrap().blocking_recv().unwrap().unwrap();
    assert_eq!(reply[0].data, TensorData::F32(vec![3.0, -4.0]));
    assert!(!applied_under_lock.load(Ordering::SeqCst), "nothing applied before the scan finished");
    release.send(()).unwrap();
    reconciler.join().unwrap();
    assert!(applied_under_lock.load(Ordering::SeqCst), "the plan is applied under the write lock");
    *manager.hook.lock().unwrap() = None;
    assert_eq!(manager.model("m").unwrap().versions[0].state, LoadState::Ready);
}
