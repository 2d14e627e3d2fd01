//! Train → evaluate → version → predict, on an MNIST subset and on a generated CSV.

use lathe_formats::atomic::sha256_file;
use serde_json::{json, Value};

use crate::common::*;

#[test]
fn mnist_subset_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = mnist_subset(cwd, 3000, 1000);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    let data_s = data.to_str().unwrap();
    let spec_s = spec.to_str().unwrap();

    let out = ok(&lathe(cwd, &["train", "--spec", spec_s, "--data", data_s, "--name", "digits", "--json"]));
    let events: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.iter().filter(|e| e["event"] == "epoch_end").count(), 3);
    let published = events.last().unwrap();
    assert_eq!(published["event"], "published");
    assert_eq!(published["version"], 1);
    let accuracy = published["metrics"]["accuracy"].as_f64().unwrap();
    assert!(accuracy > 0.85, "subset accuracy {accuracy}");

    // The version folder holds what the manifest promises.
    let vdir = cwd.join("repo/digits/1");
    let manifest: Value = serde_json::from_slice(&std::fs::read(vdir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["signature"]["inputs"][0]["shape"], json!([-1, 28, 28]));
    assert_eq!(manifest["signature"]["outputs"][0]["name"], "probabilities");
    assert_eq!(manifest["preprocessing"], json!({"kind": "rescale", "divisor": 255.0}));
    assert_eq!(manifest["class_names"].as_array().unwrap().len(), 10);
    assert_eq!(manifest["history"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["seed"], 7);
    assert_eq!(manifest["data"]["train_samples"], 3000);
    assert_eq!(manifest["data"]["fingerprint"].as_str().unwrap().len(), 64);
    assert_eq!(manifest["spec"]["layers"][1], json!({"type": "dense", "units": 64, "activation": "relu"}));
    let (sha, bytes) = sha256_file(&vdir.join("weights.safetensors")).unwrap();
    assert_eq!(manifest["files"]["weights.safetensors"], json!({"sha256": sha, "bytes": bytes}));
    assert!(!cwd.join("repo/.checkpoints/digits").exists(), "checkpoint removed after publishing");

    // Evaluating the version on the same test split reproduces the published metrics.
    let eval = last_json(&ok(&lathe(cwd, &["eval", "digits:1", "--data", data_s, "--json"])));
    assert_eq!(eval["metrics"]["confusion"], manifest["metrics"]["confusion"]);
    assert!((eval["metrics"]["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-12);

    // JSON instances and the same image as a PNG give the same prediction.
    let mut instances = Vec::new();
    for i in 0..3 {
        let (pixels, _) = mnist_test_image(i);
        let rows: Vec<Vec<u8>> = pixels.chunks(28).map(<[u8]>::to_vec).collect();
        instances.push(rows);
    }
    std::fs::write(cwd.join("in.json"), json!({ "instances": instances }).to_string()).unwrap();
    let pred = last_json(&ok(&lathe(cwd, &["predict", "digits", "--input", "in.json", "--json"])));
    let preds = pred["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    let (pixels, label) = mnist_test_image(0);
    image::GrayImage::from_raw(28, 28, pixels).unwrap().save(cwd.join("digit.png")).unwrap();
    let png = last_json(&ok(&lathe(cwd, &["predict", "digits:1", "--input", "digit.png", "--json"])));
    assert_eq!(png["predictions"][0]["class"], preds[0]["class"]);
    assert_eq!(png["predictions"][0]["class"], label.to_string(), "test image 0 is a {label}");
    for (c, p) in preds[0]["probabilities"].as_object().unwrap() {
        let q = png["predictions"][0]["probabilities"][c].as_f64().unwrap();
        assert!((p.as_f64().unwrap() - q).abs() < 1e-6);
    }
    let sum: f64 = preds[1]["probabilities"].as_object().unwrap().values().map(|v| v.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");

    // A second training run becomes version 2; list and show see both.
    ok(&lathe(cwd, &["train", "--spec", spec_s, "--data", data_s, "--name", "digits", "--seed", "8", "--json"]));
    let list = last_json(&ok(&lathe(cwd, &["models", "list", "--json"])));
    assert_eq!(list["models"][0]["versions"], json!([1, 2]));
    let show = last_json(&ok(&lathe(cwd, &["models", "show", "digits", "--json"])));
    assert_eq!((show["version"].as_u64(), show["seed"].as_u64()), (Some(2), Some(8)));
    let table = ok(&lathe(cwd, &["models", "show", "digits:1"]));
    assert!(table.contains("confusion matrix"), "{table}");
}

#[test]
fn same_seed_gives_identical_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let data = mnist_subset(cwd, 2000, 500);
    let spec = write_spec(cwd, "small.yaml", SMALL_MLP);
    let run = |name: &str, seed: &str| {
        let args = [
            "train",
            "--spec",
            spec.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--name",
            name,
            "--seed",
            seed,
            "--json",
        ];
        let v = last_json(&ok(&lathe(cwd, &args)));
        v["metrics"].clone()
    };
    let a = run("a", "3");
    let b = run("b", "3");
    let c = run("c", "4");
    assert_eq!(a, b, "same seed, same metrics");
    assert_ne!(a["loss"], c["loss"], "another seed trains differently");
}

/// Three separable classes with string labels, 4 numeric features on different scales.
fn write_blobs_csv(path: &std::path::Path, rows: usize, seed: u64) {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f64) / (1u64 << 31) as f64
    };
    let centers = [
        ("setosa", [1.0, 200.0, -3.0, 0.5]),
        ("versicolor", [3.0, 260.0, 0.0, 1.5]),
        ("virginica", [5.0, 320.0, 3.0, 2.5]),
    ];
    let mut text = String::from("f1,f2,species,f3,f4\n");
    for i in 0..rows {
        let (name, c) = centers[i % 3];
        let noise = |scale: f64, u: &mut dyn FnMut() -> f64| (u() - 0.5) * scale;
        let f: Vec<f64> = vec![
            c[0] + noise(1.5, &mut uniform),
            c[1] + noise(45.0, &mut uniform),
            c[2] + noise(2.5, &mut uniform),
            c[3] + noise(0.8, &mut uniform),
        ];
        text.push_str(&format!("{:.3},{:.2},{name},{:.3},{:.3}\n", f[0], f[1], f[2], f[3]));
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn csv_train_eval_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    write_blobs_csv(&cwd.join("train.csv"), 600, 1);
    write_blobs_csv(&cwd.join("holdout.csv"), 150, 2);
    let spec = example("tabular.yaml");
    let out = ok(&lathe(
        cwd,
        &[
            "train",
            "--spec",
            spec.to_str().unwrap(),
            "--data",
            "train.csv",
            "--label-column",
            "species",
            "--name",
            "iris",
            "--json",
        ],
    ));
    let published = last_json(&out);
    assert!(published["metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{published}");
    assert_eq!(published["metrics"]["samples"], 120, "20% of 600 rows held out for testing");

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(cwd.join("repo/iris/1/manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["class_names"], json!(["setosa", "versicolor", "virginica"]));
    assert_eq!(manifest["feature_names"], json!(["f1", "f2", "f3", "f4"]));
    assert_eq!(manifest["preprocessing"]["kind"], "standardize");
    assert_eq!(manifest["preprocessing"]["mean"].as_array().unwrap().len(), 4);

    let eval =
        last_json(&ok(&lathe(cwd, &["eval", "iris", "--data", "holdout.csv", "--label-column", "species", "--json"])));
    assert_eq!(eval["metrics"]["samples"], 150);
    assert!(eval["metrics"]["accuracy"].as_f64().unwrap() > 0.9, "{eval}");
    assert_eq!(eval["metrics"]["per_class"][2]["class"], "virginica");

    // CSV rows (extra columns ignored) and JSON objects by feature name.
    let pred = last_json(&ok(&lathe(cwd, &["predict", "iris", "--input", "holdout.csv", "--json"])));
    let preds = pred["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 150);
    let right =
        preds.iter().enumerate().filter(|(i, p)| p["class"] == ["setosa", "versicolor", "virginica"][i % 3]).count();
    assert!(right >= 135, "{right}/150 right");
    std::fs::write(cwd.join("one.json"), r#"{"instances": [{"f1": 5.0, "f2": 320, "f3": 3.0, "f4": 2.5}]}"#).unwrap();
    let one = last_json(&ok(&lathe(cwd, &["predict", "iris", "--input", "one.json", "--json"])));
    assert_eq!(one["predictions"][0]["class"], "virginica");
}
