//! The security matrix: every endpoint with no key, a wrong key, a key of the wrong scope,
//! an expired key, a rotated-out key and the right key.

use std::sync::Arc;

use lathe_server::auth::{hash_key, KeyEntry, KeyRing, KeysFile, Scope};
use lathe_server::routes::{client_endpoints, instantiate, path_matches, Access};
use serde_json::json;

use crate::common::*;

const ADMIN: &str = "admin-key-0123456789abcdef";
const INFER: &str = "infer-key-0123456789abcdef";
const READ: &str = "read-key-0123456789abcdef";
const EXPIRED: &str = "expired-key-0123456789abcdef";

fn write_keys(path: &std::path::Path, with_infer: bool) {
    let entry = |name: &str, key: &str, scopes: Vec<Scope>, expires_at: Option<u64>| KeyEntry {
        name: name.into(),
        sha256: hash_key(key),
        scopes,
        expires_at,
    };
    let mut keys = vec![
        entry("ops", ADMIN, vec![Scope::Admin], None),
        entry("dash", READ, vec![Scope::Read], None),
        entry("old", EXPIRED, vec![Scope::Admin], Some(1_000)),
    ];
    if with_infer {
        keys.push(entry("app", INFER, vec![Scope::Infer], None));
    }
    std::fs::write(path, serde_json::to_vec(&KeysFile { keys }).unwrap()).unwrap();
}

/// The endpoints this test checked while its list was written by hand; the list derived from
/// the route table must still hold each of them, with the same scope.
const EARLIER_LIST: &[(&str, &str, Scope)] = &[
    ("POST", "/v2/models/mnist/infer", Scope::Infer),
    ("POST", "/v2/models/mnist/versions/1/infer", Scope::Infer),
    ("POST", "/v1/models/mnist:predict", Scope::Infer),
    ("POST", "/v1/embeddings", Scope::Infer),
    ("POST", "/v1/models/mnist/versions/1:classify", Scope::Infer),
    ("GET", "/v2", Scope::Read),
    ("GET", "/v2/models/mnist", Scope::Read),
    ("GET", "/v2/models/mnist/ready", Scope::Read),
    ("GET", "/v2/models/mnist/config", Scope::Read),
    ("GET", "/v2/models/stats", Scope::Read),
    ("GET", "/v1/models", Scope::Read),
    ("GET", "/v1/models/mnist", Scope::Read),
    ("GET", "/v1/models/mnist/metadata", Scope::Read),
    ("GET", "/metrics", Scope::Read),
    ("POST", "/v2/repository/index", Scope::Admin),
    ("POST", "/v2/repository/models/mnist/load", Scope::Admin),
    ("GET", "/v1/datasets", Scope::Admin),
    ("PUT", "/v1/datasets/d/files/data.csv", Scope::Admin),
    ("DELETE", "/v1/datasets/d", Scope::Admin),
    ("POST", "/v1/jobs", Scope::Admin),
    ("GET", "/v1/jobs", Scope::Admin),
    ("GET", "/v1/jobs/j/events", Scope::Admin),
    ("POST", "/v1/jobs/j/cancel", Scope::Admin),
    ("GET", "/v1/admin/audit", Scope::Admin),
    ("GET", "/v1/admin/models", Scope::Admin),
    ("GET", "/v1/evaluations/compare?model=mnist&a=1&b=1&dataset=d", Scope::Admin),
    ("GET", "/v1/models/mnist/traffic", Scope::Read),
    ("PUT", "/v1/models/mnist/traffic", Scope::Admin),
    ("DELETE", "/v1/models/mnist/traffic", Scope::Admin),
    ("PUT", "/v1/models/mnist/labels/stable", Scope::Admin),
    ("DELETE", "/v1/models/mnist/labels/stable", Scope::Admin),
    ("POST", "/v1/models/mnist/rollback", Scope::Admin),
    ("DELETE", "/v1/models/mnist/versions/9", Scope::Admin),
    ("GET", "/v2/models/mnist/versions/1/stats", Scope::Read),
    ("GET", "/v2/models/mnist/versions/1/ready", Scope::Read),
    ("POST", "/v2/repository/models/mnist/unload", Scope::Admin),
    ("GET", "/v1/evaluations", Scope::Admin),
    ("POST", "/v1/evaluations", Scope::Admin),
];

