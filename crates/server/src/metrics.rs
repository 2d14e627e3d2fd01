//! Prometheus metrics: request counters and latency histograms recorded by the server, model
//! statistics read from the runtime; encoded in the text exposition format (version 0.0.4) by
//! the `prometheus` crate's `TextEncoder` on `/metrics`.
//! Every metric is described in docs/metrics.md.

use std::collections::BTreeMap;
use std::sync::Mutex;

use lathe_runtime::stats::{Histogram, HistogramSnapshot, LATENCY_BUCKETS};
use lathe_runtime::{LoadState, Manager, ModelView, VersionView};
use prometheus::proto::{self, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::TextEncoder;
pub use prometheus::TEXT_FORMAT;

/// Labels of a request series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RequestLabels {
    /// Model name (empty for non-model routes).
    pub model: String,
    /// Version that answered (empty when none did).
    pub version: String,
    /// `tfserving`, `kserve_v1`, `v2`.
    pub protocol: &'static str,
    /// `predict`, `classify`, `infer`, …
    pub api: &'static str,
    /// HTTP status code.
    pub code: u16,
}

/// Upper bounds of token-count buckets.
pub const TOKEN_BUCKETS: [f64; 10] = [4.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0, 16384.0];

/// Metrics recorded by the HTTP layer.
#[derive(Default)]
pub struct ServerMetrics {
    requests: Mutex<BTreeMap<RequestLabels, u64>>,
    durations: Mutex<BTreeMap<(String, &'static str), Histogram>>,
    tokens: Mutex<BTreeMap<String, Histogram>>,
    preprocess: Mutex<BTreeMap<String, Histogram>>,
}

impl ServerMetrics {
    /// Records one finished inference request.
    pub fn record(&self, labels: RequestLabels, seconds: f64) {
        let key = (labels.model.clone(), labels.protocol);
        *self.requests.lock().expect("metrics lock").entry(labels).or_insert(0) += 1;
        self.durations
            .lock()
            .expect("metrics lock")
            .entry(key)
            .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// Records the tokens one request carried (text models).
    pub fn record_tokens(&self, model: &str, tokens: f64) {
        self.tokens
            .lock()
            .expect("metrics lock")
            .entry(model.to_string())
            .or_insert_with(|| Histogram::new(&TOKEN_BUCKETS))
            .observe(tokens);
    }

    /// Records the time preprocessing (tokenisation) of one request took.
    pub fn record_preprocess(&self, model: &str, seconds: f64) {
        self.preprocess
            .lock()
            .expect("metrics lock")
            .entry(model.to_string())
            .or_insert_with(|| Histogram::new(&LATENCY_BUCKETS))
            .observe(seconds);
    }

    /// Renders every metric.
    pub fn render(&self, manager: &Manager) -> String {
        self.render_views(&manager.models())
    }

    /// Renders every metric, the runtime's from `models`, in the text exposition format
    /// ([`TEXT_FORMAT`]); families without series are left out.
    pub fn render_views(&self, models: &[ModelView]) -> String {
        let mut families = self.request_families();
        families.extend(version_families(models));
        families.extend(crate::generation_metrics::generation_families(models));
        families.retain(|f| !f.get_metric().is_empty());
        TextEncoder::new().encode_to_string(&families).expect("every family has a name and series")
    }

    /// What the HTTP layer recorded: requests, their durations, tokens and preprocessing.
    fn request_families(&self) -> Vec<MetricFamily> {
        let requests = self.requests.lock().expect("metrics lock");
        let requests = requests.iter().map(|(l, n)| {
            let (version, code) = (l.version.as_str(), l.code.to_string());
            let pairs = [("model", l.model.as_str()), ("version", version), ("protocol", l.protocol), ("api", l.api)];
            counter(&[&pairs[..], &[("code", &code)]].concat(), *n as f64)
        });
        let durations = self.durations.lock().expect("metrics lock");
        let durations = durations.iter().map(|((m, p), h)| histogram(&[("model", m), ("protocol", p)], &h.snapshot()));
        let per_model = |map: &Mutex<BTreeMap<String, Histogram>>| -> Vec<Metric> {
            let map = map.lock().expect("metrics lock");
            map.iter().map(|(model, h)| histogram(&[("model", model)], &h.snapshot())).collect()
        };
        vec![
            family(
                "lathe_inference_requests_total",
                "Inference requests by model, version, protocol, API and HTTP status code.",
                MetricType::COUNTER,
                requests.collect(),
            ),
            family(
                "lathe_inference_request_duration_seconds",
                "Whole inference request time, decode to encode.",
                MetricType::HISTOGRAM,
                durations.collect(),
            ),
            family(
                "lathe_request_tokens",
                "Tokens per request of text models (before truncation).",
                MetricType::HISTOGRAM,
                per_model(&self.tokens),
            ),
            family(
                "lathe_preprocess_duration_seconds",
                "Preprocessing (tokenisation) time per request, off the compute threads.",
                MetricType::HISTOGRAM,
                per_model(&self.preprocess),
            ),
        ]
    }
}

/// Label names and values, in exposition order.
type Labels<'a> = [(&'a str, &'a str)];

/// One series (or none) of a version.
type PerVersion = dyn Fn(&Labels, &VersionView) -> Option<Metric>;

/// What the runtime counts for each version: queue, compute, batches, rows, load and state.
fn version_families(models: &[ModelView]) -> Vec<MetricFamily> {
    use std::sync::atomic::Ordering::Relaxed;
    let series: Vec<([(&str, String); 2], &VersionView)> = models
        .iter()
        .flat_map(|m| m.versions.iter().map(|v| ([("model", m.name.clone()), ("version", v.version.to_string())], v)))
        .collect();
    let each = |f: &PerVersion| -> Vec<Metric> {
        series.iter().filter_map(|([(m, model), (v, version)], view)| f(&[(m, model), (v, version)], view)).collect()
    };
    let state = |labels: &Labels, v: &VersionView| -> Vec<Metric> {
        let states = [LoadState::Loading, LoadState::Ready, LoadState::Unloading, LoadState::Unavailable];
        let one_hot = |st: LoadState| gauge(&[labels, &[("state", st.name())]].concat(), (v.state == st) as u8 as f64);
        states.into_iter().map(one_hot).collect()
    };
    vec![
        family(
            "lathe_inference_queue_duration_seconds",
            "Time requests waited in the model's queue.",
            MetricType::HISTOGRAM,
            each(&|l, v| Some(histogram(l, &v.stats.queue_seconds.snapshot()))),
        ),
        family(
            "lathe_inference_compute_duration_seconds",
            "Time one batch spent computing.",
            MetricType::HISTOGRAM,
            each(&|l, v| Some(histogram(l, &v.stats.compute_seconds.snapshot()))),
        ),
        family(
            "lathe_inference_batch_size",
            "Rows per executed batch.",
            MetricType::HISTOGRAM,
            each(&|l, v| Some(histogram(l, &v.stats.batch_size.snapshot()))),
        ),
        family(
            "lathe_inference_executions_total",
            "Model executions (batches); rows / executions = mean batch size.",
            MetricType::COUNTER,
            each(&|l, v| Some(counter(l, v.stats.execution_count.load(Relaxed) as f64))),
        ),
        family(
            "lathe_inference_rows_total",
            "Rows inferred (a request of N rows counts N).",
            MetricType::COUNTER,
            each(&|l, v| Some(counter(l, v.stats.inference_count.load(Relaxed) as f64))),
        ),
        family(
            "lathe_inference_queue_size",
            "Requests waiting in the model's queue.",
            MetricType::GAUGE,
            each(&|l, v| Some(gauge(l, v.stats.queue_depth.load(Relaxed) as f64))),
        ),
        family(
            "lathe_model_load_duration_seconds",
            "Seconds the last load of the version took (load, verification, warm-up).",
            MetricType::GAUGE,
            each(&|l, v| v.load_seconds.map(|s| gauge(l, s))),
        ),
        family(
            "lathe_model_state",
            "1 for the version's current load state, 0 for the others.",
            MetricType::GAUGE,
            series
                .iter()
                .flat_map(|([(m, model), (v, version)], view)| state(&[(m, model), (v, version)], view))
                .collect(),
        ),
    ]
}

pub(crate) fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.into());
    f.set_help(help.into());
    f.set_field_type(kind);
    f.set_metric(metrics);
    f
}

