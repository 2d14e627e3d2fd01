//! Every method on a model whose attributions are known exactly: a linear regressor
//! `f(x) = w · x` over a table of two columns, one numeric and one one-hot with two categories.
//! Integrated gradients and occlusion must both give each column `Σ w (x − baseline)` over its
//! features; saliency `|w|`.

use lathe_engine::{GradientResult, Servable};
use lathe_explain::{explain, Method, Options};
use lathe_types::{ApiError, DType, Signature, Tensor, TensorData, TensorSignature};

const W: [f32; 3] = [2.0, -1.0, 0.5];

struct Linear {
    signature: Signature,
    gradients: bool,
}

impl Linear {
    fn new(gradients: bool) -> Linear {
        let input = |name: &str, datatype| TensorSignature { name: name.into(), datatype, shape: vec![-1] };
        let signature = Signature {
            inputs: vec![input("age", DType::F32), input("colour", DType::Bytes)],
            outputs: vec![input("y", DType::F32)],
        };
        Linear { signature, gradients }
    }
}

impl Servable for Linear {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn preprocesses(&self) -> bool {
        true
    }

    /// age, then colour one-hot over [red, blue].
    fn preprocess(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
        let (TensorData::F32(age), TensorData::Bytes(colour)) = (&inputs[0].data, &inputs[1].data) else {
            return Ok(inputs);
        };
        let x: Vec<f32> =
            age.iter().zip(colour).flat_map(|(&a, c)| [a, f32::from(c == b"red"), f32::from(c == b"blue")]).collect();
        Ok(vec![Tensor { name: "encoded".into(), shape: vec![age.len(), 3], data: TensorData::F32(x) }])
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        let x = inputs[0].data.to_f32().unwrap();
        let y: Vec<f32> = x.chunks(3).map(|r| r.iter().zip(W).map(|(a, w)| a * w).sum()).collect();
        Ok(vec![Tensor { name: "y".into(), shape: vec![y.len()], data: TensorData::F32(y) }])
    }

    fn output_gradients(&self, features: &[f32], rows: usize, _unit: usize) -> Option<GradientResult> {
        if !self.gradients {
            return None;
        }
        let values = features.chunks(3).map(|r| r.iter().zip(W).map(|(a, w)| a * w).sum()).collect();
        Some(Ok((values, W.repeat(rows))))
    }

    fn feature_layout(&self) -> Option<Vec<(usize, String)>> {
        Some(vec![(0, "age".into()), (1, "colour=red".into()), (1, "colour=blue".into())])
    }

    fn baseline_features(&self) -> Option<Vec<f32>> {
        Some(vec![10.0, 0.5, 0.5])
    }

    fn platform(&self) -> &str {
        "test"
    }
}

fn inputs() -> Vec<Tensor> {
    vec![
        Tensor { name: "age".into(), shape: vec![1], data: TensorData::F32(vec![40.0]) },
        Tensor { name: "colour".into(), shape: vec![1], data: TensorData::Bytes(vec![b"red".to_vec()]) },
    ]
}

fn columns(method: Option<Method>, gradients: bool) -> Vec<(String, f32)> {
    let options = Options { method, ..Options::default() };
    let e = explain(&Linear::new(gradients), inputs(), &[], &options).unwrap().remove(0);
    let mut features = e.features.clone();
    features.sort_by(|a, b| a.0.cmp(&b.0));
    features
}

#[test]
fn integrated_gradients_and_occlusion_agree_with_the_exact_linear_attributions() {
    // age: 2 · (40 − 10) = 60; colour: −1 · (1 − 0.5) + 0.5 · (0 − 0.5) = −0.75.
    let exact = [("age", 60.0), ("colour", -0.75)];
    for (method, gradients) in [(None, true), (Some(Method::Occlusion), false), (Some(Method::Occlusion), true)] {
        let got = columns(method, gradients);
        for ((name, a), (want_name, want)) in got.iter().zip(exact) {
            assert_eq!(name, want_name);
            assert!((a - want).abs() < 1e-4, "{method:?}: {name} {a}, expected {want}");
        }
    }
    let saliency =
        explain(&Linear::new(true), inputs(), &[], &Options { method: Some(Method::Saliency), ..Options::default() })
            .unwrap()
            .remove(0);
    assert_eq!(saliency.attributions[0].data.to_f32().unwrap(), vec![2.0]);
}

#[test]
fn a_gradient_method_on_an_engine_without_gradients_is_refused() {
    let options = Options { method: Some(Method::Saliency), ..Options::default() };
    let e = explain(&Linear::new(false), inputs(), &[], &options).unwrap_err();
    assert!(e.message.contains("no backward pass; use occlusion"), "{}", e.message);
    let e = columns(None, false);
    assert_eq!(e.len(), 2, "the default falls back to occlusion");
}
