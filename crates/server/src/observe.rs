//! What the server keeps to watch and explain its versions: the explanation threads, each
//! version's window of live inputs measured against its training statistics, and the
//! request log's settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use lathe_formats::{TrainingStatistics, STATISTICS_FILE};
use lathe_monitor::drift::{measure, DriftConfig, DriftReport};
use lathe_monitor::{LiveWindow, RequestLog};
use lathe_runtime::{LoadedVersion, WorkPool};
use lathe_types::{Tensor, TensorData};
use prometheus::proto::{MetricFamily, MetricType};

use crate::metrics::{counter, family, gauge};

/// Settings of monitoring and explanations.
#[derive(Debug, Clone)]
pub struct ObserveConfig {
    /// Threads computing explanations and layer inspections.
    pub explain_threads: usize,
    /// Explanations waiting at most; more are refused with 429.
    pub explain_queue: usize,
    /// Rows each version's drift window keeps (0: drift is not monitored).
    pub window_rows: usize,
    /// How often windows with new rows are measured for the gauges and the alert.
    pub drift_interval: std::time::Duration,
    /// When drift raises its alert.
    pub drift: DriftConfig,
}

impl Default for ObserveConfig {
    fn default() -> Self {
        ObserveConfig {
            explain_threads: 1,
            explain_queue: 8,
            window_rows: 1000,
            drift_interval: std::time::Duration::from_secs(10),
            drift: DriftConfig::default(),
        }
    }
}

/// The request log and who it samples.
pub struct RequestLogSettings {
    /// The writer.
    pub log: RequestLog,
    /// Share of requests logged for models without their own rate, 0 to 1.
    pub sample: f64,
    /// Per-model shares.
    pub per_model: HashMap<String, f64>,
    /// Inputs whose values are replaced by `"[redacted]"`.
    pub redact: Vec<String>,
}

impl RequestLogSettings {
    /// The share of `model`'s requests logged.
    pub fn rate(&self, model: &str) -> f64 {
        self.per_model.get(model).copied().unwrap_or(self.sample)
    }
}

/// One version's live window and what it is measured against.
pub struct VersionMonitor {
    statistics: Option<TrainingStatistics>,
    names: Vec<String>,
    window: Mutex<LiveWindow>,
    alerting: AtomicBool,
    measured: AtomicU64,
    last: Mutex<Option<DriftReport>>,
}

/// Monitoring state shared by the handlers.
pub struct Observability {
    /// Dedicated threads for explanations and inspections.
    pub pool: Arc<WorkPool>,
    /// A thread measuring drift for `/monitoring`, apart from explanations.
    pub drift_pool: Arc<WorkPool>,
    /// The configuration.
    pub config: ObserveConfig,
    /// The request log, when enabled.
    pub request_log: Option<RequestLogSettings>,
    monitors: RwLock<HashMap<(String, u64), Arc<VersionMonitor>>>,
}

