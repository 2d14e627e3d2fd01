//! The version router and the load/unload state machine.
//!
//! `reconcile` (scan → plan → apply, in [`reconcile`]) compares the repository with what is
//! loaded: versions selected by a model's policy and not loaded start loading on their own
//! thread (load → warm-up → READY, then they become routable in one step under the write
//! lock); loaded versions no longer selected stop being routable at once, drain (requests
//! already holding the version finish on it), and unload. A version that fails to load is
//! UNAVAILABLE with the reason and is retried only when its folder changes; whatever was
//! serving keeps serving.

mod reconcile;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lathe_formats::Manifest;
use lathe_registry::Repository;
use lathe_types::{ApiError, ErrorKind, Tensor};

use crate::generation::Generation;
use crate::stats::VersionStats;
use crate::{BatchConfig, Batcher, ModelConfig};
use lathe_engine::{Loader, Servable};

/// Load states, in Triton's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadState {
    /// Loading or warming up.
    Loading,
    /// Serving.
    Ready,
    /// Draining before unload.
    Unloading,
    /// Not serving: failed to load, or unloaded.
    Unavailable,
}

impl LoadState {
    /// The protocol name (`READY`, …).
    pub fn name(self) -> &'static str {
        match self {
            LoadState::Loading => "LOADING",
            LoadState::Ready => "READY",
            LoadState::Unloading => "UNLOADING",
            LoadState::Unavailable => "UNAVAILABLE",
        }
    }
}

/// Which version a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The default route: the `default` label if set and ready, else the highest ready version.
    Default,
    /// A version number.
    Version(u64),
    /// A label.
    Label(String),
}

/// A version that is serving.
pub struct LoadedVersion {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u64,
    /// Its manifest.
    pub manifest: Manifest,
    /// The engine's model.
    pub servable: Arc<dyn Servable>,
    /// Its queue and compute threads.
    pub batcher: Batcher,
    /// Its statistics.
    pub stats: Arc<VersionStats>,
    /// The scheduler of a language model (`None` for other models).
    pub generation: Option<crate::generation::Generation>,
}

/// Server-wide settings of the manager.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Batching defaults for models without their own settings.
    pub defaults: BatchConfig,
    /// Longest wait for in-flight requests before a version is unloaded anyway.
    pub drain_timeout: Duration,
    /// Scheduler settings of language models.
    pub generation: crate::generation::GenerationConfig,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            defaults: BatchConfig::default(),
            drain_timeout: Duration::from_secs(30),
            generation: Default::default(),
        }
    }
}

struct VersionEntry {
    state: LoadState,
    reason: String,
    loaded: Option<Arc<LoadedVersion>>,
    stats: Arc<VersionStats>,
    load_seconds: Option<f64>,
    /// Folder signature at a failed load; retried when it changes.
    failed_signature: Option<u64>,
}

impl VersionEntry {
    /// A version whose load is starting (keeping the statistics of earlier loads).
    fn loading(stats: Arc<VersionStats>) -> VersionEntry {
        VersionEntry {
            state: LoadState::Loading,
            reason: String::new(),
            loaded: None,
            stats,
            load_seconds: None,
            failed_signature: None,
        }
    }
}

struct ModelEntry {
    versions: BTreeMap<u64, VersionEntry>,
    labels: BTreeMap<String, u64>,
    traffic: Option<lathe_registry::Traffic>,
    config: ModelConfig,
    config_error: Option<String>,
    unloaded_by_api: bool,
}

/// A version as status endpoints show it.
#[derive(Debug, Clone)]
pub struct VersionView {
    /// Version number.
    pub version: u64,
    /// Load state.
    pub state: LoadState,
    /// Why it is not serving (empty when READY).
    pub reason: String,
    /// Seconds the last load took.
    pub load_seconds: Option<f64>,
    /// Its statistics.
    pub stats: Arc<VersionStats>,
}

/// A model as status endpoints show it.
#[derive(Debug, Clone)]
pub struct ModelView {
    /// Model name.
    pub name: String,
    /// Versions known to the server.
    pub versions: Vec<VersionView>,
    /// Labels and the versions they name.
    pub labels: BTreeMap<String, u64>,
    /// Traffic policy.
    pub traffic: Option<lathe_registry::Traffic>,
    /// Effective configuration.
    pub config: ModelConfig,
    /// Why `config.json` was rejected, if it was.
    pub config_error: Option<String>,
}

/// One row of the repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Model name.
    pub name: String,
    /// Version, when the row is about one.
    pub version: Option<u64>,
    /// State name.
    pub state: &'static str,
    /// Reason for the state.
    pub reason: String,
}

