//! Regression figures in the targets' own units: MAE, RMSE and R² per target and their means.

use lathe_formats::{Evaluation, TargetMetrics, TargetScaling};

/// Scores standardised `outputs` against standardised truths `y` (both `n · targets.len()`),
/// after returning both to the targets' units. `loss_sum` is the summed loss of the samples.
pub fn regression_evaluation(outputs: &[f32], y: &[f32], targets: &[TargetScaling], loss_sum: f64) -> Evaluation {
    let w = targets.len().max(1);
    let n = y.len() / w;
    let per_target: Vec<TargetMetrics> = targets
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let unscale = |v: f32| v as f64 * t.std + t.mean;
            let pred: Vec<f64> = outputs.iter().skip(j).step_by(w).map(|&v| unscale(v)).collect();
            let truth: Vec<f64> = y.iter().skip(j).step_by(w).map(|&v| unscale(v)).collect();
            target_metrics(&t.name, &pred, &truth)
        })
        .collect();
    let mean = |f: fn(&TargetMetrics) -> f64| per_target.iter().map(f).sum::<f64>() / per_target.len().max(1) as f64;
    Evaluation {
        samples: n as u64,
        loss: if n == 0 { 0.0 } else { loss_sum / n as f64 },
        accuracy: None,
        macro_precision: None,
        macro_recall: None,
        macro_f1: None,
        mae: Some(mean(|t| t.mae)),
        rmse: Some(mean(|t| t.rmse)),
        r2: Some(mean(|t| t.r2)),
        per_target,
        ..Evaluation::default()
    }
}

/// MAE, RMSE and R² (1 − SSE/SST; 1 when both are 0, 0 when only SST is) of one target.
fn target_metrics(name: &str, pred: &[f64], truth: &[f64]) -> TargetMetrics {
    let n = truth.len().max(1) as f64;
    let mean = truth.iter().sum::<f64>() / n;
    let (mut abs, mut sse, mut sst) = (0.0, 0.0, 0.0);
    for (&p, &t) in pred.iter().zip(truth) {
        abs += (p - t).abs();
        sse += (p - t) * (p - t);
        sst += (t - mean) * (t - mean);
    }
    let r2 = match (sse == 0.0, sst == 0.0) {
        (true, _) => 1.0,
        (false, true) => 0.0,
        (false, false) => 1.0 - sse / sst,
    };
    TargetMetrics { target: name.to_string(), mae: abs / n, rmse: (sse / n).sqrt(), r2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_in_the_targets_units() {
        let targets = [
            TargetScaling { name: "a".into(), mean: 10.0, std: 2.0 },
            TargetScaling { name: "b".into(), mean: 0.0, std: 1.0 },
        ];
        // standardised truths a: -1, 0, 1 → 8, 10, 12; predictions a: 8, 10, 14 (error 2 on one).
        let y = [-1.0, 1.0, 0.0, 2.0, 1.0, 3.0];
        let out = [-1.0, 1.0, 0.0, 2.0, 2.0, 3.0];
        let e = regression_evaluation(&out, &y, &targets, 6.0);
        let a = &e.per_target[0];
        assert!((a.mae - 2.0 / 3.0).abs() < 1e-12);
        assert!((a.rmse - (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((a.r2 - (1.0 - 4.0 / 8.0)).abs() < 1e-12);
        assert_eq!((e.per_target[1].mae, e.per_target[1].r2), (0.0, 1.0));
        assert!((e.r2.unwrap() - 0.75).abs() < 1e-12);
        assert_eq!((e.samples, e.loss, e.accuracy), (3, 2.0, None));
    }
}
