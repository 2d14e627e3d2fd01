//! Tables as they come: regression (one and two targets), the task decided from the data, the
//! default networks of a spec-less `lathe train`, and regressors served over TF Serving's
//! `:regress`, `:predict` and Open Inference Protocol V2.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A seeded stream of standard normal numbers (Box–Muller over a 64-bit LCG).
struct Normal(u64);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// `rows` rows of four normal features and targets `y = w·x + noise`, per weight vector, with
/// noise of 0.1 × the signal's standard deviation; the target columns sit between features.
fn write_linear_csv(path: &Path, rows: usize, weights: &[[f64; 4]], seed: u64) {
    let mut normal = Normal(seed);
    let names: Vec<String> = (0..weights.len()).map(|j| ["y", "z"][j].to_string()).collect();
    let mut text = format!("x1,x2,{},x3,x4\n", names.join(","));
    for _ in 0..rows {
        let x: Vec<f64> = (0..4).map(|_| normal.next()).collect();
        let targets: Vec<String> = weights
            .iter()
            .map(|w| {
                let signal: f64 = w.iter().zip(&x).map(|(w, x)| w * x).sum();
                let signal_std = w.iter().map(|w| w * w).sum::<f64>().sqrt();
                format!("{:.5}", 10.0 + signal + 0.1 * signal_std * normal.next())
            })
            .collect();
        text.push_str(&format!("{:.5},{:.5},{},{:.5},{:.5}\n", x[0], x[1], targets.join(","), x[2], x[3]));
    }
    std::fs::write(path, text).unwrap();
}

