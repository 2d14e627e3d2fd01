//! Every fixture made by scripts/onnx_fixtures.py runs in tract and matches onnxruntime's
//! outputs within |a − b| ≤ rtol·|b| + atol (rtol 1e-5, 1e-4 for convolutions; atol 1e-6).

use std::path::{Path, PathBuf};

use lathe_engine::Servable;
use lathe_onnx::{Batching, OnnxModel};
use lathe_types::{DType, Tensor, TensorData};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A V2 JSON tensor (FP16 data as raw half bits) as a Lathe tensor.
fn tensor(v: &Value) -> Tensor {
    let dtype = DType::from_name(v["datatype"].as_str().unwrap()).unwrap();
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let values = v["data"].as_array().unwrap();
    let ints = || values.iter().map(|x| x.as_i64().unwrap());
    let floats = || values.iter().map(|x| x.as_f64().unwrap());
    let data = match dtype {
        DType::F32 => TensorData::F32(floats().map(|x| x as f32).collect()),
        DType::F64 => TensorData::F64(floats().collect()),
        DType::F16 => TensorData::F16(ints().map(|x| x as u16).collect()),
        DType::I8 => TensorData::I8(ints().map(|x| x as i8).collect()),
        DType::U8 => TensorData::U8(ints().map(|x| x as u8).collect()),
        DType::I32 => TensorData::I32(ints().map(|x| x as i32).collect()),
        DType::I64 => TensorData::I64(ints().collect()),
        DType::Bool => TensorData::Bool(values.iter().map(|x| x.as_bool().unwrap()).collect()),
        other => panic!("no fixture uses {other}"),
    };
    Tensor { name: v["name"].as_str().unwrap().to_string(), shape, data }
}

/// Values of floating-point data as f64; `None` for integers and booleans.
fn floats(d: &TensorData) -> Option<Vec<f64>> {
    match d {
        TensorData::F32(v) => Some(v.iter().map(|&x| x as f64).collect()),
        TensorData::F64(v) => Some(v.clone()),
        TensorData::F16(v) => Some(v.iter().map(|&b| half::f16::from_bits(b).to_f64()).collect()),
        _ => None,
    }
}

/// Compares two tensors element by element; integers and booleans must be equal.
fn assert_close(got: &Tensor, want: &Tensor, rtol: f64, atol: f64, what: &str) {
    assert_eq!((&got.name, &got.shape, got.dtype()), (&want.name, &want.shape, want.dtype()), "{what}");
    match (floats(&got.data), floats(&want.data)) {
        (Some(a), Some(b)) => {
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                assert!((x - y).abs() <= rtol * y.abs() + atol, "{what}: element {i}: {x} vs onnxruntime {y}");
            }
        }
        _ => assert_eq!(got.data, want.data, "{what}"),
    }
}

