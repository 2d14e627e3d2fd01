//! Explanations over KServe V1 and V2 on a real MNIST model, checked for meaning: removing the
//! most-attributed pixels must hurt the prediction more than removing random ink, and
//! integrated gradients must be complete.

use serde_json::{json, Value};

use crate::common::{test_images, TestServer};

/// Pixels zeroed: 5 % of 784.
const ZEROED: usize = 39;

fn probabilities(s: &TestServer, images: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let (code, body) = s.post("/v1/models/mnist:predict", json!({ "instances": images }).to_string().as_bytes());
    assert_eq!(code, 200, "{body}");
    let rows = body["predictions"].as_array().unwrap();
    rows.iter().map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect()).collect()
}

fn flat(attributions: &Value) -> Vec<f32> {
    attributions
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

/// A small deterministic generator (SplitMix64) for the random pixels.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn zeroing_the_most_attributed_pixels_hurts_more_than_random_ink_and_ig_is_complete() {
    let s = TestServer::with_mnist();
    let (raw, _) = test_images(100);
    let images: Vec<Vec<f32>> = raw.iter().map(|im| im.iter().map(|&p| p as f32).collect()).collect();
    let as_rows = |im: &Vec<f32>| -> Vec<Vec<f32>> { im.chunks(28).map(|r| r.to_vec()).collect() };
    let mut explanations = Vec::new();
    for part in images.chunks(50) {
        let instances: Vec<_> = part.iter().map(as_rows).collect();
        let (code, body) = s.post("/v1/models/mnist:explain", json!({ "instances": instances }).to_string().as_bytes());
        assert_eq!(code, 200, "{body}");
        explanations.extend(body["explanations"].as_array().unwrap().clone());
    }
    assert_eq!(explanations.len(), 100);
    let before = probabilities(&s, &images);
    let (mut top, mut random) = (Vec::new(), Vec::new());
    let mut seed = 7u64;
    let mut worst_gap: f64 = 0.0;
    for (i, e) in explanations.iter().enumerate() {
        assert_eq!(e["method"], "integrated_gradients");
        let class = e["unit"].as_u64().unwrap() as usize;
        assert_eq!(e["class"], class.to_string());
        let predicted = before[i].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(class, predicted, "the predicted class is explained");
        let a = flat(&e["attributions"]);
        assert_eq!(a.len(), 784);
        // Completeness: Σ attributions = f(x) − f(baseline), within 5 %.
        let sum: f64 = a.iter().map(|&v| v as f64).sum();
        let delta = e["score"].as_f64().unwrap() - e["baseline_score"].as_f64().unwrap();
        let gap = (sum - delta).abs() / delta.abs().max(1e-6);
        worst_gap = worst_gap.max(gap);
        assert!(gap <= 0.05, "image {i}: Σ attributions {sum} vs f(x) − f(0) {delta}");
        assert!((e["convergence_delta"].as_f64().unwrap() - (sum - delta)).abs() < 1e-3);
        let mut order: Vec<usize> = (0..784).collect();
        order.sort_by(|&p, &q| a[q].total_cmp(&a[p]));
        let mut zeroed = images[i].clone();
        order.iter().take(ZEROED).for_each(|&p| zeroed[p] = 0.0);
        top.push(zeroed);
        let mut ink: Vec<usize> = (0..784).filter(|&p| images[i][p] > 0.0).collect();
        let mut zeroed = images[i].clone();
        for _ in 0..ZEROED.min(ink.len()) {
            let k = (next(&mut seed) % ink.len() as u64) as usize;
            zeroed[ink.swap_remove(k)] = 0.0;
        }
        random.push(zeroed);
    }
    let (after_top, after_random) = (probabilities(&s, &top), probabilities(&s, &random));
    let wins = (0..100)
        .filter(|&i| {
            let c = explanations[i]["unit"].as_u64().unwrap() as usize;
            before[i][c] - after_top[i][c] > before[i][c] - after_random[i][c]
        })
        .count();
    println!("top-attributed beat random ink on {wins}/100 images; worst completeness gap {worst_gap:.4}");
    assert!(wins >= 90, "only {wins}/100");
}

#[test]
fn v2_explain_saliency_occlusion_and_bad_parameters() {
    let s = TestServer::with_mnist();
    let (raw, _) = test_images(2);
    let data: Vec<f32> = raw.iter().flatten().map(|&p| p as f32).collect();
    let body = |params: Value| {
        json!({"id": "e1", "inputs": [{"name": "input", "shape": [2, 28, 28], "datatype": "FP32", "data": data}],
            "parameters": params})
        .to_string()
    };
    let (code, v2) = s.post("/v2/models/mnist/explain", body(json!({"method": "saliency"})).as_bytes());
    assert_eq!(code, 200, "{v2}");
    assert_eq!(v2["id"], "e1");
    assert_eq!(v2["parameters"]["method"], "saliency");
    assert_eq!(v2["outputs"][0]["name"], "input_attributions");
    assert_eq!(v2["outputs"][0]["shape"], json!([2, 28, 28]));
    assert!(v2["outputs"][0]["data"].as_array().unwrap().iter().all(|v| v.as_f64().unwrap() >= 0.0));
    let per_row: Value = serde_json::from_str(v2["parameters"]["explanations"].as_str().unwrap()).unwrap();
    assert_eq!(per_row.as_array().unwrap().len(), 2);

    let (code, occ) =
        s.post("/v2/models/mnist/versions/1/explain", body(json!({"method": "occlusion", "target": 3})).as_bytes());
    assert_eq!(code, 200, "{occ}");
    assert_eq!(occ["outputs"][1]["data"], json!([3, 3]));

    let bad = [
        (json!({"method": "shap"}), "expected integrated_gradients, saliency or occlusion"),
        (json!({"steps": 100000}), "parameters.steps: expected 1 to 256"),
        (json!({"target": "eleven"}), "unknown class \"eleven\""),
        (json!({"target": 10}), "class index 10 of 10 classes"),
        (json!({"colour": 1}), "unknown key \"colour\""),
    ];
    for (params, message) in bad {
        let (code, e) = s.post("/v2/models/mnist/explain", body(params.clone()).as_bytes());
        assert_eq!(code, 400, "{params}: {e}");
        assert!(e["error"].as_str().unwrap().contains(message), "{params}: {e}");
    }
    let (code, e) =
        s.post("/v1/models/mnist:explain", json!({"instances": [[1.0]], "parameters": 3}).to_string().as_bytes());
    assert_eq!(code, 400, "{e}");
}

#[test]
fn busy_explanations_are_429_and_the_rest_answer() {
    let s = TestServer::with_mnist();
    let (raw, _) = test_images(64);
    let instances: Vec<Vec<Vec<u8>>> = raw.iter().map(|im| im.chunks(28).map(|r| r.to_vec()).collect()).collect();
    let body = json!({ "instances": instances, "parameters": {"steps": 256} }).to_string();
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..24).map(|_| scope.spawn(|| s.post("/v1/models/mnist:explain", body.as_bytes()).0)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(codes.iter().all(|&c| c == 200 || c == 429), "{codes:?}");
    assert!(codes.contains(&429), "24 costly explanations at once against 1 thread and 8 places: {codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
}
