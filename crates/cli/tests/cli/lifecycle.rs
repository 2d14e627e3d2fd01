//! The model lifecycle over HTTP only: upload data, train through jobs, follow their events,
//! serve and promote the results; and a server killed mid-job that resumes after a restart.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

fn start_server(cwd: &Path) -> Server {
    start_server_with(cwd, &[])
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn get(s: &Server, path: &str) -> (u16, Value) {
    let mut r = agent().get(format!("{}{path}", s.base)).call().unwrap();
    let code = r.status().as_u16();
    (code, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn send(s: &Server, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let url = format!("{}{path}", s.base);
    let mut r = match method {
        "PUT" => agent().put(url).send(body),
        "DELETE" => agent().delete(url).call(),
        _ => agent().post(url).header("content-type", "application/json").send(body),
    }
    .unwrap();
    let code = r.status().as_u16();
    (code, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn upload_mnist(s: &Server) {
    for f in IDX_FILES {
        let bytes = std::fs::read(mnist().join(f)).unwrap();
        let (code, r) = send(s, "PUT", &format!("/v1/datasets/mnist/files/{f}"), &bytes);
        assert_eq!(code, 201, "{r}");
        assert_eq!(r["bytes"], bytes.len());
    }
}

fn job_body(spec_file: &str, replace: Option<(&str, &str)>, promote: bool) -> Vec<u8> {
    let mut text = std::fs::read_to_string(example(spec_file)).unwrap();
    if let Some((a, b)) = replace {
        text = text.replace(a, b);
    }
    let spec = lathe_formats::Spec::from_yaml_str(&text).unwrap().to_json();
    let mut body = json!({ "name": "mnist", "spec": spec, "dataset": "mnist" });
    if promote {
        body["auto_promote"] = json!({ "label": "stable" });
    }
    body.to_string().into_bytes()
}

/// Reads a job's server-sent events until it finishes; returns (event, data) pairs.
fn follow(s: &Server, id: &str) -> Vec<(String, Value)> {
    let r = agent().get(format!("{}/v1/jobs/{id}/events", s.base)).call().unwrap();
    assert_eq!(r.headers().get("content-type").unwrap(), "text/event-stream");
    let mut events = Vec::new();
    let mut name = String::new();
    for line in BufReader::new(r.into_body().into_reader()).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = line.strip_prefix("data: ") {
            events.push((name.clone(), serde_json::from_str(d).unwrap()));
        }
    }
    events
}

fn predict_ok(s: &Server, path: &str) {
    let (pixels, label) = mnist_test_image(0);
    let (code, r) = send(s, "POST", path, json!({ "instances": [pixels] }).to_string().as_bytes());
    assert_eq!(code, 200, "{r}");
    let row: Vec<f64> = r["predictions"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    assert_eq!((0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap(), label as usize);
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn datasets_jobs_events_serving_and_promotion_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_server(tmp.path());
    upload_mnist(&s);
    let (code, d) = get(&s, "/v1/datasets/mnist");
    assert_eq!(code, 200);
    let summary = &d["summary"];
    assert_eq!((summary["train_rows"].as_u64(), summary["test_rows"].as_u64()), (Some(60_000), Some(10_000)));
    assert_eq!(summary["class_balance"]["1"], 6742);
    assert_eq!(summary["sample_shape"], json!([28, 28]));

    // The reference job: events stream while it trains; version 1 is published and served.
    let (code, job) = send(&s, "POST", "/v1/jobs", &job_body("mnist-mlp.yaml", None, true));
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    let events = follow(&s, &id);
    assert_eq!(events[0].0, "job", "the stream opens with the job's record");
    assert_eq!(events.iter().filter(|(e, _)| e == "epoch").count(), 5);
    assert!(events.iter().any(|(e, _)| e == "progress"));
    let last = events.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1["state"].as_str(), last.1["version"].as_u64()),
        ("state", Some("succeeded"), Some(1))
    );
    let (_, job) = get(&s, &format!("/v1/jobs/{id}"));
    assert_eq!((job["state"].as_str(), job["version"].as_u64()), (Some("succeeded"), Some(1)));
    assert_eq!(job["progress"]["promoted"], true, "the first version takes the free label");
    wait_for("version 1 to serve", || get(&s, "/v1/models/mnist/labels/stable").0 == 200);
    predict_ok(&s, "/v1/models/mnist/labels/stable:predict");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("repo/mnist/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["job"]["job"], id.as_str());
    assert_eq!(manifest["job"]["dataset"], "mnist");
    assert!(manifest["job"]["parent_version"].is_null());
    assert!(manifest["metrics"]["accuracy"].as_f64().unwrap() >= 0.975);

    // A second job with a wider layer publishes version 2 and, being at least as accurate, takes the label.
    let (code, job2) =
        send(&s, "POST", "/v1/jobs", &job_body("mnist-mlp.yaml", Some(("units: 128", "units: 256")), true));
    assert_eq!(code, 201, "{job2}");
    let id2 = job2["id"].as_str().unwrap().to_string();
    let events = follow(&s, &id2);
    assert_eq!(events.last().unwrap().1["version"], 2);
    let (_, job2) = get(&s, &format!("/v1/jobs/{id2}"));
    assert_eq!(job2["progress"]["promoted"], true);
    let labels: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("repo/mnist/labels.json")).unwrap()).unwrap();
    assert_eq!(labels["stable"], 2);
    let m2: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("repo/mnist/2/manifest.json")).unwrap()).unwrap();
    assert_eq!(m2["job"]["parent_version"], 1);
    wait_for("the label to move", || {
        get(&s, "/v1/models/mnist/labels/stable/metadata").1["model_spec"]["version"] == "2"
    });
    predict_ok(&s, "/v1/models/mnist:predict");

    // Evaluations: stored, reproducing the published metrics; two versions side by side.
    let (code, e1) = send(&s, "POST", "/v1/evaluations", br#"{"model": "mnist", "version": 1, "dataset": "mnist"}"#);
    assert_eq!(code, 200, "{e1}");
    assert_eq!(
        e1["metrics"]["confusion"], manifest["metrics"]["confusion"],
        "the same test split gives the published figures"
    );
    let (_, cmp) = get(&s, "/v1/evaluations/compare?model=mnist&a=1&b=2&dataset=mnist");
    let (a1, a2) =
        (cmp["a"]["metrics"]["accuracy"].as_f64().unwrap(), cmp["b"]["metrics"]["accuracy"].as_f64().unwrap());
    assert!((cmp["delta"]["accuracy"].as_f64().unwrap() - (a2 - a1)).abs() < 1e-12);
    assert_eq!(cmp["b"]["metrics"]["confusion"], m2["metrics"]["confusion"]);
    let (_, list) = get(&s, "/v1/evaluations?model=mnist");
    assert_eq!(list["evaluations"].as_array().unwrap().len(), 2, "compare reused the stored evaluation of version 1");

    // A 50/50 split over versions 1 and 2 for requests that name no version.
    let (code, t) = send(
        &s,
        "PUT",
        "/v1/models/mnist/traffic",
        br#"{"routes": [{"target": "1", "weight": 50}, {"target": "stable", "weight": 50}]}"#,
    );
    assert_eq!(code, 200, "{t}");
    wait_for("both versions to serve", || {
        get(&s, "/v2/models/mnist/versions/1/ready").0 == 200 && get(&s, "/v2/models/mnist/versions/2/ready").0 == 200
    });
    let (pixels, _) = mnist_test_image(0);
    let v2_body =
        json!({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels}]}).to_string();
    let answered_by = |s: &Server, extra: Option<&str>| -> u64 {
        let mut req = agent().post(format!("{}/v2/models/mnist/infer", s.base));
        if let Some(k) = extra {
            req = req.header("x-request-id", k);
        }
        let mut r = req.send(v2_body.as_bytes()).unwrap();
        let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        v["model_version"].as_str().unwrap().parse().unwrap()
    };
    let split: Vec<u64> = (0..200).map(|_| answered_by(&s, None)).collect();
    let ones = split.iter().filter(|v| **v == 1).count();
    assert!((70..=130).contains(&ones), "50/50 split answered {ones}/200 from version 1");
    let sticky: Vec<u64> = (0..10).map(|_| answered_by(&s, Some("user-42"))).collect();
    assert!(sticky.windows(2).all(|w| w[0] == w[1]), "one request id, one version: {sticky:?}");
    let metrics = agent().get(format!("{}/metrics", s.base)).call().unwrap().body_mut().read_to_string().unwrap();
    let count = |v: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "lathe_inference_requests_total{{model=\"mnist\",version=\"{v}\",\
                     protocol=\"v2\",api=\"infer\",code=\"200\"}}"
                ))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    assert!(count("1") >= 70 && count("2") >= 70, "both versions in the metrics: {} and {}", count("1"), count("2"));
    // Deleting a version that traffic or a label points at is refused.
    let (code, e) = send(&s, "DELETE", "/v1/models/mnist/versions/2", b"");
    assert_eq!(code, 409, "{e}");
    // Rollback: one call sends everything back to version 1.
    let (code, r) = send(&s, "POST", "/v1/models/mnist/rollback", br#"{"to": "1"}"#);
    assert_eq!(code, 200, "{r}");
    assert!((0..50).all(|_| answered_by(&s, None) == 1), "after rollback every answer comes from version 1");
    let (_, t) = get(&s, "/v1/models/mnist/traffic");
    assert_eq!(t["traffic"]["routes"], json!([{"target": "1", "weight": 100}]));
    let (_, listing) = get(&s, "/v1/admin/models");
    let versions = listing["models"][0]["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert!(versions.iter().all(|v| v["state"] == "READY" && v["accuracy"].as_f64().unwrap() > 0.97), "{listing}");

    // Bad requests: clear 4xx, nothing stored.
    let cases: Vec<(u16, Value, u16, &str)> = vec![
        {
            let (c, b) = send(&s, "POST", "/v1/jobs", br#"{"name": "m", "spec": {}, "dataset": "mnist", "epochs": 3}"#);
            (c, b, 400, "unknown field `epochs`")
        },
        {
            let mut spec =
                lathe_formats::Spec::from_yaml_str(&std::fs::read_to_string(example("mnist-mlp.yaml")).unwrap())
                    .unwrap()
                    .to_json();
            spec["layers"][1]["unitz"] = json!(3);
            let (c, b) = send(
                &s,
                "POST",
                "/v1/jobs",
                json!({"name": "m", "spec": spec, "dataset": "mnist"}).to_string().as_bytes(),
            );
            (c, b, 400, "spec.layers[1].unitz: unknown key")
        },
        {
            let (c, b) = send(&s, "POST", "/v1/jobs", &job_body("mnist-mlp.yaml", None, false).replace_dataset("nope"));
            (c, b, 404, "dataset \"nope\" not found")
        },
        {
            let (c, b) = send(&s, "PUT", "/v1/datasets/x/files/..%2Fescape", b"1");
            (c, b, 400, "is not a dataset file")
        },
        {
            let (c, b) = send(&s, "PUT", "/v1/datasets/..%2Fup/files/data.csv", b"1");
            (c, b, 400, "invalid model name")
        },
        {
            let (c, b) = send(&s, "PUT", "/v1/datasets/a%07b/files/data.csv", b"1");
            (c, b, 400, "invalid model name")
        },
        {
            let (c, b) = send(&s, "POST", "/v1/jobs/job-nope/cancel", b"");
            (c, b, 404, "job \"job-nope\" not found")
        },
        {
            let (c, b) = send(&s, "POST", &format!("/v1/jobs/{id}/cancel"), b"");
            (c, b, 409, "already succeeded")
        },
    ];
    for (code, body, want, needle) in cases {
        assert_eq!(code, want, "{body}");
        assert!(body["error"].as_str().unwrap_or_default().contains(needle), "expected {needle:?} in {body}");
    }
    let (_, audit) = get(&s, "/v1/admin/audit");
    let actions: Vec<&str> = audit["audit"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in ["dataset.upload", "job.submit", "job.succeeded", "label.promote"] {
        assert!(actions.contains(&a), "{a} missing from the audit log: {actions:?}");
    }
    let (code, _) = send(&s, "DELETE", "/v1/datasets/mnist", b"");
    assert_eq!(code, 200);
    assert!(!tmp.path().join("lathe-data/datasets/mnist").exists());
}

trait ReplaceDataset {
    fn replace_dataset(self, name: &str) -> Vec<u8>;
}

impl ReplaceDataset for Vec<u8> {
    fn replace_dataset(self, name: &str) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(&self).unwrap();
        v["dataset"] = json!(name);
        v.to_string().into_bytes()
    }
}

#[test]
fn a_killed_server_resumes_its_job_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_server(tmp.path());
    upload_mnist(&s);
    let (code, job) =
        send(&s, "POST", "/v1/jobs", &job_body("mnist-mlp.yaml", Some(("epochs: 5", "epochs: 8")), false));
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    wait_for("two epochs", || get(&s, &format!("/v1/jobs/{id}")).1["progress"]["epoch"].as_u64().unwrap_or(0) >= 2);
    drop(s); // SIGKILL
    assert!(version_dirs(tmp.path(), "mnist").is_empty(), "no version, complete or partial, after the kill");

    let s = start_server(tmp.path());
    wait_for("the job to finish after the restart", || {
        let (_, j) = get(&s, &format!("/v1/jobs/{id}"));
        assert!(!["failed", "cancelled"].contains(&j["state"].as_str().unwrap_or("")), "{j}");
        j["state"] == "succeeded"
    });
    let (_, job) = get(&s, &format!("/v1/jobs/{id}"));
    assert_eq!(job["version"], 1);
    assert_eq!(version_dirs(tmp.path(), "mnist"), vec!["1".to_string()], "the store and the files agree");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("repo/mnist/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["training"]["resumed"], true);
    assert_eq!(manifest["history"].as_array().unwrap().len(), 8);
    wait_for("version 1 to serve", || get(&s, "/v2/models/mnist/ready").0 == 200);
    predict_ok(&s, "/v1/models/mnist:predict");
}

#[test]
fn uploads_over_the_limit_are_refused_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_server_with(tmp.path(), &["--max-upload-bytes", "1000"]);
    let (code, body) = send(&s, "PUT", "/v1/datasets/big/files/data.csv", &vec![b'1'; 5000]);
    assert_eq!(code, 413, "{body}");
    assert_eq!(body["error"], "data.csv is larger than the upload limit of 1000 bytes");
    assert!(!tmp.path().join("lathe-data/datasets/big/data.csv").exists());
    assert_eq!(get(&s, "/v1/datasets/big").0, 404);
    let (code, _) = send(&s, "PUT", "/v1/datasets/small/files/data.csv", b"a,label\n1,x\n2,y\n");
    assert_eq!(code, 201);
    let (_, d) = get(&s, "/v1/datasets/small");
    assert_eq!(d["summary"]["columns"], json!(["a"]));
    assert_eq!(d["summary"]["class_balance"], json!({"x": 1, "y": 1}));
}

#[test]
fn a_regression_table_is_described_trained_and_evaluated_over_http() {
    let tmp = tempfile::tempdir().unwrap();
    let s = start_server(tmp.path());
    // The label `y` sits between the features: y = 2·a − b + 5, exactly.
    let mut csv = String::from("a,y,b\n");
    for i in 0..600 {
        let (a, b) = ((i % 37) as f64 / 7.0, (i % 23) as f64 / 5.0);
        csv.push_str(&format!("{a},{},{b}\n", 2.0 * a - b + 5.0));
    }
    let (code, r) = send(&s, "PUT", "/v1/datasets/lin/files/data.csv", csv.as_bytes());
    assert_eq!(code, 201, "{r}");
    let (code, d) = get(&s, "/v1/datasets/lin?label_column=y");
    assert_eq!(code, 200, "{d}");
    let summary = &d["summary"];
    assert_eq!((summary["columns"].clone(), summary["label_columns"].clone()), (json!(["a", "b"]), json!(["y"])));
    assert_eq!(summary["task"], "regression", "{summary}");
    let y = &summary["column_types"][1];
    assert_eq!((y["name"].as_str(), y["kind"].as_str(), y["missing"].as_u64()), (Some("y"), Some("numeric"), Some(0)));
    assert!(summary["class_balance"].is_null(), "{summary}");
    let (code, bad) = get(&s, "/v1/datasets/lin?label_column=nope");
    assert_eq!(code, 400, "{bad}");
    assert!(bad["error"].as_str().unwrap().contains("no column named \"nope\""), "{bad}");

    let spec = json!({
        "input": {"preprocessing": "standardize"},
        "layers": [{"type": "dense", "units": 16, "activation": "relu"}, {"type": "dense", "units": "auto"}],
        "compile": {"optimizer": {"type": "adam", "lr": 0.01}, "loss": "huber"},
        "fit": {"epochs": 40},
    });
    let body = json!({"name": "lin", "spec": spec, "dataset": "lin", "label_column": "y",
        "auto_promote": {"label": "stable", "metric": "r2"}});
    let (code, job) = send(&s, "POST", "/v1/jobs", body.to_string().as_bytes());
    assert_eq!(code, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    follow(&s, &id);
    let (_, job) = get(&s, &format!("/v1/jobs/{id}"));
    assert_eq!(job["state"], "succeeded", "{job}");
    let (code, e) =
        send(&s, "POST", "/v1/evaluations", json!({"model": "lin", "dataset": "lin"}).to_string().as_bytes());
    assert_eq!(code, 200, "{e}");
    assert!(e["metrics"]["r2"].as_f64().unwrap() > 0.95, "{e}");
    assert_eq!(e["metrics"]["per_target"][0]["target"], "y");
    let (_, models) = get(&s, "/v1/admin/models");
    assert!(models["models"][0]["versions"][0]["r2"].as_f64().unwrap() > 0.95, "{models}");
    assert_eq!(models["models"][0]["labels"]["stable"], 1, "promoted on r2: {models}");
}
