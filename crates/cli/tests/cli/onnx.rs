//! ONNX graphs made elsewhere: imported with `lathe import onnx`, served over V2 JSON, V2 binary
//! and TF Serving, each output matching onnxruntime's (fixtures of scripts/onnx_fixtures.py).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

const SERVED: [&str; 9] =
    ["mlp", "cnn", "multi_io", "int_bool", "dtypes", "fixed", "sklearn_logreg", "sklearn_forest", "external"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../onnx/tests/fixtures").join(name)
}

fn reference(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.json"))).unwrap()).unwrap()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

fn post(server: &Server, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut req = agent().post(format!("{}{path}", server.base));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let mut r = req.send(&body[..]).unwrap();
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_vec().unwrap())
}

fn post_json(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let (code, bytes) = post(server, path, &[], body.to_string().into_bytes());
    (code, serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())))
}

fn get_json(server: &Server, path: &str) -> Value {
    let mut r = agent().get(format!("{}{path}", server.base)).call().unwrap();
    assert_eq!(r.status(), 200, "{path}");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

/// Flat values of a JSON tensor as f64 (booleans as 0/1; FP16 reference data is raw bits).
fn flat(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        match x {
            Value::Array(items) => stack.extend(items.iter().rev()),
            Value::Bool(b) => out.push(*b as u8 as f64),
            other => out.push(other.as_f64().unwrap()),
        }
    }
    out
}

fn half_bits_to_f64(bits: &[f64]) -> Vec<f64> {
    bits.iter().map(|&b| half::f16::from_bits(b as u16).to_f64()).collect()
}

/// |a − b| ≤ rtol·|b| + atol for every element.
fn assert_close(got: &[f64], want: &[f64], doc: &Value, what: &str) {
    let (rtol, atol) = (doc["rtol"].as_f64().unwrap(), doc["atol"].as_f64().unwrap());
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= rtol * b.abs() + atol, "{what}: element {i}: {a} vs onnxruntime {b}");
    }
}

/// The reference inputs as V2 JSON tensors: FP16 goes as FP32 values (JSON has no FP16).
fn v2_json_inputs(case: &Value) -> Value {
    let inputs: Vec<Value> = case["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let mut t = t.clone();
            if t["datatype"] == "FP16" {
                t["data"] = json!(half_bits_to_f64(&flat(&t["data"])));
                t["datatype"] = json!("FP32");
            }
            t
        })
        .collect();
    json!({ "inputs": inputs })
}

/// The reference inputs as a V2 binary body: a JSON header then each tensor's little-endian
/// bytes.
fn v2_binary_body(case: &Value) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let mut header_inputs = Vec::new();
    for t in case["inputs"].as_array().unwrap() {
        let values = flat(&t["data"]);
        let start = raw.len();
        for v in values {
            match t["datatype"].as_str().unwrap() {
                "FP32" => raw.extend((v as f32).to_le_bytes()),
                "FP64" => raw.extend(v.to_le_bytes()),
                "FP16" => raw.extend((v as u16).to_le_bytes()),
                "INT8" => raw.extend((v as i8).to_le_bytes()),
                "UINT8" | "BOOL" => raw.push(v as u8),
                "INT32" => raw.extend((v as i32).to_le_bytes()),
                "INT64" => raw.extend((v as i64).to_le_bytes()),
                other => panic!("no fixture sends {other}"),
            }
        }
        header_inputs.push(json!({
            "name": t["name"], "datatype": t["datatype"], "shape": t["shape"],
            "parameters": {"binary_data_size": raw.len() - start}
        }));
    }
    let header = json!({ "inputs": header_inputs }).to_string().into_bytes();
    let length = header.len();
    ([header, raw].concat(), length)
}

/// The reference inputs as TF Serving columnar `inputs` (nested lists by shape).
fn tf_serving_inputs(case: &Value) -> Value {
    let mut inputs = serde_json::Map::new();
    for t in case["inputs"].as_array().unwrap() {
        let shape: Vec<usize> = t["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let mut values: Vec<Value> = match t["datatype"].as_str().unwrap() {
            "FP16" => half_bits_to_f64(&flat(&t["data"])).into_iter().map(|x| json!(x)).collect(),
            _ => t["data"].as_array().unwrap().clone(),
        };
        for &d in shape[1..].iter().rev() {
            values = values.chunks(d).map(|c| Value::Array(c.to_vec())).collect();
        }
        inputs.insert(t["name"].as_str().unwrap().to_string(), Value::Array(values));
    }
    json!({ "inputs": inputs })
}