impl Observability {
    /// Starts the explanation threads and the thread that measures drift every
    /// `drift_interval` (it ends when the last handle is dropped).
    pub fn start(config: ObserveConfig, request_log: Option<RequestLogSettings>) -> Arc<Observability> {
        let pool = WorkPool::new("explanations", config.explain_threads, config.explain_queue);
        let drift_pool = WorkPool::new("drift measurements", 1, 4);
        let interval = config.drift_interval;
        let observe = Arc::new(Observability { pool, drift_pool, config, request_log, monitors: RwLock::default() });
        let weak = Arc::downgrade(&observe);
        let spawned = std::thread::Builder::new().name("drift".into()).spawn(move || loop {
            std::thread::sleep(interval);
            match weak.upgrade() {
                Some(o) => o.measure_all(),
                None => return,
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "drift is measured on request only: no thread");
        }
        observe
    }

    /// The monitor of a version, made on first use from its `statistics.json`, read on the
    /// blocking pool (versions without one get a monitor that records nothing).
    pub async fn monitor(&self, version: &Arc<LoadedVersion>, root: &std::path::Path) -> Arc<VersionMonitor> {
        let key = (version.name.clone(), version.version);
        if let Some(m) = self.monitors.read().expect("monitors lock").get(&key) {
            return m.clone();
        }
        let (loaded, dir) = (version.clone(), root.join(&version.name).join(version.version.to_string()));
        let window_rows = self.config.window_rows;
        let made = tokio::task::spawn_blocking(move || VersionMonitor::new(&loaded, &dir, window_rows)).await;
        let made = made.unwrap_or_else(|_| VersionMonitor::new_unwatched(window_rows));
        let mut monitors = self.monitors.write().expect("monitors lock");
        // Keep the monitors of a model's last 8 versions.
        monitors.retain(|(name, v), _| name != &key.0 || *v + 8 > key.1);
        monitors.entry(key).or_insert_with(|| Arc::new(made)).clone()
    }

    /// The families of [`Observability::families`] in the text exposition format.
    pub fn render(&self) -> String {
        let mut families = self.families();
        families.retain(|f| !f.get_metric().is_empty());
        prometheus::TextEncoder::new().encode_to_string(&families).expect("every family has a name and series")
    }

    /// Measures every version whose window received rows since it was last measured (the
    /// gauges, and the alert's log line, follow).
    pub fn measure_all(&self) {
        let monitors: Vec<_> =
            self.monitors.read().expect("monitors lock").iter().map(|(k, m)| (k.clone(), m.clone())).collect();
        for ((name, version), m) in monitors {
            if m.changed() {
                m.measure(&self.config.drift, &name, version);
            }
        }
    }

    /// Prometheus families: drift score and alert per version, request-log lines.
    pub fn families(&self) -> Vec<MetricFamily> {
        let monitors = self.monitors.read().expect("monitors lock");
        let (mut scores, mut alerts) = (Vec::new(), Vec::new());
        for ((name, version), m) in monitors.iter() {
            let Some(report) = m.last.lock().expect("report lock").clone() else { continue };
            let v = version.to_string();
            let labels = [("model", name.as_str()), ("version", v.as_str())];
            scores.push(gauge(&labels, report.score));
            alerts.push(gauge(&labels, f64::from(u8::from(report.alert))));
        }
        let mut families = vec![
            family(
                "lathe_drift_score",
                "Mean PSI of a version's live inputs against training.",
                MetricType::GAUGE,
                scores,
            ),
            family("lathe_drift_alert", "1 while a version's drift is above the threshold.", MetricType::GAUGE, alerts),
        ];
        if let Some(settings) = &self.request_log {
            families.push(family(
                "lathe_request_log_lines_total",
                "Request-log lines written.",
                MetricType::COUNTER,
                vec![counter(&[], settings.log.written() as f64)],
            ));
            families.push(family(
                "lathe_request_log_dropped_total",
                "Request-log lines dropped: the queue was full or the sink failed.",
                MetricType::COUNTER,
                vec![counter(&[], settings.log.dropped() as f64)],
            ));
        }
        families
    }
}

impl VersionMonitor {
    /// The monitor of `version` in `dir`; a window of 0 rows watches nothing.
    fn new(version: &LoadedVersion, dir: &std::path::Path, window_rows: usize) -> VersionMonitor {
        let statistics = if window_rows > 0 { read_statistics(dir, version) } else { None };
        let names = feature_names(version, statistics.as_ref());
        VersionMonitor { statistics, names, ..VersionMonitor::new_unwatched(window_rows) }
    }