/// A series with these labels, in this order.
fn series(labels: &[(&str, &str)]) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(name, value)| {
                let mut pair = LabelPair::default();
                pair.set_name(name.to_string());
                pair.set_value(value.to_string());
                pair
            })
            .collect(),
    );
    m
}

pub(crate) fn counter(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut c = proto::Counter::default();
    c.set_value(value);
    let mut m = series(labels);
    m.set_counter(c);
    m
}

pub(crate) fn gauge(labels: &[(&str, &str)], value: f64) -> Metric {
    let mut g = proto::Gauge::default();
    g.set_value(value);
    let mut m = series(labels);
    m.set_gauge(g);
    m
}

pub(crate) fn histogram(labels: &[(&str, &str)], h: &HistogramSnapshot) -> Metric {
    let buckets = h
        .bounds
        .iter()
        .zip(&h.cumulative)
        .map(|(&bound, &count)| {
            let mut b = proto::Bucket::default();
            b.set_upper_bound(bound);
            b.set_cumulative_count(count);
            b
        })
        .collect();
    let mut p = proto::Histogram::default();
    p.set_bucket(buckets);
    p.set_sample_sum(h.sum);
    p.set_sample_count(h.count);
    let mut m = series(labels);
    m.set_histogram(p);
    m
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;

    use lathe_runtime::stats::VersionStats;
    use lathe_runtime::{BatchConfig, ModelConfig, VersionView};

    use super::*;

    /// Two models, one ready and one unloading, with fixed observations in every series.
    fn scenario() -> (ServerMetrics, Vec<ModelView>) {
        let metrics = ServerMetrics::default();
        let request = |model: &str, version: &str, protocol, api, code| RequestLabels {
            model: model.into(),
            version: version.into(),
            protocol,
            api,
            code,
        };
        metrics.record(request("mnist", "1", "tfserving", "predict", 200), 0.003);
        metrics.record(request("mnist", "1", "tfserving", "predict", 200), 0.0004);
        metrics.record(request("mnist", "2", "v2", "infer", 400), 0.00002);
        metrics.record(request("quote\"d", "", "openai", "embeddings", 404), 1.5);
        metrics.record_tokens("minilm", 12.0);
        metrics.record_tokens("minilm", 300.0);
        metrics.record_preprocess("minilm", 0.0002);
        let version = |version: u64, state: LoadState, load_seconds: Option<f64>| {
            let stats = Arc::new(VersionStats::default());
            stats.queue_seconds.observe(0.0001);
            stats.compute_seconds.observe(0.002);
            stats.batch_size.observe(3.0);
            stats.execution_count.store(7, Relaxed);
            stats.inference_count.store(19, Relaxed);
            stats.queue_depth.store(2, Relaxed);
            VersionView { version, state, reason: String::new(), load_seconds, stats }
        };
        let model = |name: &str, versions| ModelView {
            name: name.into(),
            versions,
            labels: Default::default(),
            traffic: None,
            config: ModelConfig::defaults(&BatchConfig::default()),
            config_error: None,
        };
        let models = vec![
            model("minilm", vec![version(1, LoadState::Ready, Some(0.25))]),
            model("mnist", vec![version(1, LoadState::Unloading, None), version(2, LoadState::Ready, Some(1.5))]),
        ];
        (metrics, models)
    }

    /// The exposition a Prometheus server scrapes, pinned: names, labels (and their order),
    /// `# HELP` and `# TYPE` lines, bucket bounds and values.
    #[test]
    fn exposition_matches_the_golden_file() {
        let (metrics, models) = scenario();
        let text = metrics.render_views(&models);
        let golden = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/metrics.txt");
        if std::env::var_os("LATHE_BLESS").is_some() {
            std::fs::write(golden, &text).unwrap();
        }
        let want = std::fs::read_to_string(golden).unwrap();
        assert!(text == want, "the /metrics exposition changed:\n{text}");
    }
}
