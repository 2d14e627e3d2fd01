//! Every layer's backward pass against central finite differences of the forward pass.
//!
//! Each case builds a small network from a spec, uses the loss `L = Σ r ⊙ y` for a fixed
//! random `r` (so `∂L/∂y = r`), and compares every parameter gradient with
//! `(L(θ + h) − L(θ − h)) / 2h`. Layers without parameters are checked through the
//! parameters of the layer in front of them, which receive their input gradient.

use lathe_formats::Spec;
use lathe_sequential::{Network, Rng, Workspace};

const H: f32 = 1e-3;

fn network(layers: &str, shape: &str, seed: u64) -> (Spec, Network) {
    let yaml = format!("input: {{shape: {shape}}}\nlayers:\n{layers}\ncompile: {{optimizer: sgd, loss: mse}}\n");
    let spec = Spec::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let net = Network::from_spec(&spec, &mut Rng::new(seed)).unwrap();
    (spec, net)
}

fn loss(net: &Network, x: &[f32], n: usize, r: &[f32]) -> f64 {
    let mut ws = Workspace::default();
    let y = net.forward(x, n, &mut ws, true, &mut Rng::new(99));
    y.iter().zip(r).map(|(a, b)| (*a as f64) * (*b as f64)).sum()
}

fn check(layers: &str, shape: &str, n: usize) {
    let (_, mut net) = network(layers, shape, 3);
    let mut rng = Rng::new(11);
    let x: Vec<f32> = (0..n * net.input_len()).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
    let r: Vec<f32> = (0..n * net.output_len()).map(|_| rng.next_f32() * 2.0 - 1.0).collect();

    let mut ws = Workspace::default();
    net.forward(&x, n, &mut ws, true, &mut Rng::new(99));
    net.output_grad(&mut ws).copy_from_slice(&r);
    let mut grads = net.zero_gradients();
    net.backward(&x, &mut ws, &mut grads, false);
    let analytic: Vec<Vec<f32>> = grads.per_layer.into_iter().flatten().collect();

    let tensors = net.tensors();
    let mut checked = 0;
    for (ti, t) in tensors.iter().enumerate() {
        if t.name.ends_with("moving_mean") || t.name.ends_with("moving_variance") {
            continue;
        }
        for (j, &a) in analytic[ti].iter().enumerate() {
            let mut plus = tensors.clone();
            plus[ti].data[j] += H;
            net.load_tensors(&plus).unwrap();
            let lp = loss(&net, &x, n, &r);
            let mut minus = tensors.clone();
            minus[ti].data[j] -= H;
            net.load_tensors(&minus).unwrap();
            let lm = loss(&net, &x, n, &r);
            let numeric = (lp - lm) / (2.0 * H as f64);
            let a = a as f64;
            let tol = 2e-2 * numeric.abs().max(a.abs()).max(1.0);
            assert!((numeric - a).abs() <= tol, "{}[{j}]: analytic {a}, numeric {numeric} (layers:\n{layers})", t.name);
            checked += 1;
        }
    }
    net.load_tensors(&tensors).unwrap();
    assert!(checked > 0);
}

#[test]
fn dense_with_each_activation() {
    for act in ["linear", "sigmoid", "tanh", "gelu", "softmax", "relu", "leaky_relu"] {
        check(
            &format!(
                "  - {{type: dense, units: 5, activation: {act}}}\n  - {{type: dense, units: 3, activation: tanh}}"
            ),
            "[4]",
            3,
        );
    }
}

#[test]
fn flatten_and_activation_layers() {
    check(
        "  - {type: conv2d, filters: 2, kernel: 2}\n  - {type: activation, activation: tanh}\n  - {type: flatten}\n  \
            - {type: dense, units: 3}\n  - {type: activation, activation: softmax}",
        "[4, 4, 1]",
        2,
    );
}

#[test]
fn conv2d_valid_same_and_strided() {
    check(
        "  - {type: conv2d, filters: 3, kernel: 3, activation: tanh}\n  - {type: flatten}\n  - {type: dense, units: 2}",
        "[5, 5, 2]",
        2,
    );
    check(
        "  - {type: conv2d, filters: 2, kernel: [3, 2], stride: 2, padding: same, activation: sigmoid}\n  - \
        {type: conv2d, filters: 2, kernel: 2, padding: same}\n  - {type: flatten}",
        "[5, 6, 1]",
        2,
    );
}