/// A value for a path parameter: version 9 (which does not exist) for deletions, so that the
/// matrix deletes nothing.
fn example_value(method: &str, param: &str) -> String {
    match param {
        "m" => "mnist",
        "v" if method == "DELETE" => "9",
        "v" => "1",
        "l" => "stable",
        "name" => "d",
        "file" => "data.csv",
        "id" => "j",
        "verb" => "predict",
        "target" => "mnist/versions/1",
        other => panic!("no example value for the path parameter {other:?}"),
    }
    .to_string()
}

/// A request body that the endpoint `pattern` accepts for the `mnist` model.
fn example_body(pattern: &str, v2: &str, tfs: &str) -> String {
    match pattern {
        p if p.starts_with("/v2/models/") && (p.ends_with("/infer") || p.ends_with("/explain")) => v2.to_string(),
        p if p.ends_with(":{verb}") || p.ends_with("/debug") => tfs.to_string(),
        "/v1/embeddings" => r#"{"model": "mnist", "input": "x"}"#.to_string(),
        "/v1/datasets/{name}/files/{file}" => "a,label\n1,x\n".to_string(),
        "/v1/jobs" | "/v1/evaluations" => "{}".to_string(),
        "/v1/models/{m}/traffic" => r#"{"routes": [{"target": "1", "weight": 1}]}"#.to_string(),
        "/v1/models/{m}/labels/{l}" => r#"{"version": 1}"#.to_string(),
        "/v1/models/{m}/rollback" => r#"{"to": "1"}"#.to_string(),
        _ => String::new(),
    }
}

