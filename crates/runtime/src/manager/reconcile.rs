//! Reconciling in three steps: [`scan`] reads the repository without any lock, [`plan`]
//! decides (a pure function of the scan and the current entries) what to load, unload and
//! forget, and [`Manager::apply`] carries the plan out under the models write lock, which is
//! therefore held only for in-memory updates, never for disk reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use lathe_registry::{Repository, Traffic};

use super::{LoadState, LoadedVersion, Manager, ModelEntry, VersionEntry};
use crate::{BatchConfig, ModelConfig};

/// What the repository holds for one model, read without any lock.
#[derive(Debug, Clone)]
pub(super) struct ModelScan {
    /// Published versions, ascending.
    pub versions: Vec<u64>,
    /// The folder signatures (names, sizes, modification times of its files) of the versions
    /// that failed to load: a changed signature is what makes them worth another try.
    pub signatures: BTreeMap<u64, u64>,
    /// The model's configuration (defaults when `config.json` is absent or invalid).
    pub config: ModelConfig,
    /// Why `config.json` was rejected, if it was.
    pub config_error: Option<String>,
    /// Labels and the versions they name.
    pub labels: BTreeMap<String, u64>,
    /// Traffic policy (none when absent or unreadable).
    pub traffic: Option<Traffic>,
}

/// Every model folder of the repository.
pub(super) type RepoScan = BTreeMap<String, ModelScan>;

/// Where a reconcile is, for tests that pause it.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// About to read this model's folder (no lock held).
    Scanning(&'a str),
    /// Carrying out the plan (the models write lock held).
    Applying,
}

/// What to change for one model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ModelPlan {
    /// Versions to start loading.
    pub load: Vec<u64>,
    /// Serving versions to drain and unload, with the reason shown while they do.
    pub unload: Vec<(u64, &'static str)>,
    /// Versions to forget (unavailable and gone from disk).
    pub forget: Vec<u64>,
}

/// What to change, by model; models present in the scan also take its configuration,
/// labels and traffic policy.
pub(super) type Plan = BTreeMap<String, ModelPlan>;

const NOT_SELECTED: &str = "not selected by the version policy";
const REMOVED: &str = "removed from the repository";

/// Reads every model folder: versions, configuration, labels, traffic policy, and the folder
/// signatures of the versions in `failed` (model, version).
pub(super) fn scan(
    repo: &Repository,
    defaults: &BatchConfig,
    failed: &BTreeSet<(String, u64)>,
    on_model: impl Fn(&str),
) -> RepoScan {
    let mut out = RepoScan::new();
    for name in repo.models() {
        on_model(&name);
        let versions = repo.versions(&name).unwrap_or_default();
        let dir = repo.root().join(&name);
        let signatures = versions
            .iter()
            .filter(|&&v| failed.contains(&(name.clone(), v)))
            .map(|&v| (v, folder_signature(&dir.join(v.to_string()))))
            .collect();
        let (config, config_error) = read_config(repo, &name, defaults);
        let labels = repo.labels(&name).unwrap_or_default();
        let traffic = repo.traffic(&name).unwrap_or_else(|e| {
            tracing::warn!(model = %name, error = %e, "ignoring an unreadable traffic.json");
            None
        });
        out.insert(name, ModelScan { versions, signatures, config, config_error, labels, traffic });
    }
    out
}

fn read_config(repo: &Repository, name: &str, defaults: &BatchConfig) -> (ModelConfig, Option<String>) {
    let path = repo.config_path(name);
    match std::fs::read(&path) {
        Ok(bytes) => match ModelConfig::parse(&bytes, defaults) {
            Ok(c) => (c, None),
            Err(e) => {
                tracing::warn!(model = name, error = %e, "invalid config.json; using defaults");
                (ModelConfig::defaults(defaults), Some(format!("{}: {e}", path.display())))
            }
        },
        Err(_) => (ModelConfig::defaults(defaults), None),
    }
}