fn import_all(cwd: &Path) {
    for name in SERVED {
        let file = fixture(&format!("{name}.onnx"));
        let mut args = vec!["import", "onnx", file.to_str().unwrap(), "--name", name];
        if name.starts_with("sklearn") {
            args.extend(["--class-names", "north,east,west"]);
        }
        ok(&lathe(cwd, &args));
    }
    // Requests wait up to 0.1 s for others, so that concurrent ones share runs.
    let config = json!({"max_queue_delay_us": 100_000, "max_batch_size": 64});
    for name in ["int_bool", "fixed"] {
        std::fs::write(cwd.join("repo").join(name).join("config.json"), config.to_string()).unwrap();
    }
}

fn wait_ready(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for model in SERVED {
        while agent().get(format!("{}/v2/models/{model}/ready", server.base)).call().unwrap().status() != 200 {
            assert!(Instant::now() < deadline, "{model} never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Every case of every fixture, over the three encodings, against onnxruntime.
fn check_protocols(server: &Server) {
    for name in SERVED {
        let doc = reference(name);
        for (c, case) in doc["cases"].as_array().unwrap().iter().enumerate() {
            let wants = case["outputs"].as_array().unwrap();
            let (code, body) = post_json(server, &format!("/v2/models/{name}/infer"), &v2_json_inputs(case));
            assert_eq!(code, 200, "{name} case {c} V2 JSON: {body}");
            let (bytes, header_length) = v2_binary_body(case);
            let headers = [("Inference-Header-Content-Length", header_length.to_string())];
            let (code, binary) = post(server, &format!("/v2/models/{name}/infer"), &headers, bytes);
            assert_eq!(code, 200, "{name} case {c} V2 binary: {}", String::from_utf8_lossy(&binary));
            let binary: Value = serde_json::from_slice(&binary).unwrap();
            let (code, tfs) = post_json(server, &format!("/v1/models/{name}:predict"), &tf_serving_inputs(case));
            assert_eq!(code, 200, "{name} case {c} TF Serving: {tfs}");
            for (i, want) in wants.iter().enumerate() {
                let expected = flat(&want["data"]);
                let what = |p: &str| format!("{name} case {c} {p} output {}", want["name"]);
                for (protocol, v2) in [("V2 JSON", &body), ("V2 binary", &binary)] {
                    let got = &v2["outputs"][i];
                    assert_eq!(
                        (&got["name"], &got["datatype"], &got["shape"]),
                        (&want["name"], &want["datatype"], &want["shape"])
                    );
                    assert_close(&flat(&got["data"]), &expected, &doc, &what(protocol));
                }
                let tf_out =
                    if wants.len() == 1 { &tfs["outputs"] } else { &tfs["outputs"][want["name"].as_str().unwrap()] };
                assert_close(&flat(tf_out), &expected, &doc, &what("TF Serving"));
            }
        }
    }
}

#[test]
fn onnx_graphs_serve_over_every_protocol_and_match_onnxruntime() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    import_all(cwd);
    let copied = cwd.join("repo/external/1/external.weights");
    assert_eq!(std::fs::read(copied).unwrap(), std::fs::read(fixture("external.weights")).unwrap());
    let shown = ok(&lathe(cwd, &["models", "show", "int_bool"]));
    assert!(shown.contains("batching    requests share runs"), "{shown}");
    let server = start_server_with(cwd, &[]);
    wait_ready(&server);
    check_protocols(&server);

    let meta = get_json(&server, "/v2/models/int_bool");
    assert_eq!(meta["platform"], "tract_onnx");
    assert_eq!((&meta["parameters"]["preprocessing"], &meta["parameters"]["batching"]), (&json!("none"), &json!(true)));
    assert_eq!(meta["parameters"]["onnx_producer"], "lathe-fixtures");
    assert_eq!(meta["inputs"][0], json!({"name": "ids", "datatype": "INT64", "shape": [-1, -1]}));
    let tfs_meta = get_json(&server, "/v1/models/dtypes/metadata");
    let sig = &tfs_meta["metadata"]["signature_def"]["signature_def"]["serving_default"];
    assert_eq!(sig["inputs"]["f16"]["dtype"], "DT_HALF", "{sig}");
    assert_eq!(tfs_meta["metadata"]["preprocessing"]["onnx_opset"], 17, "{tfs_meta}");
    check_output_selection(&server);
    check_classification(&server);
    check_batching(&server);
}

/// V2 `outputs` selects among a multi-output graph's outputs.
fn check_output_selection(server: &Server) {
    let doc = reference("multi_io");
    let case = &doc["cases"][1];
    let mut request = v2_json_inputs(case);
    request["outputs"] = json!([{"name": "sumsq"}]);
    let (code, body) = post_json(server, "/v2/models/multi_io/infer", &request);
    assert_eq!(code, 200, "{body}");
    let outputs = body["outputs"].as_array().unwrap();
    assert_eq!((outputs.len(), &outputs[0]["name"]), (1, &json!("sumsq")), "{body}");
    assert_close(&flat(&outputs[0]["data"]), &flat(&case["outputs"][1]["data"]), &doc, "selected sumsq");
}

/// Class names label TF Serving's `:classify` and the V2 classification extension; the scores
/// are the `probabilities` output, not the `label` one before it.
fn check_classification(server: &Server) {
    let doc = reference("sklearn_logreg");
    let case = &doc["cases"][1];
    let rows: Vec<Value> = case["inputs"][0]["data"].as_array().unwrap().chunks(4).map(|r| json!(r)).collect();
    let (code, body) =
        post_json(server, "/v1/models/sklearn_logreg:classify", &json!({ "examples": [{"X": rows[0]}] }));
    assert_eq!(code, 200, "{body}");
    let want = flat(&case["outputs"][1]["data"]);
    let pairs = body["results"][0].as_array().unwrap();
    assert_eq!(pairs[2][0], "west", "{body}");
    assert_close(&[pairs[2][1].as_f64().unwrap()], &want[2..3], &doc, "classify score");
    let top1 = json!([{"name": "probabilities", "parameters": {"classification": 1}}]);
    let request = json!({"inputs": [case["inputs"][0]], "outputs": top1});
    let (code, body) = post_json(server, "/v2/models/sklearn_logreg/infer", &request);
    assert_eq!(code, 200, "{body}");
    let best = body["outputs"][0]["data"][0].as_str().unwrap().to_string();
    let label = flat(&case["outputs"][0]["data"])[0] as usize;
    assert!(best.ends_with(&format!(":{label}:{}", ["north", "east", "west"][label])), "{best}");
}

/// Concurrent requests of two sequence lengths share runs only with their own length, and a
/// graph with a fixed first dimension runs one request at a time and refuses other row counts.
fn check_batching(server: &Server) {
    let doc = reference("int_bool");
    let cases: Vec<Value> = doc["cases"].as_array().unwrap().clone();
    let runs = |server: &Server| {
        let stats = get_json(server, "/v2/models/int_bool/stats");
        stats["model_stats"][0]["execution_count"].as_u64().unwrap()
    };
    let before = runs(server);
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let case = cases[i % cases.len()].clone();
            let base = server.base.clone();
            std::thread::spawn(move || {
                let mut r = agent()
                    .post(format!("{base}/v2/models/int_bool/infer"))
                    .send(v2_json_inputs(&case).to_string().as_bytes())
                    .unwrap();
                let body: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
                (case, body)
            })
        })
        .collect();
    for t in threads {
        let (case, body) = t.join().unwrap();
        for (i, want) in case["outputs"].as_array().unwrap().iter().enumerate() {
            assert_close(&flat(&body["outputs"][i]["data"]), &flat(&want["data"]), &doc, "concurrent int_bool");
        }
    }
    let executions = runs(server) - before;
    assert!(executions < 12, "12 concurrent requests shared runs: {executions} runs");

    let fixed = reference("fixed");
    let one = &fixed["cases"][0]["inputs"][0];
    let rows = [flat(&one["data"]), flat(&one["data"])].concat();
    let two = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": rows}]});
    let (code, body) = post_json(server, "/v2/models/fixed/infer", &two);
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("first dimension is fixed at 1"), "{body}");
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (base, body) = (server.base.clone(), json!({"inputs": [one]}));
            std::thread::spawn(move || {
                agent()
                    .post(format!("{base}/v2/models/fixed/infer"))
                    .send(body.to_string().as_bytes())
                    .unwrap()
                    .status()
            })
        })
        .collect();
    assert!(threads.into_iter().all(|t| t.join().unwrap() == 200));
    let stats = get_json(server, "/v2/models/fixed/stats");
    let s = &stats["model_stats"][0];
    assert_eq!(s["execution_count"], s["inference_count"], "one request per run: {s}");
}