#[test]
fn every_endpoint_checks_keys_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    publish(&lathe_registry::Repository::new(dir.path()), "mnist");
    let keys_path = dir.path().join("keys.json");
    write_keys(&keys_path, true);
    let ring = Arc::new(KeyRing::load(Some(keys_path.clone()), None).unwrap());
    let s = TestServer::start(dir, Setup { keys: ring.clone(), ..Setup::default() });
    let (img, _) = test_images(1);
    let v2 =
        json!({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": img[0]}]}).to_string();
    let tfs = json!({"instances": [img[0].clone()]}).to_string();
    // Every endpoint that needs a key, from the route table, with concrete paths and bodies.
    let endpoints: Vec<(&str, String, String, Scope)> = client_endpoints()
        .filter_map(|e| match e.access {
            Access::Needs(scope) => {
                let mut path = instantiate(e.path, |name| example_value(e.method.as_str(), name));
                if path == "/v1/evaluations/compare" {
                    path += "?model=mnist&a=1&b=1&dataset=d";
                }
                Some((e.method.as_str(), path, example_body(e.path, &v2, &tfs), scope))
            }
            _ => None,
        })
        .collect();
    for (method, path, scope) in EARLIER_LIST {
        assert!(
            endpoints.iter().any(|(m, p, _, s)| m == method && p == path && s == scope)
                || client_endpoints().any(|e| e.method.as_str() == *method
                    && path_matches(e.path, path.split('?').next().unwrap())
                    && e.access == Access::Needs(*scope)),
            "{method} {path} is no longer in the route table with the {scope:?} scope"
        );
    }
    let call = |method: &str, path: &str, body: &str, key: Option<&str>| -> (u16, Vec<(String, String)>, String) {
        let mut headers = vec![("content-type", "application/json".to_string())];
        if let Some(k) = key {
            headers.push(("authorization", format!("Bearer {k}")));
        }
        if method == "GET" || method == "DELETE" {
            let url = format!("{}{path}", s.base);
            let mut req = if method == "GET" { agent().get(url) } else { agent().delete(url) };
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let mut r = req.call().unwrap();
            let hs = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
            (r.status().as_u16(), hs, r.body_mut().read_to_string().unwrap())
        } else if method == "PUT" {
            let mut req = agent().put(format!("{}{path}", s.base));
            for (k, v) in &headers {
                req = req.header(*k, v);
            }
            let mut r = req.send(body.as_bytes()).unwrap();
            let hs = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
            (r.status().as_u16(), hs, r.body_mut().read_to_string().unwrap())
        } else {
            let (code, hs, b) = s.post_raw(path, &headers, body.as_bytes());
            (code, hs, String::from_utf8_lossy(&b).into_owned())
        }
    };
    // The label the label forms name.
    assert_eq!(call("PUT", "/v1/models/mnist/labels/stable", r#"{"version": 1}"#, Some(ADMIN)).0, 200);
    for (method, path, body, needed) in &endpoints {
        let (code, hs, text) = call(method, path, body, None);
        assert_eq!(code, 401, "{method} {path} without a key: {text}");
        assert!(hs.iter().any(|(k, v)| k.eq_ignore_ascii_case("www-authenticate") && v == "Bearer"));
        assert!(text.contains("missing API key"), "{text}");
        let (code, _, text) = call(method, path, body, Some("not-a-key-0123456789abcdef"));
        assert_eq!(code, 401, "{method} {path} with a wrong key: {text}");
        assert!(text.contains("invalid, revoked or expired API key"), "{text}");
        let (code, _, text) = call(method, path, body, Some(EXPIRED));
        assert_eq!(code, 401, "{method} {path} with an expired key: {text}");
        let weaker = match needed {
            Scope::Admin => Some(INFER),
            Scope::Infer => Some(READ),
            Scope::Read => None,
        };
        if let Some(k) = weaker {
            let (code, _, text) = call(method, path, body, Some(k));
            assert_eq!(code, 403, "{method} {path} with a weaker key: {text}");
            assert!(text.contains("lacks the"), "{text}");
        }
        let right = match needed {
            Scope::Admin => ADMIN,
            Scope::Infer => INFER,
            Scope::Read => READ,
        };
        let lifecycle = ["/v1/datasets", "/v1/jobs", "/v1/admin/audit", "/v1/evaluations", "/v1/admin/models/"];
        let generation = ["/completions", "/tokenize", "/detokenize", "/generate", "/generate_stream"];
        // Accepted keys reach the handler: 501 where the lifecycle API is off, 404 for the
        // version that does not exist, 200 otherwise.
        let ok = if lifecycle.iter().any(|p| path.starts_with(p)) {
            501
        } else if path.ends_with("/versions/9") {
            404
        } else if path == "/v1/embeddings" || generation.iter().any(|g| path.ends_with(g)) {
            400 // mnist is neither an embedding nor a language model (and the body is empty)
        } else {
            200
        };
        let (code, _, text) = call(method, path, body, Some(right));
        assert_eq!(code, ok, "{method} {path} with the right key: {text}");
        if *needed != Scope::Admin {
            assert_eq!(call(method, path, body, Some(ADMIN)).0, ok, "admin may do everything");
        }
        if *method == "DELETE" && path.contains("/labels/") {
            assert_eq!(call("PUT", path, r#"{"version": 1}"#, Some(ADMIN)).0, 200);
        }
        if path.ends_with("/unload") {
            assert_eq!(call("POST", "/v2/repository/models/mnist/load", "", Some(ADMIN)).0, 200);
        }
    }
    // Health probes need no key.
    assert_eq!(s.get("/v2/health/ready").0, 200);
    assert_eq!(s.get("/healthz").0, 200);

    // Rotation: removing a key from the file revokes it without a restart.
    std::thread::sleep(std::time::Duration::from_millis(20));
    write_keys(&keys_path, false);
    ring.reload_if_changed();
    assert_eq!(call("POST", "/v1/models/mnist:predict", &tfs, Some(INFER)).0, 401);
    assert_eq!(call("POST", "/v1/models/mnist:predict", &tfs, Some(ADMIN)).0, 200);
    // A broken keys file keeps the previous keys.
    std::fs::write(&keys_path, b"{broken").unwrap();
    ring.reload_if_changed();
    assert_eq!(call("GET", "/v2", "", Some(READ)).0, 200);
}
