//! Two `lathe serve` replicas on one S3-compatible store (moto) and one Postgres (Debian's,
//! started here): versions published elsewhere reach both, a label or traffic change made on
//! one takes effect on the other, `If-Match` holds across them, and a version without a
//! manifest is ignored by both.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::common::*;
use crate::object_store::{lathe_s3, run_lathe, served_versions};
use crate::s3;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// Sends `body` with `method` and an optional `If-Match`; (status, JSON answer).
fn send(base: &str, method: &str, path: &str, if_match: Option<&str>, body: &str) -> (u16, Value) {
    let url = format!("{base}{path}");
    let agent = agent();
    let mut answer = match (method, if_match) {
        ("PUT", Some(tag)) => agent.put(&url).header("If-Match", tag).send(body.as_bytes()),
        ("PUT", None) => agent.put(&url).send(body.as_bytes()),
        ("POST", _) => agent.post(&url).header("content-type", "application/json").send(body.as_bytes()),
        _ => agent.get(&url).call(),
    }
    .unwrap();
    let code = answer.status().as_u16();
    (code, serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn replica(cwd: &Path, bucket: &str, name: &str, metadata: &str) -> Server {
    let state = cwd.join(format!("state-{name}"));
    let state = state.to_str().unwrap();
    let args = ["serve", "--port", "0", "--json", "--poll-seconds", "1", "--metadata", metadata, "--state-dir", state];
    let (child, first) = spawn_listening(&mut lathe_s3(cwd, bucket, &format!("cache-{name}"), &args));
    Server { child, base: format!("http://{}", first["address"].as_str().unwrap()) }
}

/// Waits until `check` holds, at most `within`; returns how long it took.
fn until(what: &str, within: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

fn answered_by(base: &str) -> String {
    let (pixels, _) = mnist_test_image(0);
    let body = json!({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels}]});
    let (code, answer) = send(base, "POST", "/v2/models/digits/infer", None, &body.to_string());
    assert_eq!(code, 200, "{answer}");
    answer["model_version"].as_str().unwrap().to_string()
}

#[test]
fn two_replicas_agree_on_versions_labels_and_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let cluster = Cluster::start(false);
    let metadata = cluster.database("replicas");
    let bucket = s3::fresh_bucket("replicas");
    let data = mnist_subset(cwd, 1000, 200);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    let train = || {
        let args = ["train", "--spec", spec.to_str().unwrap(), "--data", data.to_str().unwrap(), "--name", "digits"];
        let out = ok(&run_lathe(lathe_s3(cwd, &bucket, "cache-trainer", &args).arg("--json")));
        last_json(&out)["version"].as_u64().unwrap()
    };
    assert_eq!(train(), 1);
    let (a, b) = (replica(cwd, &bucket, "a", &metadata), replica(cwd, &bucket, "b", &metadata));
    for r in [&a, &b] {
        until("version 1 on both replicas", Duration::from_secs(60), || served_versions(&r.base) == [1]);
    }

    // A version published elsewhere: both replicas serve it within 5 s.
    assert_eq!(train(), 2);
    for (name, r) in [("a", &a), ("b", &b)] {
        let took = until("version 2 served", Duration::from_secs(5), || served_versions(&r.base).contains(&2));
        eprintln!("replica {name} served version 2 {took:?} after its publish");
    }

    // A label set on A takes effect on B within 2 s.
    let set = send(&a.base, "PUT", "/v1/models/digits/labels/stable", None, r#"{"version": 1}"#);
    assert_eq!(set.0, 200, "{set:?}");
    let took = until("label on B", Duration::from_secs(2), || {
        send(&b.base, "GET", "/v1/models/digits/labels/stable", None, "").0 == 200
    });
    eprintln!("label stable=1 set on A answered on B after {took:?}");

    // A traffic policy set on A routes B's requests within 2 s.
    let policy = r#"{"routes": [{"target": "stable", "weight": 100}]}"#;
    assert_eq!(send(&a.base, "PUT", "/v1/models/digits/traffic", None, policy).0, 200);
    let took = until("traffic on B", Duration::from_secs(2), || answered_by(&b.base) == "1");
    eprintln!("traffic to stable set on A routed B's requests after {took:?}");
    assert!((0..20).all(|_| answered_by(&b.base) == "1"));

    // Two promotions expecting the same label value, one per replica: one wins, one is 409,
    // even though B's copy of the labels may not have caught up yet.
    let first = send(&a.base, "PUT", "/v1/models/digits/labels/stable", Some("\"1\""), r#"{"version": 2}"#);
    let second = send(&b.base, "PUT", "/v1/models/digits/labels/stable", Some("\"1\""), r#"{"version": 1}"#);
    assert_eq!((first.0, second.0), (200, 409), "{first:?} {second:?}");
    assert!(second.1["error"].as_str().unwrap().contains("is \"2\""), "{second:?}");
    until("the winning promotion on B", Duration::from_secs(2), || answered_by(&b.base) == "2");

    // A claimed version without a manifest (a publisher that died) is ignored by both.
    let store = lathe_registry::Repository::open(
        &format!("s3://{bucket}/models"),
        Some(&cwd.join("cache-probe")),
        &lathe_registry::remote::RemoteOptions { allow_http: true, settings: s3::shared().settings() },
    )
    .unwrap();
    let remote = store.remote().unwrap();
    assert!(remote.claim("digits", 3, "died").unwrap());
    std::fs::write(cwd.join("half.bin"), b"half a model").unwrap();
    remote.upload("digits", 3, "weights.safetensors", &cwd.join("half.bin")).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    for r in [&a, &b] {
        assert!(!served_versions(&r.base).contains(&3));
        assert_eq!(send(&r.base, "GET", "/v2/models/digits/versions/3/ready", None, "").0, 404);
    }
    assert!(!cwd.join("cache-a/digits/3").exists() && !cwd.join("cache-b/digits/3").exists());
    assert_eq!(train(), 4, "the abandoned number stays taken");
}
