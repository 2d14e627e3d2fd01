//! Versions appear, fail, move and disappear while the server runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lathe_formats::{MANIFEST_FILE, WEIGHTS_FILE};
use serde_json::{json, Value};

use crate::common::*;

fn infer_body() -> String {
    let (images, _) = test_images(1);
    json!({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": images[0]}]}).to_string()
}

fn version_of(s: &TestServer, path: &str) -> Option<u64> {
    let (code, r) = s.post(path, infer_body().as_bytes());
    (code == 200).then(|| r["model_version"].as_str().unwrap().parse().unwrap())
}

#[test]
fn new_versions_load_in_the_background_and_failures_keep_the_old_one() {
    let s = TestServer::with_mnist();
    let repo = s.repo();
    // A new version published while serving takes over the default route.
    assert_eq!(publish(&repo, "mnist"), 2);
    s.wait_until(|s| version_of(s, "/v2/models/mnist/infer") == Some(2), "version 2 to serve");
    s.wait_until(|s| s.get("/v2/models/mnist/versions/1/ready").0 != 200, "version 1 to leave (latest 1 policy)");

    // A version whose weights do not match its manifest fails; version 2 keeps serving.
    let v3 = publish(&repo, "mnist");
    let path = repo.root().join("mnist").join(v3.to_string()).join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    s.wait_until(
        |s| {
            s.post("/v2/repository/index", b"{}")
                .1
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["version"] == "3" && e["state"] == "UNAVAILABLE")
        },
        "version 3 to fail",
    );
    let (_, index) = s.post("/v2/repository/index", b"{}");
    let row = index.as_array().unwrap().iter().find(|e| e["version"] == "3").unwrap().clone();
    assert!(row["reason"].as_str().unwrap().contains("does not match the manifest"), "{row}");
    assert_eq!(version_of(&s, "/v2/models/mnist/infer"), Some(2), "the failed version leaves version 2 serving");
    let (_, status) = s.get("/v1/models/mnist/versions/3");
    assert_eq!(status["model_version_status"][0]["state"], "END");
    assert!(status["model_version_status"][0]["status"]["error_message"].as_str().unwrap().contains("failed to load"));

    // Policy: serve the two latest good versions; labels route to each.
    std::fs::remove_dir_all(repo.root().join("mnist/3")).unwrap();
    std::fs::write(repo.config_path("mnist"), br#"{"version_policy": {"latest": {"num_versions": 2}}}"#).unwrap();
    s.wait_until(|s| s.get("/v2/models/mnist/versions/1/ready").0 == 200, "version 1 to come back under latest 2");
    repo.set_label("mnist", "stable", 1).unwrap();
    repo.set_label("mnist", "canary", 2).unwrap();
    s.wait_until(|s| s.get("/v1/models/mnist/labels/canary").0 == 200, "labels to apply");
    let body = json!({"instances": [test_images(1).0[0].clone()]}).to_string();
    assert_eq!(s.post("/v1/models/mnist/labels/stable:predict", body.as_bytes()).0, 200);
    assert_eq!(s.get("/v1/models/mnist/labels/stable/metadata").1["model_spec"]["version"], "1");
    assert_eq!(s.get("/v1/models/mnist/labels/canary/metadata").1["model_spec"]["version"], "2");
    // The default label overrides the highest version.
    repo.set_label("mnist", "default", 1).unwrap();
    s.wait_until(|s| version_of(s, "/v2/models/mnist/infer") == Some(1), "the default label to route to 1");

    // A label may name a version no policy selects: it is loaded for the label, and the
    // label takes effect once that version is ready.
    std::fs::write(repo.config_path("mnist"), br#"{"version_policy": {"specific": {"versions": [1, 2]}}}"#).unwrap();
    let v4 = publish(&repo, "mnist");
    s.wait_until(
        |s| s.manager.model("mnist").unwrap().versions.iter().all(|v| v.version != v4),
        "version 4 to stay unserved",
    );
    assert_eq!(s.post("/v1/models/mnist/labels/next:predict", body.as_bytes()).0, 404);
    repo.set_label("mnist", "next", v4).unwrap();
    s.wait_until(
        |s| s.post("/v1/models/mnist/labels/next:predict", body.as_bytes()).0 == 200,
        "label next to take effect",
    );
    std::fs::write(repo.config_path("mnist"), br#"{"version_policy": {"all": {}}}"#).unwrap();

    // A removed version drains and unloads; an invalid config keeps the defaults and says why.
    std::fs::remove_dir_all(repo.root().join("mnist/1")).unwrap();
    s.wait_until(|s| s.get("/v2/models/mnist/versions/1/ready").0 != 200, "version 1 to unload");
    std::fs::write(repo.config_path("mnist"), br#"{"max_batch": 3}"#).unwrap();
    s.wait_until(|s| !s.get("/v2/models/mnist/config").1["config_error"].is_null(), "the config error to show");
    let (_, cfg) = s.get("/v2/models/mnist/config");
    assert!(cfg["config_error"].as_str().unwrap().contains("unknown field `max_batch`"), "{cfg}");
    // With the defaults (latest 1) and no label left on it, version 2 leaves.
    repo.remove_label("mnist", "canary").unwrap();
    s.wait_until(
        |s| s.get("/v2/models/mnist/versions/2/ready").0 != 200,
        "version 2 to leave under the default policy",
    );
    assert_eq!(version_of(&s, "/v2/models/mnist/infer"), Some(v4));
    assert!(repo.root().join("mnist/2").join(MANIFEST_FILE).exists(), "unloading never touches the repository");
}

#[test]
fn swap_under_load_answers_every_request_from_a_published_version() {
    let s = TestServer::with_mnist();
    let repo = s.repo();
    let latest = AtomicU64::new(1);
    let stop = AtomicBool::new(false);
    let body = infer_body();
    let (ok, bad, seen) = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (mut ok, mut bad, mut max_seen) = (0u64, Vec::new(), 0u64);
                    while !stop.load(Ordering::Acquire) {
                        let published = latest.load(Ordering::Acquire);
                        let (code, r): (u16, Value) = s.post("/v2/models/mnist/infer", body.as_bytes());
                        let v: u64 = r["model_version"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0);
                        let after = latest.load(Ordering::Acquire);
                        if code == 200 && v >= 1 && v <= after && v + 1 >= published {
                            ok += 1;
                            max_seen = max_seen.max(v);
                        } else {
                            bad.push((code, v, published, r.to_string()));
                        }
                    }
                    (ok, bad, max_seen)
                })
            })
            .collect();
        for _ in 0..20 {
            // Announced before it is published: the watcher may swap it in before `publish`
            // returns, and a client must not take it for a version from the future.
            let next = latest.load(Ordering::Acquire) + 1;
            latest.store(next, Ordering::Release);
            let v = publish(&repo, "mnist");
            assert_eq!(v, next, "versions are numbered in order");
            s.wait_until(
                |s| s.manager.resolve("mnist", &lathe_runtime::Selector::Default).is_ok_and(|l| l.version == v),
                "the swap",
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        stop.store(true, Ordering::Release);
        let mut ok = 0;
        let mut bad = Vec::new();
        let mut seen = 0;
        for c in clients {
            let (o, b, m) = c.join().unwrap();
            ok += o;
            bad.extend(b);
            seen = seen.max(m);
        }
        (ok, bad, seen)
    });
    assert!(bad.is_empty(), "{} bad responses, first: {:?}", bad.len(), bad.first());
    assert!(ok > 100, "only {ok} requests completed");
    assert_eq!(seen, 21, "the clients reached the last version");
}