fn put(server: &Server, path: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent().put(format!("{}{path}", server.base)).send(body).unwrap();
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap())
}

#[test]
fn onnx_uploads_over_the_lifecycle_api_are_checked_before_publishing() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let server = start_server_with(cwd, &["--max-model-upload-bytes", "5000"]);
    let mlp = std::fs::read(fixture("mlp.onnx")).unwrap();
    let (code, body) = put(&server, "/v1/admin/models/uploaded/onnx?class_names=a,b,c", &mlp);
    assert_eq!(code, 201, "{body}");
    assert_eq!((&body["version"], &body["kind"]), (&json!(1), &json!("onnx")), "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent().get(format!("{}/v2/models/uploaded/ready", server.base)).call().unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "the upload never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let doc = reference("mlp");
    let case = &doc["cases"][0];
    let (code, out) = post_json(&server, "/v2/models/uploaded/infer", &v2_json_inputs(case));
    assert_eq!(code, 200, "{out}");
    assert_close(&flat(&out["outputs"][0]["data"]), &flat(&case["outputs"][0]["data"]), &doc, "uploaded mlp");

    let bad: [(&str, Vec<u8>, u16, &str); 6] = [
        ("text", b"not a model at all".to_vec(), 400, "not an ONNX model"),
        (
            "custom",
            std::fs::read(fixture("custom_op.onnx")).unwrap(),
            400,
            "unsupported operator: com.example.Frobnicate",
        ),
        ("old", std::fs::read(fixture("old_opset.onnx")).unwrap(), 400, "operator set 7 of ai.onnx"),
        (
            "big",
            std::fs::read(fixture("sklearn_forest.onnx")).unwrap(),
            413,
            "larger than the upload limit of 5000 bytes",
        ),
        ("names", mlp.clone(), 400, "2 class names given, but no output has shape [-1, 2]"),
        ("fixed", std::fs::read(fixture("fixed.onnx")).unwrap(), 400, "batching was asked for"),
    ];
    for (name, bytes, want, needle) in bad {
        let query = match name {
            "names" => "?class_names=x,y",
            "fixed" => "?batching=on",
            _ => "",
        };
        let (code, body) = put(&server, &format!("/v1/admin/models/{name}/onnx{query}"), &bytes);
        assert_eq!(code, want, "{name}: {body}");
        assert!(body["error"].as_str().unwrap().contains(needle), "{name}: expected {needle:?} in {body}");
        assert!(version_dirs(cwd, name).is_empty(), "{name}: no version");
    }
    let (code, body) = put(&server, "/v1/admin/models/q/onnx?batch=on", &mlp);
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unknown query parameter \"batch\""), "{body}");
}

