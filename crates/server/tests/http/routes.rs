//! Every route answers with the protocol's shape.

use serde_json::{json, Value};

use crate::common::*;

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[test]
fn open_inference_protocol_routes() {
    let s = TestServer::with_mnist();
    let (code, meta) = s.get("/v2");
    assert_eq!(code, 200);
    assert_eq!(meta["name"], "lathe");
    assert_eq!(
        meta["extensions"],
        json!([
            "binary_tensor_data",
            "classification",
            "model_repository",
            "model_configuration",
            "statistics",
            "parameters"
        ])
    );
    assert_eq!(s.get("/v2/health/live"), (200, json!({"live": true})));
    assert_eq!(s.get("/v2/health/ready"), (200, json!({"ready": true})));
    for alias in ["/healthz", "/livez", "/ping"] {
        assert_eq!(s.get(alias).0, 200, "{alias}");
    }
    assert_eq!(s.get("/readyz"), (200, json!({"ready": true})));
    assert_eq!(s.get("/"), (200, json!({"status": "alive"})));

    let (code, m) = s.get("/v2/models/mnist");
    assert_eq!(code, 200);
    assert_eq!(m["versions"], json!(["1"]));
    assert_eq!(m["platform"], "lathe_native");
    assert_eq!(m["inputs"], json!([{"name": "input", "datatype": "FP32", "shape": [-1, 28, 28]}]));
    assert_eq!(m["outputs"], json!([{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]));
    assert_eq!(s.get("/v2/models/mnist/versions/1").1, m);
    assert_eq!(s.get("/v2/models/mnist/ready"), (200, json!({"name": "mnist", "ready": true})));
    assert_eq!(s.get("/v2/models/mnist/versions/1/ready").0, 200);

    // Infer: nested and flat data, UINT8 pixels converted, id echoed, parameters accepted.
    let (images, labels) = test_images(3);
    let body = json!({
        "id": "req-1",
        "parameters": {"priority": 1, "tag": "t"},
        "inputs": [{"name": "input", "shape": [3, 28, 28], "datatype": "UINT8", "data": images}],
    });
    let (code, r) = s.post("/v2/models/mnist/infer", body.to_string().as_bytes());
    assert_eq!(code, 200, "{r}");
    assert_eq!(
        (r["model_name"].as_str(), r["model_version"].as_str(), r["id"].as_str()),
        (Some("mnist"), Some("1"), Some("req-1"))
    );
    let out = &r["outputs"][0];
    assert_eq!((out["name"].as_str(), out["datatype"].as_str()), (Some("probabilities"), Some("FP32")));
    assert_eq!(out["shape"], json!([3, 10]));
    let probs = floats(&out["data"]);
    for (row, label) in probs.chunks(10).zip(&labels) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        assert_eq!(argmax(row), *label as usize, "the model classifies test digits correctly");
    }
    let flat: Vec<f32> = images[0].iter().map(|&p| p as f32).collect();
    let body = json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": flat}],
                      "outputs": [{"name": "probabilities"}]});
    let (code, r1) = s.post("/v2/models/mnist/versions/1/infer", body.to_string().as_bytes());
    assert_eq!(code, 200, "{r1}");
    let p1 = floats(&r1["outputs"][0]["data"]);
    for (a, b) in p1.iter().zip(&probs[..10]) {
        assert!((a - b).abs() < 1e-6, "same image, same answer over FP32 and UINT8");
    }
    // Classification extension.
    let body = json!({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": images[0]}],
                      "outputs": [{"name": "probabilities", "parameters": {"classification": 2}}]});
    let (_, c) = s.post("/v2/models/mnist/infer", body.to_string().as_bytes());
    assert_eq!(c["outputs"][0]["datatype"], "BYTES");
    assert_eq!(c["outputs"][0]["shape"], json!([1, 2]));
    let top = c["outputs"][0]["data"][0].as_str().unwrap();
    assert!(top.ends_with(&format!(":{}:{}", labels[0], labels[0])), "{top}");

    // Configuration, statistics, repository.
    let (_, cfg) = s.get("/v2/models/mnist/config");
    assert_eq!(cfg["max_batch_size"], 64);
    assert_eq!(cfg["input"], json!([{"name": "input", "data_type": "TYPE_FP32", "dims": [28, 28]}]));
    assert_eq!(s.get("/v2/models/mnist/versions/1/config").1, cfg);
    let (_, st) = s.get("/v2/models/mnist/stats");
    let ms = &st["model_stats"][0];
    assert_eq!((ms["name"].as_str(), ms["version"].as_str()), (Some("mnist"), Some("1")));
    assert_eq!(ms["inference_count"], 5, "3 + 1 + 1 rows");
    assert_eq!(ms["inference_stats"]["success"]["count"], 3);
    assert_eq!(s.get("/v2/models/stats").1["model_stats"].as_array().unwrap().len(), 1);
    assert_eq!(s.get("/v2/models/mnist/versions/1/stats").1, st);
    let (_, idx) = s.post("/v2/repository/index", b"{}");
    assert_eq!(idx, json!([{"name": "mnist", "version": "1", "state": "READY", "reason": ""}]));
    assert_eq!(s.post("/v2/repository/models/mnist/unload", b""), (200, json!({"name": "mnist", "unload": true})));
    s.wait_until(|s| s.get("/v2/models/mnist/ready").0 == 503, "mnist to unload");
    assert_eq!(s.get("/v2/health/ready").0, 200, "an explicitly unloaded model does not hold readiness back");
    // In-flight requests drain before the version is UNAVAILABLE (UNLOADING meanwhile).
    s.wait_until(|s| s.post("/v2/repository/index", b"").1[0]["state"] != "UNLOADING", "mnist to drain");
    let (_, idx) = s.post("/v2/repository/index", b"");
    assert_eq!(idx[0]["state"], "UNAVAILABLE", "{idx}");
    assert_eq!(s.post("/v2/repository/index", br#"{"ready": true}"#).1, json!([]));
    assert_eq!(s.post("/v2/repository/models/mnist/load", b"{}"), (200, json!({"name": "mnist", "load": true})));
    assert_eq!(s.get("/v2/models/mnist/ready").0, 200);
    assert_eq!(s.post("/v2/repository/models/none/load", b"").0, 404);
}

#[test]
fn tf_serving_and_kserve_v1_routes() {
    let s = TestServer::with_mnist();
    let (code, st) = s.get("/v1/models/mnist");
    assert_eq!(code, 200);
    assert_eq!(
        st,
        json!({"model_version_status": [{
            "version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}
        }],
               "name": "mnist", "ready": true})
    );
    assert_eq!(s.get("/v1/models/mnist/versions/1").0, 200);
    let (code, list) = s.get("/v1/models");
    assert_eq!((code, &list["models"]), (200, &json!(["mnist"])));
    assert_eq!(list["data"][0]["id"], "mnist", "OpenAI clients read the same list");
    let (_, meta) = s.get("/v1/models/mnist/metadata");
    assert_eq!(meta["model_spec"], json!({"name": "mnist", "signature_name": "", "version": "1"}));
    let sig = &meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"]["input"]["dtype"], "DT_FLOAT");
    assert_eq!(sig["inputs"]["input"]["tensor_shape"]["dim"][0], json!({"size": "-1", "name": ""}));
    assert_eq!(s.get("/v1/models/mnist/versions/1/metadata").1, meta);

    let (images, labels) = test_images(2);
    let (code, p) = s.post("/v1/models/mnist:predict", json!({"instances": images}).to_string().as_bytes());
    assert_eq!(code, 200, "{p}");
    let preds = p["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert_eq!(argmax(&floats(&preds[1])), labels[1] as usize);
    let body = json!({"signature_name": "serving_default", "inputs": {"input": images}});
    let (code, o) = s.post("/v1/models/mnist/versions/1:predict", body.to_string().as_bytes());
    assert_eq!(code, 200);
    assert_eq!(o["outputs"].as_array().unwrap().len(), 2, "columnar answers with outputs");
    assert_eq!(o["outputs"][0], preds[0]);
    let (code, c) =
        s.post("/v1/models/mnist:classify", json!({"examples": [{"input": images[0]}]}).to_string().as_bytes());
    assert_eq!(code, 200, "{c}");
    let classes = c["results"][0].as_array().unwrap();
    assert_eq!(classes.len(), 10);
    let best = classes.iter().max_by(|a, b| a[1].as_f64().unwrap().total_cmp(&b[1].as_f64().unwrap())).unwrap();
    assert_eq!(best[0], labels[0].to_string());
    assert_eq!(s.post("/v1/models/mnist:regress", b"{}").0, 400);
    let (code, e) = s.post("/v1/models/mnist:explain", json!({"instances": images}).to_string().as_bytes());
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["explanations"].as_array().unwrap().len(), images.len());

    // Labels: set while serving; version and label routes.
    s.repo().set_label("mnist", "stable", 1).unwrap();
    s.wait_until(|s| s.get("/v1/models/mnist/labels/stable").0 == 200, "the label to apply");
    let (code, _) = s.post(
        "/v1/models/mnist/labels/stable:predict",
        json!({"instances": [images[0].clone()]}).to_string().as_bytes(),
    );
    assert_eq!(code, 200);
    let metrics = agent().get(format!("{}/metrics", s.base)).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(
        metrics.contains(
            "lathe_inference_requests_total{model=\"mnist\",version=\"1\",\
             protocol=\"tfserving\",api=\"predict\",code=\"200\"} 3"
        ),
        "{metrics}"
    );
    for name in [
        "lathe_inference_queue_duration_seconds_bucket",
        "lathe_inference_compute_duration_seconds_count",
        "lathe_inference_batch_size_sum",
        "lathe_inference_queue_size{",
        "lathe_model_load_duration_seconds{",
        "lathe_model_state{model=\"mnist\",version=\"1\",state=\"READY\"} 1",
        "lathe_inference_request_duration_seconds_bucket",
        "lathe_inference_executions_total",
        "lathe_inference_rows_total",
    ] {
        assert!(metrics.contains(name), "missing {name}");
    }
}

#[test]
fn metrics_are_served_in_the_prometheus_text_format() {
    let s = TestServer::with_mnist();
    s.wait_until(|s| s.get("/v2/models/mnist/ready").0 == 200, "mnist to load");
    let mut r = agent().get(format!("{}/metrics", s.base)).call().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let content_type = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let text = r.body_mut().read_to_string().unwrap();
    assert!(text.contains("# TYPE lathe_model_state gauge\n"), "{text}");
    assert!(text.contains("lathe_model_state{model=\"mnist\",version=\"1\",state=\"READY\"} 1\n"), "{text}");
}