/// Decides what to change so that `models` serves what `scan` says it should.
///
/// Served: what the version policy selects, plus every version a label or the traffic policy
/// names (so canaries, pinned labels and rollbacks have something to hit); nothing for models
/// unloaded on request. Selected versions not loaded start loading, as do failed ones whose
/// folder changed. Availability first: a serving version no longer selected keeps serving
/// until a selected one is ready (or its folder is gone, or the model was unloaded on
/// request). Models whose folder disappeared unload everything.
pub(super) fn plan(scan: &RepoScan, models: &BTreeMap<String, ModelEntry>) -> Plan {
    let mut plan = Plan::new();
    for (name, model) in scan {
        let entry = models.get(name);
        let unloaded_by_api = entry.is_some_and(|e| e.unloaded_by_api);
        let no_versions = BTreeMap::new();
        let versions = entry.map_or(&no_versions, |e| &e.versions);
        let desired = if unloaded_by_api { BTreeSet::new() } else { desired(model) };
        let mut p = ModelPlan::default();
        for &v in &desired {
            // Unloaded versions load again; failed ones once their folder changed (one that
            // failed after the scan began has no signature yet and waits for the next scan).
            let retry = |e: &VersionEntry| {
                e.state == LoadState::Unavailable
                    && e.failed_signature.is_none_or(|s| model.signatures.get(&v).is_some_and(|&now| now != s))
            };
            if versions.get(&v).is_none_or(retry) {
                p.load.push(v);
            }
        }
        let selected_ready = desired.iter().any(|v| versions.get(v).is_some_and(|e| e.state == LoadState::Ready));
        let unload_superseded = selected_ready || desired.is_empty() || unloaded_by_api;
        for (v, e) in versions {
            let on_disk = model.versions.contains(v);
            if !desired.contains(v) && e.state == LoadState::Ready && (!on_disk || unload_superseded) {
                p.unload.push((*v, if on_disk { NOT_SELECTED } else { REMOVED }));
            }
            if !on_disk && e.state == LoadState::Unavailable {
                p.forget.push(*v);
            }
        }
        plan.insert(name.clone(), p);
    }
    for (name, entry) in models.iter().filter(|(n, _)| !scan.contains_key(*n)) {
        let mut p = ModelPlan::default();
        for (v, e) in &entry.versions {
            match e.state {
                LoadState::Ready => p.unload.push((*v, REMOVED)),
                LoadState::Unavailable => p.forget.push(*v),
                LoadState::Loading | LoadState::Unloading => {}
            }
        }
        plan.insert(name.clone(), p);
    }
    plan
}

/// The versions a model should serve (before any unload on request).
fn desired(model: &ModelScan) -> BTreeSet<u64> {
    let on_disk = &model.versions;
    let mut d: BTreeSet<u64> = model.config.version_policy.select(on_disk).into_iter().collect();
    d.extend(model.labels.values().copied().filter(|v| on_disk.contains(v)));
    if let Some(t) = &model.traffic {
        let named = t.routes.iter().map(|r| &r.target).chain(t.shadow.as_ref().map(|s| &s.target));
        let named = named.filter_map(|x| lathe_registry::target_version(x, &model.labels));
        d.extend(named.filter(|v| on_disk.contains(v)));
    }
    d
}

/// Background work a plan starts once the lock is released.
pub(super) enum Task {
    /// Load a version with these batching settings.
    Load(String, u64, BatchConfig),
    /// Drain and unload a version.
    Unload(String, u64, Arc<LoadedVersion>),
}