/// Where a request without a version goes: its version and, sometimes, a shadow copy.
pub struct Routed {
    /// The version that answers.
    pub primary: Arc<LoadedVersion>,
    /// A version that gets a copy whose answer is discarded.
    pub shadow: Option<Arc<LoadedVersion>>,
}

/// Routes requests to loaded versions and keeps them in line with the repository.
pub struct Manager {
    route_counter: std::sync::atomic::AtomicU64,
    models: RwLock<BTreeMap<String, ModelEntry>>,
    repo: Repository,
    loader: Arc<dyn Loader>,
    options: ServeOptions,
    reconciled_once: std::sync::atomic::AtomicBool,
    /// Held for a whole reconcile, so that reconciles run one at a time.
    reconciling: Mutex<()>,
    /// Called at each step of a reconcile (tests pause it there).
    #[cfg(test)]
    hook: Mutex<Option<Arc<ReconcileHook>>>,
}

#[cfg(test)]
type ReconcileHook = dyn Fn(reconcile::Step) + Send + Sync;

impl Manager {
    /// A manager over `repo` that loads with `loader`. Nothing loads until [`Manager::reconcile`].
    pub fn new(repo: Repository, loader: Arc<dyn Loader>, options: ServeOptions) -> Arc<Manager> {
        Arc::new(Manager {
            route_counter: std::sync::atomic::AtomicU64::new(0),
            models: RwLock::new(BTreeMap::new()),
            repo,
            loader,
            options,
            reconciled_once: std::sync::atomic::AtomicBool::new(false),
            reconciling: Mutex::new(()),
            #[cfg(test)]
            hook: Mutex::new(None),
        })
    }

    #[cfg(test)]
    fn at(&self, step: reconcile::Step) {
        let hook = self.hook.lock().expect("hook lock").clone();
        if let Some(hook) = hook {
            hook(step);
        }
    }

    /// The repository served.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// Resolves a request's target to a serving version.
    pub fn resolve(&self, name: &str, selector: &Selector) -> Result<Arc<LoadedVersion>, ApiError> {
        let models = self.models.read().expect("models lock");
        let model = models
            .get(name)
            .filter(|m| !m.versions.is_empty())
            .ok_or_else(|| ApiError::not_found(format!("model {name:?} not found")))?;
        let pick = |v: u64, via: &str| -> Result<Arc<LoadedVersion>, ApiError> {
            match model.versions.get(&v) {
                Some(VersionEntry { loaded: Some(l), state: LoadState::Ready, .. }) => Ok(l.clone()),
                Some(e) => Err(ApiError::new(
                    ErrorKind::Unavailable,
                    format!("{via}version {v} of model {name:?} is {}{}", e.state.name(), reason_suffix(&e.reason)),
                )),
                None => Err(ApiError::not_found(format!(
                    "{via}version {v} of model {name:?} is not served; served versions: {:?}",
                    model.versions.keys().collect::<Vec<_>>()
                ))),
            }
        };
        match selector {
            Selector::Version(v) => pick(*v, ""),
            Selector::Label(l) => match model.labels.get(l) {
                Some(v) => pick(*v, &format!("label {l:?} names ")),
                None => Err(ApiError::not_found(format!(
                    "model {name:?} has no label {l:?}; labels: {:?}",
                    model.labels.keys().collect::<Vec<_>>()
                ))),
            },
            Selector::Default => {
                if let Some(v) = model.labels.get("default") {
                    if let Ok(l) = pick(*v, "label \"default\" names ") {
                        return Ok(l);
                    }
                }
                let ready =
                    model.versions.iter().rev().find(|(_, e)| e.state == LoadState::Ready && e.loaded.is_some());
                match ready {
                    Some((_, e)) => Ok(e.loaded.clone().expect("ready versions are loaded")),
                    None => {
                        let states: Vec<String> = model
                            .versions
                            .iter()
                            .map(|(v, e)| format!("{v}: {}{}", e.state.name(), reason_suffix(&e.reason)))
                            .collect();
                        Err(ApiError::new(
                            ErrorKind::Unavailable,
                            format!("model {name:?} has no ready version ({})", states.join("; ")),
                        ))
                    }
                }
            }
        }
    }

    /// Whether `name` has a traffic policy (callers then look for a routing key).
    pub fn has_traffic(&self, name: &str) -> bool {
        self.models.read().expect("models lock").get(name).is_some_and(|m| m.traffic.is_some())
    }

