//! Drift against training statistics, the request log's behaviour when its sink fails or
//! stalls, and layer debugging, over real HTTP.

use std::sync::Arc;
use std::time::Duration;

use lathe_monitor::{RequestLog, RequestLogConfig, Rotation, Sink};
use lathe_registry::Repository;
use lathe_server::observe::{Observability, RequestLogSettings};
use lathe_train::data::{Dataset, LoadOptions};
use lathe_train::{fit, prepare, version_files, DataSource, FitOptions};
use serde_json::{json, Value};

use crate::common::{publish, test_images, Setup, TestServer};

fn monitoring(s: &TestServer, model: &str) -> Value {
    let (code, body) = s.get(&format!("/v1/models/{model}/monitoring"));
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn replaying_mnist_raises_no_alert_and_pixels_already_divided_by_255_do() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path());
    publish(&repo, "raw");
    publish(&repo, "scaled");
    let s = TestServer::start(dir, Setup::default());
    let (images, _) = test_images(200);
    for im in &images {
        let raw: Vec<f32> = im.iter().map(|&p| p as f32).collect();
        let scaled: Vec<f32> = raw.iter().map(|p| p / 255.0).collect();
        for (model, row) in [("raw", raw), ("scaled", scaled)] {
            let (code, b) =
                s.post(&format!("/v1/models/{model}:predict"), json!({ "instances": [row] }).to_string().as_bytes());
            assert_eq!(code, 200, "{b}");
        }
    }
    let raw = monitoring(&s, "raw");
    let scaled = monitoring(&s, "scaled");
    println!("drift score: replayed MNIST {}, divided by 255 {}", raw["score"], scaled["score"]);
    assert_eq!(raw["statistics"], true);
    assert_eq!(raw["rows"], 200);
    assert_eq!(raw["alert"], false, "{raw}");
    assert_eq!(scaled["alert"], true, "{scaled}");
    assert!(scaled["score"].as_f64().unwrap() > 5.0 * raw["score"].as_f64().unwrap());
    assert!(scaled["features"][0]["name"].as_str().unwrap().starts_with("pixel["));
    assert_eq!(scaled["features"].as_array().unwrap().len(), 20);
    // The gauges follow the measurement.
    let metrics =
        crate::common::agent().get(format!("{}/metrics", s.base)).call().unwrap().into_body().read_to_string().unwrap();
    assert!(metrics.contains("lathe_drift_alert{model=\"scaled\",version=\"1\"} 1"), "{metrics}");
    assert!(metrics.contains("lathe_drift_alert{model=\"raw\",version=\"1\"} 0"));
}