    fn new_unwatched(window_rows: usize) -> VersionMonitor {
        VersionMonitor {
            statistics: None,
            names: Vec::new(),
            window: Mutex::new(LiveWindow::new(window_rows)),
            alerting: AtomicBool::new(false),
            measured: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// Whether rows arrived since the last measurement.
    fn changed(&self) -> bool {
        let seen = self.window.lock().expect("window lock").seen();
        self.measured.swap(seen, Ordering::Relaxed) != seen
    }

    /// Whether the version has training statistics.
    pub fn has_statistics(&self) -> bool {
        self.statistics.is_some()
    }

    /// Adds a request's feature rows (what the engine computed on) and outputs to the window,
    /// when they fit the statistics.
    pub fn record(&self, features: &[Tensor], outputs: &[Tensor]) {
        let Some(stats) = &self.statistics else { return };
        let [Tensor { data: TensorData::F32(x), .. }] = features else { return };
        let rows = features[0].rows();
        if rows == 0 || x.len() != rows * stats.features.len() {
            return;
        }
        let summary = output_rows(&stats.outputs, outputs, rows);
        self.window.lock().expect("window lock").push(x, &summary, rows);
    }

    /// Measures the window now; logs when the alert is raised or cleared. `None` without
    /// statistics.
    pub fn measure(&self, config: &DriftConfig, model: &str, version: u64) -> Option<DriftReport> {
        let stats = self.statistics.as_ref()?;
        let snapshot = self.window.lock().expect("window lock").snapshot();
        let report = measure(stats, &snapshot, &self.names, config);
        let was = self.alerting.swap(report.alert, Ordering::Relaxed);
        if report.alert && !was {
            let top = report.features.first().map(|f| f.name.as_str()).unwrap_or("");
            tracing::warn!(model, version, score = report.score, top_feature = top, "drift alert raised");
        } else if was && !report.alert {
            tracing::info!(model, version, score = report.score, "drift alert cleared");
        }
        *self.last.lock().expect("report lock") = Some(report.clone());
        Some(report)
    }
}

/// Per row: the predicted class index (a classifier's scores), or each target's value.
fn output_rows(stats: &lathe_formats::statistics::OutputStatistics, outputs: &[Tensor], rows: usize) -> Vec<f32> {
    use lathe_formats::statistics::OutputStatistics;
    match stats {
        OutputStatistics::Classes { names, .. } => {
            let Some(v) = outputs.first().and_then(|t| t.data.to_f32()) else { return vec![f32::NAN; rows] };
            let width = v.len() / rows;
            v.chunks_exact(width.max(1))
                .map(|row| match row {
                    [p] if names.len() == 2 => f32::from(u8::from(*p > 0.5)),
                    _ => row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0.0, |(i, _)| i as f32),
                })
                .collect()
        }
        OutputStatistics::Targets { .. } => {
            let columns: Vec<Vec<f32>> = outputs.iter().filter_map(|t| t.data.to_f32()).collect();
            (0..rows).flat_map(|r| columns.iter().map(move |c| c.get(r).copied().unwrap_or(f32::NAN))).collect()
        }
    }
}

fn read_statistics(dir: &std::path::Path, version: &LoadedVersion) -> Option<TrainingStatistics> {
    if !version.manifest.files.contains_key(STATISTICS_FILE) {
        return None;
    }
    let bytes = std::fs::read(dir.join(STATISTICS_FILE))
        .map_err(|e| tracing::warn!(model = %version.name, version = version.version, error = %e, "reading statistics"))
        .ok()?;
    serde_json::from_slice(&bytes)
        .map_err(|e| tracing::warn!(model = %version.name, version = version.version, error = %e, "bad statistics"))
        .ok()
}

/// Feature names: a table's encoded features, a CSV's columns, or `pixel[r,c]` for images.
fn feature_names(version: &LoadedVersion, stats: Option<&TrainingStatistics>) -> Vec<String> {
    let count = stats.map_or(0, |s| s.features.len());
    if let Some(layout) = version.servable.feature_layout() {
        return layout.into_iter().map(|(_, n)| n).collect();
    }
    let names = version.manifest.feature_names();
    if names.len() == count {
        return names.to_vec();
    }
    let input = version.servable.signature().inputs.first();
    let shape: Vec<i64> = input.and_then(|s| s.shape.get(1..)).map(<[i64]>::to_vec).unwrap_or_default();
    match shape[..] {
        [h, w] | [h, w, 1] if h > 0 && w > 0 && (h * w) as usize == count => {
            (0..count).map(|i| format!("pixel[{},{}]", i / w as usize, i % w as usize)).collect()
        }
        _ => (0..count).map(|i| format!("feature[{i}]")).collect(),
    }
}