    /// Routes a request that names no version: by the model's traffic weights over its ready
    /// targets (sticky per `key` when given), else the default route; adds a shadow version
    /// for the configured share of requests.
    pub fn route(&self, name: &str, key: Option<&str>) -> Result<Routed, ApiError> {
        let draw = match key {
            Some(k) => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut h);
                h.finish()
            }
            None => self
                .route_counter
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        let (targets, shadow) = {
            let models = self.models.read().expect("models lock");
            let Some(traffic) = models.get(name).and_then(|m| m.traffic.as_ref().map(|t| (m, t))) else {
                drop(models);
                return Ok(Routed { primary: self.resolve(name, &Selector::Default)?, shadow: None });
            };
            let (model, traffic) = traffic;
            let ready = |target: &str| {
                lathe_registry::target_version(target, &model.labels).and_then(|v| match model.versions.get(&v) {
                    Some(VersionEntry { loaded: Some(l), state: LoadState::Ready, .. }) => Some(l.clone()),
                    _ => None,
                })
            };
            let targets: Vec<(Arc<LoadedVersion>, u64)> = traffic
                .routes
                .iter()
                .filter(|r| r.weight > 0)
                .filter_map(|r| ready(&r.target).map(|l| (l, r.weight as u64)))
                .collect();
            let shadow = traffic.shadow.as_ref().and_then(|s| {
                let sample = (draw.rotate_left(32) % 10_000) as f64 / 100.0;
                (sample < s.percent).then(|| ready(&s.target)).flatten()
            });
            (targets, shadow)
        };
        let total: u64 = targets.iter().map(|(_, w)| w).sum();
        let primary = if total == 0 {
            self.resolve(name, &Selector::Default)?
        } else {
            let mut pick = draw % total;
            targets
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map(|(l, _)| l.clone())
                .expect("pick < total")
        };
        let shadow = shadow.filter(|s| s.version != primary.version);
        Ok(Routed { primary, shadow })
    }

    /// Whether the first reconcile has run and every model has a ready default route.
    pub fn is_ready(&self) -> bool {
        if !self.reconciled_once.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        let models = self.models.read().expect("models lock");
        models
            .values()
            .filter(|m| !m.unloaded_by_api && !m.versions.is_empty())
            .all(|m| m.versions.values().any(|e| e.state == LoadState::Ready))
    }

    /// Status of every model known to the server.
    pub fn models(&self) -> Vec<ModelView> {
        let models = self.models.read().expect("models lock");
        models.iter().map(|(n, m)| view(n, m)).collect()
    }

    /// Status of one model.
    pub fn model(&self, name: &str) -> Option<ModelView> {
        self.models.read().expect("models lock").get(name).map(|m| view(name, m))
    }

    /// The repository index: every model on disk and every version the server knows.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        let models = self.models.read().expect("models lock");
        let mut out = Vec::new();
        for name in self.repo.models().into_iter().chain(models.keys().cloned()).collect::<BTreeSet<_>>() {
            match models.get(&name) {
                Some(m) if !m.versions.is_empty() => {
                    for (v, e) in &m.versions {
                        out.push(IndexEntry {
                            name: name.clone(),
                            version: Some(*v),
                            state: e.state.name(),
                            reason: e.reason.clone(),
                        });
                    }
                }
                Some(m) if m.unloaded_by_api => {
                    out.push(IndexEntry { name, version: None, state: "UNAVAILABLE", reason: "unloaded".into() })
                }
                _ => out.push(IndexEntry { name, version: None, state: "UNKNOWN", reason: String::new() }),
            }
        }
        if ready_only {
            out.retain(|e| e.state == "READY");
        }
        out
    }

    fn load_version(self: Arc<Self>, name: &str, v: u64, batching: BatchConfig) {
        let started = Instant::now();
        let dir = self.repo.root().join(name).join(v.to_string());
        let signature = reconcile::folder_signature(&dir);
        let stats = self
            .models
            .read()
            .expect("models lock")
            .get(name)
            .and_then(|m| m.versions.get(&v))
            .map(|e| e.stats.clone());
        let stats = stats.unwrap_or_default();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<_, String> {
            let manifest = lathe_registry::read_manifest(&dir).map_err(|e| e.to_string())?;
            let servable = self.loader.load(&dir, &manifest)?;
            let generation = match servable.clone().text_generator() {
                Some(generator) => {
                    let config = self.options.generation.clone();
                    Some(Generation::start(generator, config, stats.clone(), &format!("{name}-{v}"))?)
                }
                None => {
                    warm_up(servable.as_ref())?;
                    None
                }
            };
            Ok((manifest, servable, generation))
        }))
        .unwrap_or_else(|_| Err("the engine panicked while loading".into()));
        let seconds = started.elapsed().as_secs_f64();
        let mut models = self.models.write().expect("models lock");
        let Some(entry) = models.get_mut(name).and_then(|m| m.versions.get_mut(&v)) else { return };
        match result {
            Ok((manifest, servable, generation)) => {
                let batcher = Batcher::start(servable.clone(), batching, entry.stats.clone(), &format!("{name}-{v}"));
                entry.loaded = Some(Arc::new(LoadedVersion {
                    name: name.to_string(),
                    version: v,
                    manifest,
                    servable,
                    batcher,
                    stats: entry.stats.clone(),
                    generation,
                }));
                entry.state = LoadState::Ready;
                entry.reason.clear();
                entry.load_seconds = Some(seconds);
                tracing::info!(model = name, version = v, seconds, "version ready");
                drop(models);
                // Now that it serves, the versions it supersedes can drain.
                self.reconcile();
            }
            Err(reason) => {
                tracing::warn!(model = name, version = v, %reason, "version failed to load");
                entry.state = LoadState::Unavailable;
                entry.reason = format!("failed to load: {reason}");
                entry.failed_signature = Some(signature);
                entry.load_seconds = Some(seconds);
            }
        }
    }

    fn drain_and_unload(&self, name: &str, v: u64, loaded: Arc<LoadedVersion>) {
        let deadline = Instant::now() + self.options.drain_timeout;
        while Arc::strong_count(&loaded) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(loaded); // joins the compute threads after they finish what is queued
        let mut models = self.models.write().expect("models lock");
        if let Some(e) = models.get_mut(name).and_then(|m| m.versions.get_mut(&v)) {
            if e.state == LoadState::Unloading {
                e.state = LoadState::Unavailable;
                e.reason = format!("unloaded ({})", e.reason);
            }
        }
        tracing::info!(model = name, version = v, "version unloaded");
    }

    /// Explicit load (repository API): clears an earlier unload and failed-load markers, then
    /// waits (up to `timeout`) for the model's versions to settle. Errors when none is ready.
    pub fn load_model(self: &Arc<Self>, name: &str, timeout: Duration) -> Result<(), ApiError> {
        if self.repo.versions(name).map(|v| v.is_empty()).unwrap_or(true) {
            return Err(ApiError::not_found(format!("model {name:?} not found in the repository")));
        }
        {
            let mut models = self.models.write().expect("models lock");
            if let Some(m) = models.get_mut(name) {
                m.unloaded_by_api = false;
                m.versions.values_mut().for_each(|e| e.failed_signature = None);
            }
        }
        self.reconcile();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.model(name) {
                let has = |state: LoadState| m.versions.iter().any(|v| v.state == state);
                // A version still draining from an unload loads again once it has drained.
                let settled = !has(LoadState::Loading) && (has(LoadState::Ready) || !has(LoadState::Unloading));
                if settled && has(LoadState::Ready) {
                    return Ok(());
                }
                if settled {
                    let reasons: Vec<String> =
                        m.versions.iter().map(|v| format!("version {}: {}", v.version, v.reason)).collect();
                    return Err(ApiError::invalid(format!("failed to load {name:?}: {}", reasons.join("; "))));
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::new(ErrorKind::Unavailable, format!("model {name:?} is still loading")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Explicit unload (repository API): stops routing to every version of `name`, drains and
    /// unloads them; the model stays unloaded until loaded again.
    pub fn unload_model(self: &Arc<Self>, name: &str) -> Result<(), ApiError> {
        {
            let mut models = self.models.write().expect("models lock");
            let m = models.get_mut(name).ok_or_else(|| ApiError::not_found(format!("model {name:?} not found")))?;
            m.unloaded_by_api = true;
        }
        self.reconcile();
        Ok(())
    }
}

fn reason_suffix(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

fn view(name: &str, m: &ModelEntry) -> ModelView {
    ModelView {
        name: name.to_string(),
        versions: m
            .versions
            .iter()
            .map(|(v, e)| VersionView {
                version: *v,
                state: e.state,
                reason: e.reason.clone(),
                load_seconds: e.load_seconds,
                stats: e.stats.clone(),
            })
            .collect(),
        labels: m.labels.clone(),
        traffic: m.traffic.clone(),
        config: m.config.clone(),
        config_error: m.config_error.clone(),
    }
}

/// Runs one row (the servable's, else all zeros) through a freshly loaded model before it takes
/// traffic.
fn warm_up(model: &dyn Servable) -> Result<(), String> {
    let inputs = match model.warm_up_inputs() {
        Some(inputs) => inputs,
        None => zero_row(model)?,
    };
    let outputs = model.infer(&inputs).map_err(|e| format!("warm-up failed: {e}"))?;
    if outputs.len() != model.signature().outputs.len() {
        return Err(format!(
            "warm-up returned {} outputs, the signature has {}",
            outputs.len(),
            model.signature().outputs.len()
        ));
    }
    Ok(())
}

/// One all-zero row of every input.
fn zero_row(model: &dyn Servable) -> Result<Vec<Tensor>, String> {
    let row = |s| Tensor::zero_row(s).map_err(|e| format!("warm-up input {}: {e}", s.name));
    model.signature().inputs.iter().map(row).collect()
}