#[test]
fn a_bad_onnx_file_is_one_clear_error_and_no_version() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::write(cwd.join("notes.onnx"), "hello").unwrap();
    let cnn = std::fs::read(fixture("cnn.onnx")).unwrap();
    std::fs::write(cwd.join("cut.onnx"), &cnn[..cnn.len() / 2]).unwrap();
    let path = |f: &str| fixture(f).to_str().unwrap().to_string();
    let cases: [(String, Vec<&str>, &str); 7] = [
        ("notes.onnx".into(), vec![], "not an ONNX model"),
        ("cut.onnx".into(), vec![], "not an ONNX model"),
        (path("sklearn_scaled.onnx"), vec![], "unsupported operator: ai.onnx.ml.Scaler"),
        (path("old_opset.onnx"), vec![], "operator set 7 of ai.onnx is outside what tract 0.23 runs (9 to 18)"),
        (path("fixed.onnx"), vec!["--batching", "on"], "\"x\" has no symbolic first dimension (shape [1, 4])"),
        ("missing.onnx".into(), vec![], "missing.onnx"),
        (path("escape.onnx"), vec![], "external data file \"../outside.weights\" must be a relative path"),
    ];
    for (file, extra, needle) in cases {
        let mut args = vec!["import", "onnx", file.as_str(), "--name", "m"];
        args.extend(extra);
        let out = lathe(cwd, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line for {file}: {stderr}");
        assert!(
            lines[0].starts_with("error: ") && lines[0].contains(needle),
            "{file}: expected {needle:?} in {stderr}"
        );
        assert!(version_dirs(cwd, "m").is_empty(), "{file}: no version");
    }
}

