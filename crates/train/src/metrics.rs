//! Classification metrics: accuracy, per-class and macro precision/recall/F1, confusion matrix.

use lathe_formats::{ClassMetrics, Evaluation};
use lathe_sequential::{Network, Rng, Workspace};

use crate::loss::{predicted_class, Loss};

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
        accuracy: ratio(correct, n),
        macro_precision: mean(|c| c.precision),
        macro_recall: mean(|c| c.recall),
        macro_f1: mean(|c| c.f1),
        per_class,
        confusion,
    }
}

/// Runs `net` in inference mode over preprocessed samples and evaluates it.
pub fn evaluate(net: &Network, x: &[f32], labels: &[u32], loss: &Loss, class_names: &[String]) -> Evaluation {
    let len = net.input_len();
    let width = net.output_len();
    let mut ws = Workspace::default();
    let mut rng = Rng::new(0);
    let mut predicted = Vec::with_capacity(labels.len());
    let mut loss_sum = 0.0;
    for (xc, yc) in x.chunks(EVAL_CHUNK * len).zip(labels.chunks(EVAL_CHUNK)) {
        let out = net.forward(xc, yc.len(), &mut ws, false, &mut rng);
        loss_sum += loss.evaluate(out, yc, width, None).sum;
        predicted.extend(out.chunks_exact(width).map(|r| predicted_class(r) as u32));
    }
    evaluation_from_predictions(labels, &predicted, class_names, loss_sum)
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
        assert!((e.accuracy - 4.0 / 6.0).abs() < 1e-12);
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
        assert!((e.macro_precision - (1.0 + 0.5 + 0.5) / 3.0).abs() < 1e-12);
        assert!((e.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn never_predicted_class_has_zero_precision_not_nan() {
        let names: Vec<String> = ["x", "y"].iter().map(|s| s.to_string()).collect();
        let e = evaluation_from_predictions(&[0, 1], &[0, 0], &names, 0.0);
        assert_eq!(e.per_class[1].precision, 0.0);
        assert_eq!(e.per_class[1].f1, 0.0);
    }
}