const Y_WEIGHTS: [f64; 4] = [3.0, -2.0, 1.0, 0.5];
const Z_WEIGHTS: [f64; 4] = [-1.0, 0.0, 4.0, 2.0];

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// POSTs JSON; returns the status and the body (as JSON when it is).
fn post(server: &Server, path: &str, body: Value) -> (u16, Value) {
    let mut r = agent().post(format!("{}{path}", server.base)).send(body.to_string().as_bytes()).unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    (r.status().as_u16(), serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
}

/// GETs a JSON body that must come with 200.
fn get_json(server: &Server, path: &str) -> Value {
    let mut r = agent().get(format!("{}{path}", server.base)).call().unwrap();
    assert_eq!(r.status(), 200, "{path}");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

/// Waits until every model is ready to serve.
fn wait_ready(server: &Server, models: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for model in models {
        while agent().get(format!("{}/v2/models/{model}/ready", server.base)).call().unwrap().status() != 200 {
            assert!(Instant::now() < deadline, "{model} never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn train_json(cwd: &Path, args: &[&str]) -> (Value, String) {
    let mut all = vec!["train", "--json"];
    all.extend_from_slice(args);
    let out = lathe(cwd, &all);
    let stdout = ok(&out);
    (last_json(&stdout), stdout)
}

#[test]
fn a_spec_less_regressor_learns_a_noisy_linear_table() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_linear_csv(&cwd.join("train.csv"), 2000, &[Y_WEIGHTS], 1);
    write_linear_csv(&cwd.join("holdout.csv"), 300, &[Y_WEIGHTS], 2);
    let (published, stdout) = train_json(cwd, &["--data", "train.csv", "--label-column", "y", "--name", "lin"]);
    let prepared = stdout.lines().find(|l| l.contains("\"prepared\"")).expect("a prepared event");
    let prepared: Value = serde_json::from_str(prepared).unwrap();
    assert_eq!(prepared["task"], "regression", "{prepared}");
    assert_eq!(prepared["default_spec"], "the default table regressor");
    assert!(prepared["task_reason"].as_str().unwrap().contains("distinct numbers"), "{prepared}");
    let m = &published["metrics"];
    assert!(m["r2"].as_f64().unwrap() >= 0.95, "{m}");
    assert!(m.get("accuracy").is_none(), "a regressor has no accuracy: {m}");
    assert_eq!(m["per_target"][0]["target"], "y");

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/lin/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["spec"]["task"], "regression");
    assert_eq!(manifest["spec"]["input"]["shape"], json!([4]), "auto input: the feature columns");
    assert_eq!(manifest["spec"]["layers"][2]["units"], 1, "auto units: one target");
    let scaling = &manifest["targets"][0];
    assert_eq!(scaling["name"], "y");
    assert!((scaling["mean"].as_f64().unwrap() - 10.0).abs() < 0.5, "{scaling}");
    assert_eq!(manifest["signature"]["outputs"], json!([{"name": "y", "datatype": "FP32", "shape": [-1]}]));

    let eval = last_json(&ok(&lathe(cwd, &["eval", "lin", "--data", "holdout.csv", "--json"])));
    assert_eq!(eval["metrics"]["samples"], 300);
    assert!(eval["metrics"]["r2"].as_f64().unwrap() >= 0.95, "{eval}");
    let table = ok(&lathe(cwd, &["eval", "lin", "--data", "holdout.csv"]));
    assert!(table.contains("R²") && table.contains("RMSE"), "{table}");

    // Predictions come back in the target's units.
    std::fs::write(cwd.join("one.json"), r#"{"instances": [{"x1": 1, "x2": 0, "x3": 0, "x4": 0}]}"#).unwrap();
    let one = last_json(&ok(&lathe(cwd, &["predict", "lin", "--input", "one.json", "--json"])));
    let y = one["predictions"][0]["y"].as_f64().unwrap();
    assert!((y - 13.0).abs() < 0.5, "10 + 3·1 = 13, got {y}");
}

#[test]
fn two_targets_train_together_and_evaluate_per_target() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_linear_csv(&cwd.join("train.csv"), 2000, &[Y_WEIGHTS, Z_WEIGHTS], 3);
    let args = ["--data", "train.csv", "--label-column", "y,z", "--task", "regression", "--name", "two"];
    let (published, _) = train_json(cwd, &args);
    let per_target = published["metrics"]["per_target"].as_array().unwrap();
    assert_eq!(per_target.iter().map(|t| t["target"].clone()).collect::<Vec<_>>(), vec![json!("y"), json!("z")]);
    for t in per_target {
        assert!(t["r2"].as_f64().unwrap() >= 0.95, "{t}");
    }
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/two/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["spec"]["targets"], json!(["y", "z"]));
    assert_eq!(manifest["spec"]["layers"][2]["units"], 2);

    // A spec that disagrees with the data keeps the error naming the layer.
    let spec = write_spec(
        cwd,
        "one-out.yaml",
        "task: regression\ninput: {shape: auto}\nlayers: [{type: dense, units: 1}]\n\
         compile: {optimizer: adam, loss: mse}",
    );
    let out = lathe(
        cwd,
        &["train", "--spec", spec.to_str().unwrap(), "--data", "train.csv", "--label-column", "y,z", "--name", "bad"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("layers[0]: the model outputs 1 values but the data has 2 targets [\"y\", \"z\"]"),
        "{stderr}"
    );
}

/// Three separable classes with text labels in the last column.
fn write_classes_csv(path: &Path, rows: usize, seed: u64) {
    let mut normal = Normal(seed);
    let mut text = String::from("a,b,kind\n");
    for i in 0..rows {
        let (name, c) = [("low", -3.0), ("mid", 0.0), ("high", 3.0)][i % 3];
        text.push_str(&format!("{:.4},{:.4},{name}\n", c + 0.5 * normal.next(), 100.0 + 10.0 * normal.next()));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_spec_less_classifier_decides_the_task_from_text_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_classes_csv(&cwd.join("t.csv"), 600, 4);
    let out = lathe(cwd, &["train", "--data", "t.csv", "--name", "kinds"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    ok(&out);
    assert!(stderr.contains("task: classification (column \"kind\" holds text (3 distinct values))"), "{stderr}");
    assert!(stderr.contains("spec: the default table classifier"), "{stderr}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/kinds/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["class_names"], json!(["high", "low", "mid"]));
    assert!(manifest["metrics"]["accuracy"].as_f64().unwrap() > 0.95, "{}", manifest["metrics"]);
    assert_eq!(manifest["spec"]["layers"][2]["units"], 3);
}

#[test]
fn binary_classifiers_report_roc_auc_and_log_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let mut normal = Normal(9);
    let mut text = String::from("a,b,ok\n");
    for i in 0..800 {
        let label = ["true", "false"][i % 2];
        let shift = if i % 2 == 0 { 1.0 } else { -1.0 };
        text.push_str(&format!("{:.4},{:.4},{label}\n", shift + normal.next(), normal.next()));
    }
    std::fs::write(cwd.join("b.csv"), text).unwrap();
    let (published, _) = train_json(cwd, &["--data", "b.csv", "--name", "binary"]);
    let m = &published["metrics"];
    let (auc, log_loss) = (m["roc_auc"].as_f64().unwrap(), m["log_loss"].as_f64().unwrap());
    // Two unit-variance normals 2 apart: the best AUC is Φ(2/√2) ≈ 0.92.
    assert!((0.85..=0.97).contains(&auc), "{m}");
    assert!((0.2..0.5).contains(&log_loss), "{m}");
}

#[test]
fn regressors_answer_regress_predict_and_v2_in_their_units() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_linear_csv(&cwd.join("one.csv"), 1500, &[Y_WEIGHTS], 5);
    write_linear_csv(&cwd.join("two.csv"), 1500, &[Y_WEIGHTS, Z_WEIGHTS], 6);
    train_json(cwd, &["--data", "one.csv", "--label-column", "y", "--name", "single"]);
    train_json(cwd, &["--data", "two.csv", "--label-column", "y,z", "--name", "double"]);
    let server = start_server_with(cwd, &[]);
    wait_ready(&server, &["single", "double"]);
    let post = |path: &str, body: Value| post(&server, path, body);
    let example = json!({"x1": 1.0, "x2": 1.0, "x3": 0.0, "x4": 0.0});
    let (code, body) =
        post("/v1/models/single:regress", json!({ "examples": [example, {"x1": 0, "x2": 0, "x3": 0, "x4": 2}] }));
    assert_eq!(code, 200, "{body}");
    let results = body["results"].as_array().unwrap();
    assert!((results[0].as_f64().unwrap() - 11.0).abs() < 0.5, "10 + 3 − 2 = 11: {body}");
    assert!((results[1].as_f64().unwrap() - 11.0).abs() < 0.5, "10 + 0.5·2 = 11: {body}");

    let (code, body) = post("/v1/models/double:regress", json!({ "examples": [example] }));
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("use :predict for several"), "{body}");

    let (code, body) = post("/v1/models/double:predict", json!({ "instances": [[1.0, 1.0, 0.0, 0.0]] }));
    assert_eq!(code, 200, "{body}");
    let row = &body["predictions"][0];
    assert!((row["y"].as_f64().unwrap() - 11.0).abs() < 0.5, "{body}");
    assert!((row["z"].as_f64().unwrap() - 9.0).abs() < 0.5, "10 − 1 = 9: {body}");

    let v2 = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1.0, 1.0, 0.0, 0.0]}]});
    let (code, body) = post("/v2/models/double/infer", v2);
    assert_eq!(code, 200, "{body}");
    let names: Vec<&str> = body["outputs"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["y", "z"]);
    assert_eq!(body["outputs"][1]["shape"], json!([1]));

    let (code, body) = post("/v1/models/single:classify", json!({ "examples": [example] }));
    assert_eq!(code, 400, "a regressor is no classifier: {body}");
}

