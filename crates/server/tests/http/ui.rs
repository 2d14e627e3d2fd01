//! The dashboard's files, its settings route and the manifest route its pages read.

use std::sync::Arc;

use lathe_server::auth::{hash_key, KeyEntry, KeyRing, KeysFile, Scope};

use crate::common::*;

fn get_raw(base: &str, path: &str, key: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into();
    let mut req = agent.get(format!("{base}{path}"));
    if let Some(k) = key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    let mut r = req.call().unwrap();
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    (r.status().as_u16(), headers, r.body_mut().with_config().limit(1 << 24).read_to_string().unwrap())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

#[test]
fn the_pages_their_scripts_and_the_chart_library_are_served() {
    let s = TestServer::with_mnist();
    let (code, headers, _) = get_raw(&s.base, "/ui", None);
    assert_eq!((code, header(&headers, "location")), (308, "ui/"));
    let (code, headers, page) = get_raw(&s.base, "/ui/", None);
    assert_eq!(code, 200);
    assert_eq!(header(&headers, "content-type"), "text/html; charset=utf-8");
    assert!(header(&headers, "content-security-policy").contains("script-src 'self';"), "{headers:?}");
    assert!(page.contains(r#"<script type="module" src="app.js">"#), "{page}");
    // Every module the shell imports, and the vendored library with its licence.
    let (_, _, app) = get_raw(&s.base, "/ui/app.js", None);
    let imports: Vec<&str> = app.lines().filter_map(|l| l.split("from \"./").nth(1)?.split('"').next()).collect();
    assert!(imports.len() >= 5, "{imports:?}");
    for file in imports.iter().copied().chain(["vendor/chart.umd.min.js", "style.css", "favicon.svg"]) {
        let (code, headers, body) = get_raw(&s.base, &format!("/ui/{file}"), None);
        assert_eq!(code, 200, "{file}");
        assert!(!body.is_empty() && !header(&headers, "content-type").is_empty(), "{file}");
    }
    let (_, _, licence) = get_raw(&s.base, "/ui/vendor/chart.js-LICENSE.md", None);
    assert!(licence.contains("The MIT License"), "{licence}");
    let (code, _, body) = get_raw(&s.base, "/ui/missing.js", None);
    assert_eq!(code, 404);
    assert!(body.contains("no dashboard file \\\"missing.js\\\""), "{body}");
}

#[test]
fn the_settings_say_whether_a_key_is_needed_and_what_the_sent_key_may_do() {
    let dir = tempfile::tempdir().unwrap();
    publish(&lathe_registry::Repository::new(dir.path()), "mnist");
    let keys_path = dir.path().join("keys.json");
    let entry = |name: &str, key: &str, scope| KeyEntry {
        name: name.into(),
        sha256: hash_key(key),
        scopes: vec![scope],
        expires_at: None,
    };
    let keys =
        vec![entry("ops", "admin-key-0123456789", Scope::Admin), entry("dash", "read-key-0123456789", Scope::Read)];
    std::fs::write(&keys_path, serde_json::to_vec(&KeysFile { keys }).unwrap()).unwrap();
    let ring = Arc::new(KeyRing::load(Some(keys_path), None).unwrap());
    let s = TestServer::start(dir, Setup { keys: ring, ..Setup::default() });
    let settings =
        |key| serde_json::from_str::<serde_json::Value>(&get_raw(&s.base, "/ui/config.json", key).2).unwrap();
    let none = settings(None);
    assert_eq!((none["auth_required"].as_bool(), &none["key"]), (Some(true), &serde_json::Value::Null));
    assert_eq!(settings(Some("read-key-0123456789"))["key"], serde_json::json!({"name": "dash", "scopes": ["read"]}));
    assert_eq!(settings(Some("admin-key-0123456789"))["key"]["scopes"], serde_json::json!(["admin"]));
    assert_eq!(settings(Some("wrong")), serde_json::json!({"auth_required": true, "key": "invalid"}));
    // The pages themselves need no key.
    assert_eq!(get_raw(&s.base, "/ui/", None).0, 200);
    assert_eq!(get_raw(&s.base, "/v1/models/mnist/manifest", None).0, 401);
    assert_eq!(get_raw(&s.base, "/v1/models/mnist/manifest", Some("read-key-0123456789")).0, 200);
}

#[test]
fn the_manifest_route_gives_history_confusion_and_lineage() {
    let s = TestServer::with_mnist();
    let (code, m) = s.get("/v1/models/mnist/versions/1/manifest");
    assert_eq!(code, 200, "{m}");
    assert_eq!((m["version"].as_u64(), m["kind"].as_str()), (Some(1), Some("native-sequential")));
    assert!(!m["history"].as_array().unwrap().is_empty(), "{m}");
    let confusion = m["metrics"]["confusion"].as_array().unwrap();
    assert_eq!(confusion.len(), 10);
    assert!(m["data"]["fingerprint"].is_string() && m["files"]["weights.safetensors"]["sha256"].is_string());
    assert_eq!(s.get("/v1/models/mnist/manifest").1["version"], 1);
    let (code, body) = s.get("/v1/models/mnist/labels/stable/manifest");
    assert_eq!(code, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no label \"stable\""), "{body}");
    assert_eq!(s.get("/v1/models/mnist/versions/9/manifest").0, 404);
    assert_eq!(s.get("/v1/models/nope/manifest").0, 404);
    let (_, listing) = s.get("/v1/admin/models");
    assert_eq!(listing["models"][0]["versions"][0]["kind"], "native-sequential");
}
