//! Two `lathe serve` replicas on one S3-compatible store (moto) and one Postgres (Debian's,
//! started here): versions published elsewhere reach both, a label or traffic change made on
//! one takes effect on the other, `If-Match` holds across them, and a version without a
//! manifest is ignored by both; jobs submitted to a replica are trained by `lathe worker`s, and
//! a worker killed mid-job is replaced by another that resumes from the stored checkpoint.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::common::*;
use crate::object_store::{lathe_s3, run_lathe, served_versions, served_versions_of};
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

/// A scratch folder, a Postgres cluster with database `name` (its URL) and a bucket of that
/// name: the engines a deployment shares. The cluster stops when dropped.
fn engines(name: &str) -> (tempfile::TempDir, Cluster, String, String) {
    let cluster = Cluster::start(false);
    let metadata = cluster.database(name);
    (tempfile::tempdir().unwrap(), cluster, metadata, s3::fresh_bucket(name))
}

/// The bucket's repository as the test process sees it, cached in `cwd/cache`.
fn bucket_repository(cwd: &Path, bucket: &str, cache: &str) -> lathe_registry::Repository {
    let options = lathe_registry::remote::RemoteOptions { allow_http: true, settings: s3::shared().settings() };
    lathe_registry::Repository::open(&format!("s3://{bucket}/models"), Some(&cwd.join(cache)), &options).unwrap()
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
    let (dir, _cluster, metadata, bucket) = engines("replicas");
    let cwd = dir.path();
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
    let store = bucket_repository(cwd, &bucket, "cache-probe");
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

/// A `lathe worker` on the test's store and database, its lease `lease` seconds (killed on drop).
fn worker(cwd: &Path, bucket: &str, name: &str, metadata: &str, lease: &str) -> Server {
    let state = cwd.join(format!("state-{name}"));
    let args = [
        "worker",
        "--metadata",
        metadata,
        "--state-dir",
        state.to_str().unwrap(),
        "--job-lease",
        lease,
        "--poll-seconds",
        "0.2",
        "--worker-id",
        name,
    ];
    let mut c = lathe_s3(cwd, bucket, &format!("cache-{name}"), &args);
    let child = c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    Server { child, base: String::new() }
}

/// PUTs raw bytes (a dataset file); (status, JSON answer).
fn send_bytes(base: &str, path: &str, bytes: &[u8]) -> (u16, Value) {
    let mut answer = agent().put(format!("{base}{path}")).send(bytes).unwrap();
    let code = answer.status().as_u16();
    (code, serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn job(base: &str, id: &str) -> Value {
    send(base, "GET", &format!("/v1/jobs/{id}"), None, "").1
}

fn submit(base: &str, name: &str, dataset: &str, spec: Value) -> String {
    let body = json!({"name": name, "spec": spec, "dataset": dataset});
    let (code, job) = send(base, "POST", "/v1/jobs", None, &body.to_string());
    assert_eq!(code, 201, "{job}");
    job["id"].as_str().unwrap().to_string()
}

fn upload_mnist_subset(base: &str, dir: &Path) {
    for file in
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let (code, answer) = send_bytes(base, &format!("/v1/datasets/digits/files/{file}"), &bytes);
        assert_eq!(code, 201, "{answer}");
    }
}

fn mlp(epochs: u32) -> Value {
    json!({
        "input": {"shape": [28, 28], "preprocessing": {"kind": "rescale", "divisor": 255}},
        "layers": [{"type": "flatten"}, {"type": "dense", "units": 64, "activation": "relu"},
                   {"type": "dense", "units": 10, "activation": "softmax"}],
        "compile": {"optimizer": {"type": "adam", "lr": 0.002}, "loss": "sparse_categorical_crossentropy"},
        "fit": {"epochs": epochs, "batch_size": 32, "seed": 7},
    })
}

#[test]
fn jobs_submitted_to_a_replica_are_trained_by_workers_and_a_killed_worker_is_resumed() {
    let (dir, _cluster, metadata, bucket) = engines("workers");
    let cwd = dir.path();
    let (a, b) = (replica(cwd, &bucket, "a", &metadata), replica(cwd, &bucket, "b", &metadata));

    // A small CSV job submitted to A, trained by a worker (A runs no jobs), published to the
    // bucket and served by both replicas within 5 s of its publish.
    let mut first = worker(cwd, &bucket, "w1", &metadata, "2");
    let (code, answer) = send_bytes(&a.base, "/v1/datasets/lin/files/data.csv", linear_csv().as_bytes());
    assert_eq!(code, 201, "{answer}");
    let (code, submitted) = send(&a.base, "POST", "/v1/jobs", None, &linear_job(20).to_string());
    assert_eq!(code, 201, "{submitted}");
    let id = submitted["id"].as_str().unwrap().to_string();
    until("the CSV job to succeed", Duration::from_secs(120), || job(&b.base, &id)["state"] == "succeeded");
    assert_eq!(job(&a.base, &id)["version"], 1);
    for r in [&a, &b] {
        let took =
            until("the job's version served", Duration::from_secs(5), || served_versions_of(&r.base, "lin") == [1]);
        eprintln!("served the CSV job's version {took:?} after the job was recorded as succeeded");
    }
    assert!(cwd.join("state-w1/datasets/lin/data.csv").is_file(), "the worker fetched the dataset from the bucket");
    assert!(!cwd.join("state-w1/lathe.db").exists(), "the worker records nothing outside Postgres");
    upload_mnist_subset(&a.base, &mnist_subset(cwd, 2000, 300));

    // A long job: the worker is killed -9 after a few epochs; a second worker takes over when
    // the lease runs out, resumes from the stored checkpoint and publishes once.
    let id = submit(&b.base, "digits", "digits", mlp(40));
    until("epoch 3 of the long job", Duration::from_secs(120), || {
        job(&a.base, &id)["progress"]["epoch"].as_u64().unwrap_or(0) >= 3
    });
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let killed_at = job(&a.base, &id)["progress"]["epoch"].as_u64().unwrap();
    let _second = worker(cwd, &bucket, "w2", &metadata, "2");
    until("the resumed job to succeed", Duration::from_secs(180), || job(&a.base, &id)["state"] == "succeeded");
    let version = job(&a.base, &id)["version"].as_u64().unwrap();
    assert_eq!(version, 1, "published once");
    until("the resumed job's version on A", Duration::from_secs(5), || {
        served_versions_of(&a.base, "digits").contains(&1)
    });
    let (_, manifest) = send(&a.base, "GET", "/v1/models/digits/versions/1/manifest", None, "");
    assert_eq!(manifest["training"]["resumed"], true, "{manifest}");
    assert_eq!(manifest["history"].as_array().map(Vec::len), Some(40));
    eprintln!("killed after epoch {killed_at}; the second worker resumed and finished");
    let store = bucket_repository(cwd, &bucket, "cache-probe");
    assert_eq!(store.remote().unwrap().published_versions("digits").unwrap(), vec![1], "one version, once");
    assert_eq!(store.remote().unwrap().pull_folder(".checkpoints", &id, &cwd.join("left")).unwrap(), 0);
}

/// Publishes a copy of version 1's files (from the trainer's cache) as the next version.
fn publish_copy(store: &lathe_registry::Repository, from: &Path) -> u64 {
    let manifest: lathe_formats::Manifest =
        serde_json::from_slice(&std::fs::read(from.join("manifest.json")).unwrap()).unwrap();
    let names: Vec<String> = manifest.files.keys().cloned().collect();
    let paths: Vec<std::path::PathBuf> = names.iter().map(|n| from.join(n)).collect();
    let files: Vec<(&str, lathe_registry::FileSource)> =
        names.iter().zip(&paths).map(|(n, p)| (n.as_str(), lathe_registry::FileSource::Copy(p))).collect();
    let mut hooks = lathe_registry::Publishing::default();
    store.publish_from("digits", &files, manifest.clone(), &mut hooks).unwrap().version
}

#[test]
fn twenty_publishes_and_promotions_under_load_fail_no_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let (dir, _cluster, metadata, bucket) = engines("load");
    let cwd = dir.path();
    let data = mnist_subset(cwd, 500, 100);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    let args = ["train", "--spec", spec.to_str().unwrap(), "--data", data.to_str().unwrap(), "--name", "digits"];
    ok(&run_lathe(&mut lathe_s3(cwd, &bucket, "cache-trainer", &args)));
    let (a, b) = (replica(cwd, &bucket, "a", &metadata), replica(cwd, &bucket, "b", &metadata));
    for r in [&a, &b] {
        until("version 1 on both replicas", Duration::from_secs(60), || served_versions(&r.base) == [1]);
    }
    assert_eq!(send(&a.base, "PUT", "/v1/models/digits/labels/stable", None, r#"{"version": 1}"#).0, 200);
    let policy = r#"{"routes": [{"target": "stable", "weight": 100}]}"#;
    assert_eq!(send(&b.base, "PUT", "/v1/models/digits/traffic", None, policy).0, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let (pixels, _) = mnist_test_image(0);
    let body = json!({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": pixels}]});
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (stop, answers, body) = (stop.clone(), answers.clone(), body.to_string());
            let base = if i % 2 == 0 { a.base.clone() } else { b.base.clone() };
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (code, answer) = send(&base, "POST", "/v2/models/digits/infer", None, &body);
                    let version = answer["model_version"].as_str().unwrap_or_default().to_string();
                    answers.lock().unwrap().push((code, if code == 200 { version } else { answer.to_string() }));
                }
            })
        })
        .collect();

    let store = bucket_repository(cwd, &bucket, "cache-publisher");
    let trained = cwd.join("cache-trainer/digits/1");
    let mut published = vec!["1".to_string()];
    for round in 0..20 {
        let version = publish_copy(&store, &trained);
        published.push(version.to_string());
        let replica = if round % 2 == 0 { &a } else { &b };
        until("the new version on the promoting replica", Duration::from_secs(10), || {
            send(&replica.base, "GET", &format!("/v2/models/digits/versions/{version}/ready"), None, "").0 == 200
        });
        let label = format!(r#"{{"version": {version}}}"#);
        let (code, answer) = send(&replica.base, "PUT", "/v1/models/digits/labels/stable", None, &label);
        assert_eq!(code, 200, "{answer}");
    }
    until("the last promotion on both", Duration::from_secs(5), || {
        [&a, &b].iter().all(|r| {
            send(&r.base, "GET", "/v1/models/digits/labels/stable/metadata", None, "").1["model_spec"]["version"]
                == "21"
        })
    });
    stop.store(true, Ordering::SeqCst);
    load.into_iter().for_each(|t| t.join().unwrap());
    let answers = answers.lock().unwrap();
    let failed: Vec<_> = answers.iter().filter(|(code, _)| *code != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        answers.len(),
        &failed[..3.min(failed.len())]
    );
    let unknown: Vec<_> = answers.iter().filter(|(_, v)| !published.contains(v)).collect();
    assert!(unknown.is_empty(), "answers from versions never published: {:?}", &unknown[..3.min(unknown.len())]);
    let versions: std::collections::BTreeSet<&String> = answers.iter().map(|(_, v)| v).collect();
    eprintln!("{} requests over both replicas, 0 failed, answered by {} versions", answers.len(), versions.len());
    assert!(versions.len() > 5, "the promotions moved the traffic: {versions:?}");
}