/// `y = 2·size + offset(colour) + noise` with a tenth of `size` cells `NA` and a twentieth of
/// `colour` cells empty; `shade` has 6 categories, rare ones included, and no effect.
fn write_mixed_csv(path: &Path, rows: usize, seed: u64, colours: &[(&str, f64)]) {
    let mut normal = Normal(seed);
    let mut text = String::from("size,colour,shade,y\n");
    for i in 0..rows {
        let size = normal.next();
        let (colour, offset) = colours[i % colours.len()];
        let shade = ["a", "a", "a", "b", "b", "c", "d", "e", "f"][i % 9];
        let y = 2.0 * size + offset + 0.05 * normal.next();
        let size_cell = if i % 10 == 3 { "NA".to_string() } else { format!("{size:.4}") };
        let colour_cell = if i % 20 == 7 { "" } else { colour };
        text.push_str(&format!("{size_cell},{colour_cell},{shade},{y:.4}\n"));
    }
    std::fs::write(path, text).unwrap();
}

const COLOURS: [(&str, f64); 3] = [("red", 0.0), ("green", 5.0), ("blue", -5.0)];

const MIXED_SPEC: &str = "\
input: {preprocessing: {kind: standardize, missing: impute, max_categories: 4}}
layers:
  - {type: dense, units: 32, activation: relu}
  - {type: dense, units: auto}
compile: {optimizer: {type: adam, lr: 0.003}, loss: mse}
fit: {epochs: 60, batch_size: 32}
";

