//! Prometheus metrics: request counters and latency histograms recorded by the server, model
//! statistics read from the runtime; rendered in the text exposition format on `/metrics`.
//! Every metric is described in docs/metrics.md.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use lathe_runtime::stats::{Histogram, HistogramSnapshot, LATENCY_BUCKETS};
use lathe_runtime::{LoadState, Manager, ModelView};

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

    /// Renders every metric, the runtime's from `models`.
    pub fn render_views(&self, models: &[ModelView]) -> String {
        let mut out = String::with_capacity(8192);
        header(
            &mut out,
            "lathe_inference_requests_total",
            "counter",
            "Inference requests by model, version, protocol, API and HTTP status code.",
        );
        for (l, n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "lathe_inference_requests_total{{model=\"{}\",version=\"{}\",protocol=\"{}\",api=\"{}\",code=\"{}\"}} \
                    {n}",
                esc(&l.model),
                l.version,
                l.protocol,
                l.api,
                l.code
            );
        }
        header(
            &mut out,
            "lathe_inference_request_duration_seconds",
            "histogram",
            "Whole inference request time, decode to encode.",
        );
        for ((model, protocol), h) in self.durations.lock().expect("metrics lock").iter() {
            histogram(
                &mut out,
                "lathe_inference_request_duration_seconds",
                &format!("model=\"{}\",protocol=\"{protocol}\"", esc(model)),
                &h.snapshot(),
            );
        }
        header(&mut out, "lathe_request_tokens", "histogram", "Tokens per request of text models (before truncation).");
        for (model, h) in self.tokens.lock().expect("metrics lock").iter() {
            histogram(&mut out, "lathe_request_tokens", &format!("model=\"{}\"", esc(model)), &h.snapshot());
        }
        header(
            &mut out,
            "lathe_preprocess_duration_seconds",
            "histogram",
            "Preprocessing (tokenisation) time per request, off the compute threads.",
        );
        for (model, h) in self.preprocess.lock().expect("metrics lock").iter() {
            histogram(
                &mut out,
                "lathe_preprocess_duration_seconds",
                &format!("model=\"{}\"", esc(model)),
                &h.snapshot(),
            );
        }
        let series: Vec<(String, &lathe_runtime::VersionView)> = models
            .iter()
            .flat_map(|m| {
                m.versions.iter().map(move |v| (format!("model=\"{}\",version=\"{}\"", esc(&m.name), v.version), v))
            })
            .collect();
        header(
            &mut out,
            "lathe_inference_queue_duration_seconds",
            "histogram",
            "Time requests waited in the model's queue.",
        );
        for (l, v) in &series {
            histogram(&mut out, "lathe_inference_queue_duration_seconds", l, &v.stats.queue_seconds.snapshot());
        }
        header(&mut out, "lathe_inference_compute_duration_seconds", "histogram", "Time one batch spent computing.");
        for (l, v) in &series {
            histogram(&mut out, "lathe_inference_compute_duration_seconds", l, &v.stats.compute_seconds.snapshot());
        }
        header(&mut out, "lathe_inference_batch_size", "histogram", "Rows per executed batch.");
        for (l, v) in &series {
            histogram(&mut out, "lathe_inference_batch_size", l, &v.stats.batch_size.snapshot());
        }
        use std::sync::atomic::Ordering::Relaxed;
        header(
            &mut out,
            "lathe_inference_executions_total",
            "counter",
            "Model executions (batches); rows / executions = mean batch size.",
        );
        for (l, v) in &series {
            let _ = writeln!(out, "lathe_inference_executions_total{{{l}}} {}", v.stats.execution_count.load(Relaxed));
        }
        header(&mut out, "lathe_inference_rows_total", "counter", "Rows inferred (a request of N rows counts N).");
        for (l, v) in &series {
            let _ = writeln!(out, "lathe_inference_rows_total{{{l}}} {}", v.stats.inference_count.load(Relaxed));
        }
        header(&mut out, "lathe_inference_queue_size", "gauge", "Requests waiting in the model's queue.");
        for (l, v) in &series {
            let _ = writeln!(out, "lathe_inference_queue_size{{{l}}} {}", v.stats.queue_depth.load(Relaxed));
        }
        header(
            &mut out,
            "lathe_model_load_duration_seconds",
            "gauge",
            "Seconds the last load of the version took (load, verification, warm-up).",
        );
        for (l, v) in &series {
            if let Some(s) = v.load_seconds {
                let _ = writeln!(out, "lathe_model_load_duration_seconds{{{l}}} {s}");
            }
        }
        header(&mut out, "lathe_model_state", "gauge", "1 for the version's current load state, 0 for the others.");
        for (l, v) in &series {
            for st in [LoadState::Loading, LoadState::Ready, LoadState::Unloading, LoadState::Unavailable] {
                let _ = writeln!(out, "lathe_model_state{{{l},state=\"{}\"}} {}", st.name(), (v.state == st) as u8);
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &HistogramSnapshot) {
    for (b, c) in h.bounds.iter().zip(&h.cumulative) {
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
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
