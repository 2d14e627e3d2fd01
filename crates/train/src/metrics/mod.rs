//! Classification metrics (accuracy, per-class and macro precision/recall/F1, confusion
//! matrix; ROC AUC and log loss for two classes) and regression metrics (MAE, RMSE, R² per
//! target and overall).

use lathe_formats::spec::Activation;
use lathe_formats::{ClassMetrics, Evaluation, TargetScaling};
use lathe_sequential::{Network, Rng, Workspace};

use crate::loss::{predicted_class, Loss};

mod binary;
mod regression;

pub use binary::{log_loss, roc_auc};
pub use regression::regression_evaluation;

/// What the outputs of a model are, for scoring them.
#[derive(Debug, Clone, Copy)]
pub enum Truths<'a> {
    /// Class names, indexed by output unit; truths are class indices.
    Classes(&'a [String]),
    /// Regression targets in output order; truths and outputs are standardised values.
    Targets(&'a [TargetScaling]),
}

/// Samples per forward pass during evaluation.
const EVAL_CHUNK: usize = 500;

/// Builds an evaluation from true and predicted class indices and the summed loss.
pub fn evaluation_from_predictions(
    truth: &[u32],
    predicted: &[u32],
    class_names: &[String],
    loss_sum: f64,
) -> Evaluation {
    let k = class_names.len();
    let mut confusion = vec![vec![0u64; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        confusion[t as usize][p as usize] += 1;
    }
    let n = truth.len() as u64;
    let correct: u64 = (0..k).map(|i| confusion[i][i]).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class: Vec<ClassMetrics> = (0..k)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted_c: u64 = (0..k).map(|t| confusion[t][c]).sum();
            let support: u64 = confusion[c].iter().sum();
            let precision = ratio(tp, predicted_c);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 { 0.0 } else { 2.0 * precision * recall / (precision + recall) };
            ClassMetrics { class: class_names[c].clone(), precision, recall, f1, support }
        })
        .collect();
    let mean = |f: fn(&ClassMetrics) -> f64| if k == 0 { 0.0 } else { per_class.iter().map(f).sum::<f64>() / k as f64 };
    Evaluation {
        samples: n,
        loss: if n == 0 { 0.0 } else { loss_sum / n as f64 },
        accuracy: Some(ratio(correct, n)),
        macro_precision: Some(mean(|c| c.precision)),
        macro_recall: Some(mean(|c| c.recall)),
        macro_f1: Some(mean(|c| c.f1)),
        per_class,
        confusion,
        ..Evaluation::default()
    }
}

/// Runs `net` in inference mode over preprocessed samples `x` and evaluates its outputs
/// against `y` (`truths` says what they are: class indices or standardised targets).
pub fn evaluate(net: &Network, x: &[f32], y: &[f32], loss: &Loss, truths: Truths) -> Evaluation {
    let (len, width) = (net.input_len(), net.output_len());
    let y_width = match truths {
        Truths::Classes(_) => 1,
        Truths::Targets(t) => t.len(),
    };
    let mut ws = Workspace::default();
    let mut rng = Rng::new(0);
    let mut outputs = Vec::with_capacity(y.len() / y_width * width);
    let mut loss_sum = 0.0;
    for (xc, yc) in x.chunks(EVAL_CHUNK * len).zip(y.chunks(EVAL_CHUNK * y_width)) {
        let out = net.forward(xc, yc.len() / y_width, &mut ws, false, &mut rng);
        loss_sum += loss.evaluate(out, yc, width, None).sum;
        outputs.extend_from_slice(out);
    }
    match truths {
        Truths::Targets(targets) => regression_evaluation(&outputs, y, targets, loss_sum),
        Truths::Classes(class_names) => {
            let labels: Vec<u32> = y.iter().map(|&c| c as u32).collect();
            let predicted: Vec<u32> = outputs.chunks_exact(width).map(|r| predicted_class(r) as u32).collect();
            let mut e = evaluation_from_predictions(&labels, &predicted, class_names, loss_sum);
            if class_names.len() == 2 {
                let final_activation = net.final_activation().unwrap_or(Activation::Linear);
                let p: Vec<f64> =
                    outputs.chunks_exact(width).map(|r| binary::positive_probability(r, final_activation)).collect();
                e.roc_auc = roc_auc(&p, &labels);
                e.log_loss = Some(log_loss(&p, &labels));
            }
            e
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_computed_case() {
        // truth:     a a a b b c
        // predicted: a a b b c c
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let e = evaluation_from_predictions(&[0, 0, 0, 1, 1, 2], &[0, 0, 1, 1, 2, 2], &names, 3.0);
        assert_eq!(e.confusion, vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]);
        assert!((e.accuracy.unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert!((e.loss - 0.5).abs() < 1e-12);
        let a = &e.per_class[0];
        assert_eq!((a.precision, a.support), (1.0, 3));
        assert!((a.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.f1 - 0.8).abs() < 1e-12);
        let b = &e.per_class[1];
        assert_eq!((b.precision, b.recall, b.f1), (0.5, 0.5, 0.5));
        let c = &e.per_class[2];
        assert_eq!((c.precision, c.recall), (0.5, 1.0));
        assert!((c.f1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.macro_precision.unwrap() - (1.0 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((e.macro_f1.unwrap() - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_binary_evaluation_adds_roc_auc_and_log_loss() {
        use lathe_formats::spec::{Activation, LayerSpec, Spec};
        let mut spec = Spec::from_yaml_str(
            "input: {shape: [1]}\nlayers: [{type: dense, units: 2, activation: softmax}]\n\
             compile: {optimizer: adam, loss: sparse_categorical_crossentropy}",
        )
        .unwrap();
        spec.layers[0] = LayerSpec::Dense { units: 2, activation: Activation::Softmax };
        let net = Network::from_spec(&spec, &mut Rng::new(3)).unwrap();
        let names: Vec<String> = ["no", "yes"].iter().map(|s| s.to_string()).collect();
        let loss = Loss::new(spec.compile.loss, Activation::Softmax);
        let e = evaluate(&net, &[-2.0, -1.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 1.0], &loss, Truths::Classes(&names));
        let auc = e.roc_auc.expect("two classes have an AUC");
        assert!(auc == 1.0 || auc == 0.0, "a monotone score separates these perfectly: {auc}");
        assert!((e.log_loss.unwrap() - e.loss).abs() < 1e-6, "log loss is the cross-entropy here");
    }

    #[test]
    fn never_predicted_class_has_zero_precision_not_nan() {
        let names: Vec<String> = ["x", "y"].iter().map(|s| s.to_string()).collect();
        let e = evaluation_from_predictions(&[0, 1], &[0, 0], &names, 0.0);
        assert_eq!(e.per_class[1].precision, 0.0);
        assert_eq!(e.per_class[1].f1, 0.0);
    }
}