#[test]
fn categories_and_missing_cells_train_with_impute_and_serve_raw_values() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_mixed_csv(&cwd.join("train.csv"), 1500, 7, &COLOURS);
    let spec = write_spec(cwd, "mixed.yaml", MIXED_SPEC);
    let spec = spec.to_str().unwrap();
    let (published, _) =
        train_json(cwd, &["--spec", spec, "--data", "train.csv", "--label-column", "y", "--name", "mix"]);
    assert!(published["metrics"]["r2"].as_f64().unwrap() > 0.9, "{}", published["metrics"]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/mix/1/manifest.json")).unwrap()).unwrap();
    let inputs = &manifest["signature"]["inputs"];
    assert_eq!(inputs[0], json!({"name": "size", "datatype": "FP32", "shape": [-1]}));
    assert_eq!(inputs[1], json!({"name": "colour", "datatype": "BYTES", "shape": [-1]}));
    let colour = &manifest["columns"][1];
    assert_eq!((colour["kind"].as_str(), colour["other"].as_bool()), (Some("categorical"), Some(false)), "{colour}");
    assert_eq!(colour["categories"].as_array().unwrap().len(), 3);
    let shade = &manifest["columns"][2];
    let shades = shade["categories"].as_array().unwrap();
    assert_eq!((shades.len(), &shades[0], &shades[1]), (3, &json!("a"), &json!("b")), "capped at 4: 3 + other");
    assert_eq!(shade["other"], true);
    assert!(manifest["columns"][0]["fill"].as_f64().unwrap().abs() < 0.2, "the training mean of size");
    assert_eq!(manifest["spec"]["input"]["shape"], json!([1 + 3 + 4]));

    // Without imputation the first missing cell is an error naming its line and column.
    let strict = write_spec(cwd, "strict.yaml", &MIXED_SPEC.replace("missing: impute", "missing: error"));
    let strict = strict.to_str().unwrap();
    let out = lathe(cwd, &["train", "--spec", strict, "--data", "train.csv", "--label-column", "y", "--name", "no"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 5: column \"size\": expected a number, got \"NA\" (a missing value"), "{stderr}");

    // Evaluation data with a colour never seen in training: it encodes as zeros there.
    write_mixed_csv(&cwd.join("holdout.csv"), 300, 8, &[("red", 0.0), ("green", 5.0), ("purple", 0.0)]);
    let eval = last_json(&ok(&lathe(cwd, &["eval", "mix", "--data", "holdout.csv", "--json"])));
    assert_eq!(eval["metrics"]["samples"], 300, "{eval}");

    // Offline prediction takes raw values, imputes missing ones and refuses unseen categories.
    let rows = r#"{"instances": [{"size": 1, "colour": "green", "shade": "a"}, {"colour": "red", "shade": "zzz"}]}"#;
    std::fs::write(cwd.join("rows.json"), rows).unwrap();
    let pred = last_json(&ok(&lathe(cwd, &["predict", "mix", "--input", "rows.json", "--json"])));
    let y0 = pred["predictions"][0]["y"].as_f64().unwrap();
    assert!((y0 - 7.0).abs() < 0.7, "2·1 + 5 = 7, got {y0}");
    std::fs::write(cwd.join("bad.json"), r#"{"instances": [{"size": 1, "colour": "purple", "shade": "a"}]}"#).unwrap();
    let out = lathe(cwd, &["predict", "mix", "--input", "bad.json"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 0: input \"colour\": category \"purple\" was not seen in training"), "{stderr}");

    let server = start_server_with(cwd, &[]);
    wait_ready(&server, &["mix"]);
    check_table_metadata(&server);
    let post = |path: &str, body: Value| post(&server, path, body);
    let row = json!({"size": 1.0, "colour": "green", "shade": "b"});
    let (code, body) = post("/v1/models/mix:predict", json!({ "instances": [row] }));
    assert_eq!(code, 200, "{body}");
    assert!((body["predictions"][0].as_f64().unwrap() - 7.0).abs() < 0.7, "{body}");
    let columnar = json!({"inputs": {"size": [1.0, -1.0], "colour": ["green", "NA"], "shade": ["a", ""]}});
    let (code, body) = post("/v1/models/mix:predict", columnar);
    assert_eq!(code, 200, "missing texts are imputed: {body}");
    assert_eq!(body["outputs"].as_array().unwrap().len(), 2);
    let (code, body) = post("/v1/models/mix:regress", json!({ "examples": [row] }));
    assert_eq!(code, 200, "{body}");
    let unseen = json!({"size": 1.0, "colour": "purple", "shade": "b"});
    let (code, body) = post("/v1/models/mix:predict", json!({ "instances": [unseen] }));
    assert_eq!(code, 400, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("input \"colour\": category \"purple\" was not seen in training; expected one of"),
        "{body}"
    );
    let v2 = json!({"inputs": [
        {"name": "size", "datatype": "FP32", "shape": [1], "data": [1.0]},
        {"name": "colour", "datatype": "BYTES", "shape": [1], "data": ["blue"]},
        {"name": "shade", "datatype": "BYTES", "shape": [1], "data": ["q"]},
    ]});
    let (code, body) = post("/v2/models/mix/infer", v2);
    assert_eq!(code, 200, "{body}");
    assert!((body["outputs"][0]["data"][0].as_f64().unwrap() + 3.0).abs() < 0.7, "2 − 5 = −3: {body}");
}

/// Both protocols' metadata say that the model takes raw values, one input per column, and
/// what each column knows.
fn check_table_metadata(server: &Server) {
    let v2 = get_json(server, "/v2/models/mix");
    let p = &v2["parameters"];
    assert_eq!(
        (&p["preprocessing"], &p["task"], &p["targets"]),
        (&json!("standardize"), &json!("regression"), &json!("y"))
    );
    assert!(p["missing_values"].as_str().unwrap().starts_with("imputed"), "{v2}");
    let said = p["preprocessing_description"].as_str().unwrap();
    assert!(said.contains("Send raw values in the training data's units"), "{said}");
    assert!(said.contains("One input per raw table column"), "{said}");
    let colour = &v2["inputs"][1];
    assert_eq!((&colour["name"], &colour["parameters"]["column_kind"]), (&json!("colour"), &json!("category")));
    assert_eq!(colour["parameters"]["categories"].as_str().unwrap().split(',').count(), 3, "{colour}");
    assert!(v2["inputs"][0]["parameters"]["missing"].as_str().unwrap().starts_with("imputed with "), "{v2}");

    let tfs = get_json(server, "/v1/models/mix/metadata");
    let entry = &tfs["metadata"]["preprocessing"];
    assert_eq!(entry["preprocessing_description"], p["preprocessing_description"], "{tfs}");
    assert_eq!(entry["inputs"]["colour"], colour["parameters"]);
    assert_eq!(entry["inputs"]["shade"]["other_category"], true, "{entry}");
}

#[test]
fn a_spec_less_run_imputes_the_gaps_of_a_table_that_has_some() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_mixed_csv(&cwd.join("t.csv"), 900, 11, &COLOURS);
    let (published, _) = train_json(cwd, &["--data", "t.csv", "--name", "gaps"]);
    assert!(published["metrics"]["r2"].as_f64().unwrap() > 0.9, "{}", published["metrics"]);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/gaps/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["spec"]["input"]["preprocessing"]["missing"], "impute");
}