/// A deterministic standard normal sample (Box–Muller over SplitMix64).
fn normals(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform().max(1e-12), uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

/// Trains a 4-feature table classifier on standard normal features and publishes it.
fn publish_table(repo: &Repository, dir: &std::path::Path) {
    let x = normals(1, 4 * 2000);
    let mut csv = String::from("age,income,height,score,label\n");
    for row in x.chunks(4) {
        let label = if row[0] + row[1] > 0.0 { "yes" } else { "no" };
        csv.push_str(&format!("{},{},{},{},{label}\n", row[0] * 10.0 + 40.0, row[1], row[2] * 3.0, row[3]));
    }
    let path = dir.join("table.csv");
    std::fs::write(&path, csv).unwrap();
    let spec = lathe_formats::Spec::from_yaml_str(
        "input: {shape: [4], preprocessing: standardize}
layers: [{type: dense, units: 8, activation: relu}, {type: dense, units: 2, activation: softmax}]
compile: {optimizer: {type: adam, lr: 0.01}, loss: sparse_categorical_crossentropy}
fit: {epochs: 2, batch_size: 64}",
    )
    .unwrap();
    let data = Dataset::load(&path, &LoadOptions::default()).unwrap();
    let names = data.feature_names.clone();
    let prepared = prepare(&spec, data, 0.2, 1).unwrap();
    let mut ignore = |_: &lathe_train::Event| {};
    let options =
        FitOptions { seed: 1, threads: 1, stop: None, checkpoints: None, resume: false, on_event: &mut ignore };
    let r = fit(&prepared.spec, &prepared, options).unwrap();
    let src = DataSource { source: "table.csv", format: "csv", feature_names: &names };
    let v = version_files("table", &prepared.spec, &prepared, &src, &r).unwrap();
    repo.publish("table", &v.files(), v.manifest.clone()).unwrap();
}

#[test]
fn a_table_feature_shifted_by_one_standard_deviation_ranks_first() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    publish_table(&Repository::new(dir.path()), data_dir.path());
    let s = TestServer::start(dir, Setup::default());
    let x = normals(99, 4 * 200);
    // `height` was trained as 3·N(0, 1): one standard deviation is 3.
    let rows: Vec<Vec<f32>> = x.chunks(4).map(|r| vec![r[0] * 10.0 + 40.0, r[1], r[2] * 3.0 + 3.0, r[3]]).collect();
    let (code, b) = s.post("/v1/models/table:predict", json!({ "instances": rows }).to_string().as_bytes());
    assert_eq!(code, 200, "{b}");
    let m = monitoring(&s, "table");
    println!("table drift: {}", m["features"]);
    assert_eq!(m["features"][0]["name"], "height", "{m}");
    let psi: Vec<f64> = m["features"].as_array().unwrap().iter().map(|f| f["psi"].as_f64().unwrap()).collect();
    assert!(psi[0] > 0.2 && psi[1] < 0.1, "{psi:?}");
    assert!((m["features"][0]["training_mean"].as_f64().unwrap()).abs() < 0.3);

    // Explanations of a table name its features.
    let (code, e) = s.post("/v1/models/table:explain", json!({ "instances": [rows[0]] }).to_string().as_bytes());
    assert_eq!(code, 200, "{e}");
    let features = e["explanations"][0]["features"].as_array().unwrap();
    assert_eq!(features.len(), 4);
    let named: Vec<&str> = features.iter().map(|f| f["feature"].as_str().unwrap()).collect();
    for n in ["age", "income", "height", "score"] {
        assert!(named.contains(&n), "{named:?}");
    }
}

#[test]
fn a_version_without_statistics_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::new(dir.path());
    let v = crate::common::trained_version();
    let mut m = v.manifest.clone();
    m.name = "old".into();
    repo.publish("old", &[(lathe_formats::WEIGHTS_FILE, &v.weights[..])], m).unwrap();
    let s = TestServer::start(dir, Setup::default());
    let body = monitoring(&s, "old");
    assert_eq!(body["statistics"], false);
    assert_eq!(body["alert"], false);
    assert!(body["message"].as_str().unwrap().contains("no training statistics"), "{body}");
}

fn logging_server(sink: Sink, sample: f64) -> (TestServer, Arc<Observability>) {
    let log = RequestLog::start(RequestLogConfig { sink, rotation: Rotation::default(), queue: 16 }).unwrap();
    let settings = RequestLogSettings { log, sample, per_model: Default::default(), redact: vec![] };
    let observe = Observability::start(Default::default(), Some(settings));
    let dir = tempfile::tempdir().unwrap();
    publish(&Repository::new(dir.path()), "mnist");
    let s = TestServer::start(dir, Setup { observe: observe.clone(), ..Setup::default() });
    (s, observe)
}

fn predict_many(s: &TestServer, n: usize) -> Duration {
    let row = vec![0.0f32; 784];
    let body = json!({ "instances": [row] }).to_string();
    let started = std::time::Instant::now();
    for _ in 0..n {
        let (code, b) = s.post("/v1/models/mnist:predict", body.as_bytes());
        assert_eq!(code, 200, "{b}");
    }
    started.elapsed()
}