fn check_fixture(name: &str) -> OnnxModel {
    let model = OnnxModel::load(&fixture(&format!("{name}.onnx"))).unwrap();
    let doc: Value = serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.json"))).unwrap()).unwrap();
    let (rtol, atol) = (doc["rtol"].as_f64().unwrap(), doc["atol"].as_f64().unwrap());
    for (c, case) in doc["cases"].as_array().unwrap().iter().enumerate() {
        let mut inputs: Vec<Tensor> = case["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let order: Vec<&str> = model.signature().inputs.iter().map(|s| s.name.as_str()).collect();
        inputs.sort_by_key(|t| order.iter().position(|n| *n == t.name));
        let outputs = model.infer(&inputs).unwrap();
        let want: Vec<Tensor> = case["outputs"].as_array().unwrap().iter().map(tensor).collect();
        assert_eq!(outputs.len(), want.len(), "{name} case {c}");
        for (got, want) in outputs.iter().zip(&want) {
            assert_close(got, want, rtol, atol, &format!("{name} case {c} output {}", want.name));
        }
    }
    model
}

#[test]
fn every_fixture_matches_onnxruntime() {
    let all = ["mlp", "cnn", "multi_io", "int_bool", "dtypes", "fixed", "sklearn_logreg", "sklearn_forest", "external"];
    for name in all {
        check_fixture(name);
    }
}

#[test]
fn signatures_read_from_the_graph() {
    let mlp = OnnxModel::load(&fixture("mlp.onnx")).unwrap();
    let sig = mlp.signature();
    assert_eq!(
        (sig.inputs[0].name.as_str(), sig.inputs[0].datatype, &sig.inputs[0].shape),
        ("x", DType::F32, &vec![-1, 8])
    );
    assert_eq!((sig.outputs[0].name.as_str(), &sig.outputs[0].shape), ("probabilities", &vec![-1, 3]));
    assert!(mlp.batchable());

    let ints = OnnxModel::load(&fixture("int_bool.onnx")).unwrap();
    let shapes: Vec<(&str, DType, &Vec<i64>)> =
        ints.signature().inputs.iter().map(|s| (s.name.as_str(), s.datatype, &s.shape)).collect();
    assert_eq!(shapes, [("ids", DType::I64, &vec![-1, -1]), ("mask", DType::Bool, &vec![-1, -1])]);
    let outs: Vec<DType> = ints.signature().outputs.iter().map(|s| s.datatype).collect();
    assert_eq!(outs, [DType::F32, DType::Bool, DType::I64]);

    let fixed = OnnxModel::load(&fixture("fixed.onnx")).unwrap();
    assert_eq!(fixed.signature().inputs[0].shape, vec![1, 4]);
    assert!(!fixed.batchable(), "a fixed first dimension does not batch");

    let forest = OnnxModel::load(&fixture("sklearn_forest.onnx")).unwrap();
    assert_eq!(forest.signature().inputs[0].shape, vec![-1, 4], "skl2onnx's unnamed batch dimension");
    assert!(forest.batchable());
}

#[test]
fn a_plan_is_kept_per_sequence_length() {
    let model = check_fixture("int_bool");
    assert_eq!(model.cached_plans(), 2, "the fixture's cases use sequence lengths 4 and 7");
}

#[test]
fn bad_files_get_one_clear_error_each() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.onnx");
    std::fs::write(&text, "this is not a model\n").unwrap();
    let truncated = dir.path().join("cut.onnx");
    let bytes = std::fs::read(fixture("cnn.onnx")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let cases = [
        (text, "not an ONNX model"),
        (truncated, "not an ONNX model"),
        (fixture("custom_op.onnx"), "unsupported operator: com.example.Frobnicate"),
        (fixture("sklearn_scaled.onnx"), "unsupported operator: ai.onnx.ml.Scaler"),
        (fixture("old_opset.onnx"), "operator set 7 of ai.onnx is outside what tract 0.23 runs (9 to 18)"),
        (fixture("dangling_output.onnx"), "graph output \"y\" is produced by no node"),
        (fixture("escape.onnx"), "external data file \"../outside.weights\" must be a relative path inside"),
    ];
    for (path, needle) in cases {
        let e = lathe_onnx::prepare(&path, "m", vec![], Batching::Auto, "now").err().unwrap().to_string();
        assert!(e.contains(needle), "{}: expected {needle:?} in {e:?}", path.display());
    }
    let e = lathe_onnx::prepare(&fixture("fixed.onnx"), "m", vec![], Batching::On, "now").err().unwrap().to_string();
    assert!(e.contains("batching was asked for, but \"x\" has no symbolic first dimension (shape [1, 4])"), "{e}");
    let e = lathe_onnx::prepare(&fixture("mlp.onnx"), "m", vec!["a".into(), "b".into()], Batching::Auto, "now")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("2 class names given, but no output has shape [-1, 2]"), "{e}");
}

#[test]
fn an_import_records_where_the_graph_came_from() {
    let names: Vec<String> = ["setosa", "versicolor", "virginica"].map(String::from).to_vec();
    let import =
        lathe_onnx::prepare(&fixture("sklearn_logreg.onnx"), "iris", names.clone(), Batching::Auto, "now").unwrap();
    let spec = import.manifest.onnx().unwrap();
    assert_eq!((spec.opset, spec.batching, &spec.class_names), (17, true, &names));
    assert!(spec.producer.starts_with("skl2onnx"), "{}", spec.producer);
    assert_eq!(spec.ops, ["ai.onnx.ml.LinearClassifier", "ai.onnx.ml.Normalizer"]);
    assert_eq!(import.files.len(), 1);
    let off = lathe_onnx::prepare(&fixture("mlp.onnx"), "m", vec![], Batching::Off, "now").unwrap();
    assert!(!off.manifest.onnx().unwrap().batching);
}

#[test]
fn external_data_files_are_published_with_the_graph() {
    let import = lathe_onnx::prepare(&fixture("external.onnx"), "m", vec![], Batching::Auto, "now").unwrap();
    let names: Vec<&str> = import.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["model.onnx", "external.weights"]);
    assert_eq!(import.files[1].1, fixture("external.weights"));
}