#[test]
fn a_model_with_text_columns_and_no_imputation_loads_and_serves() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let mut normal = Normal(21);
    let mut text = String::from("colour,x,kind\n");
    for i in 0..600 {
        let (colour, kind) = [("red", "warm"), ("orange", "warm"), ("blue", "cold")][i % 3];
        text.push_str(&format!("{colour},{:.3},{kind}\n", normal.next()));
    }
    std::fs::write(cwd.join("c.csv"), text).unwrap();
    let (published, _) = train_json(cwd, &["--data", "c.csv", "--name", "hue"]);
    assert!(published["metrics"]["accuracy"].as_f64().unwrap() > 0.95, "{published}");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/hue/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["spec"]["input"]["preprocessing"]["missing"], "error");
    assert!(manifest["columns"][0]["fill"].is_null());
    let server = start_server_with(cwd, &[]);
    wait_ready(&server, &["hue"]);
    let body = json!({"examples": [{"colour": "blue", "x": 0.1}, {"colour": "", "x": 0.1}]});
    let (code, v) = post(&server, "/v1/models/hue:classify", body);
    assert_eq!(code, 400, "a missing colour is refused without imputation: {v}");
    assert!(v["error"].as_str().unwrap().contains("input \"colour\": missing value"), "{v}");
    let (code, v) = post(&server, "/v1/models/hue:classify", json!({"examples": [{"colour": "blue", "x": 0.1}]}));
    assert_eq!(code, 200, "{v}");
    let bad_b64 = json!({"instances": [{"colour": {"b64": "Ymx1ZQ"}, "x": 0.1}]});
    let (code, e) = post(&server, "/v1/models/hue:predict", bad_b64);
    assert_eq!(code, 400, "{e}");
    let message = e["error"].as_str().unwrap();
    assert!(message.contains("the b64 value is not valid standard padded base64"), "unpadded: {e}");
    let (code, e) =
        post(&server, "/v1/models/hue:predict", json!({"instances": [{"colour": {"b64": "Ymx1ZQ=="}, "x": 0.1}]}));
    assert_eq!(code, 200, "padded base64 of \"blue\": {e}");
    let best =
        v["results"][0].as_array().unwrap().iter().max_by(|a, b| a[1].as_f64().partial_cmp(&b[1].as_f64()).unwrap());
    assert_eq!(best.unwrap()[0], "cold", "{v}");
}