fn dropped(observe: &Observability) -> u64 {
    observe.request_log.as_ref().unwrap().log.dropped()
}

#[test]
fn a_full_disk_drops_and_counts_log_lines_and_requests_still_answer() {
    let (s, observe) = logging_server(Sink::File("/dev/full".into()), 1.0);
    predict_many(&s, 50);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while dropped(&observe) < 50 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(dropped(&observe), 50);
    let metrics =
        crate::common::agent().get(format!("{}/metrics", s.base)).call().unwrap().into_body().read_to_string().unwrap();
    assert!(metrics.contains("lathe_request_log_dropped_total 50"), "{metrics}");
}

#[test]
fn a_stalled_sink_drops_instead_of_blocking_requests() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stalled");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // A reader that opens the pipe and never reads: writes stop once the pipe's buffer fills.
    let reader_path = fifo.clone();
    let _reader = std::thread::spawn(move || {
        let _held = std::fs::File::open(reader_path).unwrap();
        std::thread::sleep(Duration::from_secs(600));
    });
    let (s, observe) = logging_server(Sink::File(fifo), 1.0);
    let took = predict_many(&s, 400);
    assert!(took < Duration::from_secs(60), "400 requests took {took:?}");
    assert!(dropped(&observe) > 0, "a pipe of 64 KiB and a queue of 16 cannot hold 400 requests");
}

#[test]
fn sampled_lines_hold_the_request_and_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("requests.jsonl");
    let (s, observe) = logging_server(Sink::File(path.clone()), 0.1);
    predict_many(&s, 400);
    let log = &observe.request_log.as_ref().unwrap().log;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    while std::time::Instant::now() < deadline {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        lines = text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()).collect();
        if lines.len() as u64 == log.written() && log.written() > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // 10 % of 400: binomial, 40 ± 6; far outside 15..80 happens with probability < 1e-9.
    assert!((15..80).contains(&lines.len()), "{} lines", lines.len());
    let first = &lines[0];
    assert_eq!(first["model"], "mnist");
    assert_eq!(first["path"], "/v1/models/mnist:predict");
    assert_eq!(first["status"], 200);
    assert_eq!(first["request"]["instances"][0].as_array().unwrap().len(), 784);
    assert_eq!(first["response"]["predictions"][0].as_array().unwrap().len(), 10);
}

#[test]
fn debug_reports_every_layer_and_the_weights() {
    let s = TestServer::with_mnist();
    let (raw, _) = test_images(1);
    let image: Vec<Vec<u8>> = raw[0].chunks(28).map(|r| r.to_vec()).collect();
    let body = json!({ "instances": [image], "full_tensors": true }).to_string();
    let (code, d) = s.post("/v1/models/mnist/debug", body.as_bytes());
    assert_eq!(code, 200, "{d}");
    let layers = d["layers"].as_array().unwrap();
    let shapes: Vec<&Value> = layers.iter().map(|l| &l["output_shape"]).collect();
    assert_eq!(shapes, [&json!([1, 784]), &json!([1, 32]), &json!([1, 10])]);
    assert_eq!(layers[0]["name"], "layers[0] flatten");
    let max = layers[0]["max"].as_f64().unwrap();
    assert!(max > 0.9 && max <= 1.0, "rescaled by 255: {max}");
    assert_eq!(layers[2]["values"].as_array().unwrap().len(), 10);
    assert_eq!(layers[1]["nan_count"], 0);
    assert!(layers[1]["min"].as_f64().unwrap() >= 0.0, "relu");
    let weights = d["weights"].as_array().unwrap();
    assert_eq!(weights.len(), 4);
    assert_eq!(weights[0]["name"], "layers[1] dense kernel");
    assert_eq!(weights[0]["shape"], json!([784, 32]));
    let (code, e) =
        s.post("/v1/models/mnist/debug", json!({"instances": [image], "full_tensors": 1}).to_string().as_bytes());
    assert_eq!(code, 400, "{e}");
}