/// The reference MNIST MLP trained with Keras and exported as the README says
/// (scripts/keras_mnist_onnx.py): imported, evaluated and served, it classifies the 10,000 test
/// images as Keras did, but for at most one.
#[test]
fn the_keras_mnist_mlp_classifies_the_test_set_as_keras_does() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let dir = fixture("keras");
    let keras: Value = serde_json::from_slice(&std::fs::read(dir.join("keras.json")).unwrap()).unwrap();
    let digits: Vec<u8> = keras["predictions"].as_str().unwrap().bytes().map(|b| b - b'0').collect();
    assert_eq!(digits.len(), 10_000);
    let file = dir.join("mnist-mlp.onnx");
    let classes = "0,1,2,3,4,5,6,7,8,9";
    ok(&lathe(cwd, &["import", "onnx", file.to_str().unwrap(), "--name", "keras", "--class-names", classes]));

    let data = mnist();
    let eval = last_json(&ok(&lathe(cwd, &["eval", "keras", "--data", data.to_str().unwrap(), "--json"])));
    let accuracy = eval["metrics"]["accuracy"].as_f64().unwrap();
    let reference = keras["test_accuracy"].as_f64().unwrap();
    assert!((accuracy - reference).abs() <= 1.0 / 10_000.0 + 1e-9, "lathe {accuracy} vs keras {reference}");

    let server = start_server_with(cwd, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent().get(format!("{}/v2/models/keras/ready", server.base)).call().unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let images = lathe_train::data::read_idx(&data.join("t10k-images-idx3-ubyte.gz"), 3).unwrap().data;
    let name = input_name_of(&server);
    let mut differ = 0;
    for (chunk, want) in images.chunks(1000 * 784).zip(digits.chunks(1000)) {
        let n = want.len();
        let raw: Vec<u8> = chunk.iter().flat_map(|&p| (p as f32).to_le_bytes()).collect();
        let header = json!({"inputs": [{"name": name, "datatype": "FP32", "shape": [n, 28, 28],
            "parameters": {"binary_data_size": raw.len()}}]})
        .to_string();
        let headers = [("Inference-Header-Content-Length", header.len().to_string())];
        let (code, body) = post(&server, "/v2/models/keras/infer", &headers, [header.into_bytes(), raw].concat());
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
        let body: Value = serde_json::from_slice(&body).unwrap();
        let scores = flat(&body["outputs"][0]["data"]);
        for (row, &d) in scores.chunks(10).zip(want) {
            let best = (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            differ += (best != d as usize) as usize;
        }
    }
    eprintln!("{differ} of 10,000 test images classified differently from Keras");
    assert!(differ <= 1, "{differ} of 10,000 test images classified differently from Keras");
    check_occlusion(&server, &name, &images[..784], digits[0]);
}

/// An imported graph has no backward pass: its explanations are occlusion maps shaped like the
/// input, for the class Keras predicts; it has no training statistics, and says so.
fn check_occlusion(server: &Server, input: &str, image: &[u8], predicted: u8) {
    let request = json!({"inputs": [{"name": input, "datatype": "FP32", "shape": [1, 28, 28], "data": image}]});
    let (code, body) = post_json(server, "/v2/models/keras/explain", &request);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["parameters"]["method"], "occlusion");
    assert_eq!(body["outputs"][0]["shape"], json!([1, 28, 28]));
    assert_eq!(body["outputs"][1]["data"], json!([predicted]));
    let mut gradients = request.clone();
    gradients["parameters"] = json!({"method": "saliency"});
    let (code, body) = post_json(server, "/v2/models/keras/explain", &gradients);
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("no backward pass; use occlusion"), "{body}");
    assert_eq!(get_json(server, "/v1/models/keras/monitoring")["statistics"], false);
}

/// The name of the Keras graph's input, from its metadata.
fn input_name_of(server: &Server) -> String {
    get_json(server, "/v2/models/keras")["inputs"][0]["name"].as_str().unwrap().to_string()
}