impl Manager {
    /// Brings the loaded versions in line with the repository: scan (no lock), plan and apply
    /// (a short write lock), then start loads and unloads on their own threads. Reconciles run
    /// one at a time, so a slow scan never overwrites a newer one.
    pub fn reconcile(self: &Arc<Self>) {
        let _one_at_a_time = self.reconciling.lock().unwrap_or_else(|e| e.into_inner());
        let scan = scan(&self.repo, &self.options.defaults, &self.failed_versions(), |_name| {
            #[cfg(test)]
            self.at(Step::Scanning(_name));
        });
        let tasks = {
            let mut models = self.models.write().expect("models lock");
            #[cfg(test)]
            self.at(Step::Applying);
            let plan = plan(&scan, &models);
            apply(plan, scan, &mut models)
        };
        for task in tasks {
            let me = self.clone();
            let (thread, work): (String, Box<dyn FnOnce() + Send>) = match task {
                Task::Load(name, v, batching) => {
                    (format!("load-{name}-{v}"), Box::new(move || me.load_version(&name, v, batching)))
                }
                Task::Unload(name, v, loaded) => (
                    format!("unload-{name}-{v}"),
                    Box::new(move || {
                        me.drain_and_unload(&name, v, loaded);
                        // A version wanted again while it drained loads now, not at the next poll.
                        me.reconcile();
                    }),
                ),
            };
            std::thread::Builder::new().name(thread).spawn(work).expect("spawn a load or unload thread");
        }
        self.reconciled_once.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Manager {
    /// The versions whose last load failed, as (model, version).
    fn failed_versions(&self) -> BTreeSet<(String, u64)> {
        let models = self.models.read().expect("models lock");
        let failed = models.iter().flat_map(|(name, m)| {
            m.versions.iter().filter(|(_, e)| e.failed_signature.is_some()).map(move |(v, _)| (name.clone(), *v))
        });
        failed.collect()
    }
}

/// Carries out `plan` on `models`; returns the loads and unloads to start.
pub(super) fn apply(plan: Plan, mut scan: RepoScan, models: &mut BTreeMap<String, ModelEntry>) -> Vec<Task> {
    let mut tasks = Vec::new();
    for (name, p) in plan {
        let scanned = scan.remove(&name);
        let Some(entry) = models_entry(models, &name, scanned.as_ref()) else { continue };
        if let Some(s) = scanned {
            entry.labels = s.labels;
            entry.traffic = s.traffic;
            entry.config_error = s.config_error;
            entry.config = s.config;
        }
        for v in p.load {
            let stats = entry.versions.get(&v).map(|e| e.stats.clone()).unwrap_or_default();
            entry.versions.insert(v, VersionEntry::loading(stats));
            tasks.push(Task::Load(name.clone(), v, entry.config.batching.clone()));
        }
        for (v, reason) in p.unload {
            let Some(e) = entry.versions.get_mut(&v) else { continue };
            if let Some(loaded) = e.loaded.take() {
                e.state = LoadState::Unloading;
                e.reason = reason.into();
                tasks.push(Task::Unload(name.clone(), v, loaded));
            }
        }
        for v in p.forget {
            entry.versions.remove(&v);
        }
    }
    tasks
}

/// The entry of `name`, created for models seen for the first time.
fn models_entry<'m>(
    models: &'m mut BTreeMap<String, ModelEntry>,
    name: &str,
    scanned: Option<&ModelScan>,
) -> Option<&'m mut ModelEntry> {
    if !models.contains_key(name) {
        let config = scanned?.config.clone();
        let entry = ModelEntry {
            versions: BTreeMap::new(),
            labels: BTreeMap::new(),
            traffic: None,
            config,
            config_error: None,
            unloaded_by_api: false,
        };
        models.insert(name.to_string(), entry);
    }
    models.get_mut(name)
}

/// A cheap signature of a folder's contents (names, sizes, modification times).
pub(super) fn folder_signature(dir: &Path) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |x: u64| {
        h ^= x;
        h = h.wrapping_mul(0x100_0000_01b3);
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir).into_iter().flatten().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        e.file_name().to_string_lossy().bytes().for_each(|b| mix(b as u64));
        if let Ok(md) = e.metadata() {
            mix(md.len());
            if let Ok(t) = md.modified() {
                mix(t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
            }
        }
    }
    h
}