#[test]
fn pools() {
    check(
        "  - {type: conv2d, filters: 2, kernel: 2}\n  - {type: max_pool2d}\n  - {type: flatten}\n  - \
        {type: dense, units: 2}",
        "[7, 7, 1]",
        2,
    );
    check(
        "  - {type: conv2d, filters: 2, kernel: 2, padding: same}\n  - \
        {type: avg_pool2d, pool: 3, stride: 2, padding: same}\n  - {type: flatten}\n  - {type: dense, units: 2}",
        "[5, 5, 1]",
        2,
    );
}

#[test]
fn batch_norm_dense_and_conv() {
    check(
        "  - {type: dense, units: 4}\n  - {type: batch_norm}\n  - {type: dense, units: 2, activation: tanh}",
        "[3]",
        6,
    );
    check(
        "  - {type: conv2d, filters: 2, kernel: 2}\n  - {type: batch_norm}\n  - {type: flatten}\n  - \
        {type: dense, units: 2}",
        "[4, 4, 1]",
        3,
    );
}

#[test]
fn dropout_uses_its_mask_in_backward() {
    check("  - {type: dense, units: 6}\n  - {type: dropout, rate: 0.5}\n  - {type: dense, units: 2}", "[3]", 4);
}

#[test]
fn inference_dropout_is_identity_and_batch_norm_uses_moving_statistics() {
    let (_, net) = network("  - {type: dropout, rate: 0.5}\n  - {type: batch_norm, epsilon: 0.001}", "[4]", 1);
    let x = [1.0f32, 2.0, 3.0, 4.0];
    let mut ws = Workspace::default();
    let y = net.forward(&x, 1, &mut ws, false, &mut Rng::new(0));
    let scale = 1.0 / (1.0f32 + 0.001).sqrt();
    for (a, b) in y.iter().zip(&x) {
        assert!((a - b * scale).abs() < 1e-6, "{a} vs {}", b * scale);
    }
}

/// `Network::input_gradients` (inference mode, one output unit) against central differences
/// of the inference forward pass w.r.t. each input value.
fn check_input_gradients(layers: &str, shape: &str, n: usize, unit: usize) {
    let (_, mut net) = network(layers, shape, 5);
    let mut rng = Rng::new(13);
    // Batch norm's inference form with statistics and scales away from their initial 0 and 1.
    let mut tensors = net.tensors();
    for t in tensors.iter_mut() {
        let (lo, span) = match t.name.rsplit('.').next().unwrap() {
            "moving_mean" | "beta" => (-0.5, 1.0),
            "moving_variance" | "gamma" => (0.5, 1.0),
            _ => continue,
        };
        t.data.iter_mut().for_each(|v| *v = lo + span * rng.next_f32());
    }
    net.load_tensors(&tensors).unwrap();
    let x: Vec<f32> = (0..n * net.input_len()).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
    let width = net.output_len();
    let output = |x: &[f32]| -> Vec<f64> {
        let mut ws = Workspace::default();
        let y = net.forward(x, n, &mut ws, false, &mut Rng::new(0));
        y.iter().skip(unit).step_by(width).map(|&v| v as f64).collect()
    };
    let (values, grads) = net.input_gradients(&x, n, &mut Workspace::default(), unit);
    for (a, b) in values.iter().zip(output(&x)) {
        assert!((*a as f64 - b).abs() < 1e-6, "output {a} vs {b}");
    }
    let per = net.input_len();
    for (i, &g) in grads.iter().enumerate() {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[i] += H;
        minus[i] -= H;
        let row = i / per;
        let numeric = (output(&plus)[row] - output(&minus)[row]) / (2.0 * H as f64);
        let tol = 2e-2 * numeric.abs().max((g as f64).abs()).max(0.05);
        assert!((numeric - g as f64).abs() <= tol, "x[{i}]: analytic {g}, numeric {numeric}\n{layers}");
    }
}

#[test]
fn input_gradients_through_softmax_dense_conv_pools_and_inference_batch_norm() {
    let dense = "  - {type: dense, units: 5, activation: tanh}\n  - {type: dropout, rate: 0.5}\n  \
                 - {type: batch_norm}\n  - {type: dense, units: 3, activation: softmax}";
    check_input_gradients(dense, "[4]", 3, 1);
    let conv = "  - {type: conv2d, filters: 2, kernel: 3, padding: same, activation: gelu}\n  \
                - {type: max_pool2d, pool: 2}\n  - {type: flatten}\n  - {type: dense, units: 2, activation: sigmoid}";
    check_input_gradients(conv, "[4, 4, 1]", 2, 0);
}
