//! Drift of live inputs and outputs against a version's training statistics.
//!
//! Per feature, the population stability index over the training bins,
//! `PSI = Σ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)` with live shares `aᵢ` and training shares `eᵢ` (both
//! floored at [`PSI_FLOOR`], so that bins a constant training pixel never filled do not make
//! it infinite), and the two-sample Kolmogorov–Smirnov statistic against the training
//! distribution read from its quantile sketch (piecewise linear between the sketch's points,
//! so within one sketch step, 5 %, of the exact value). The summary score is the mean PSI over
//! features; the alert is raised when it, or the PSI of the outputs, exceeds the threshold
//! (0.2 by default: the usual "significant shift" level of PSI).

use lathe_formats::statistics::{Bins, OutputStatistics, SKETCH_POINTS};
use lathe_formats::TrainingStatistics;
use serde::Serialize;

use crate::WindowSnapshot;

/// Smallest share a bin counts with in PSI.
pub const PSI_FLOOR: f64 = 1e-4;

/// When to raise the alert.
#[derive(Debug, Clone, Copy)]
pub struct DriftConfig {
    /// Alert when the mean PSI of the features (or the outputs' PSI) is above this.
    pub psi_threshold: f64,
    /// Rows the window must hold before an alert can be raised.
    pub min_rows: usize,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { psi_threshold: 0.2, min_rows: 100 }
    }
}

/// Drift of one feature.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    /// Feature name (a column, `colour=red`, or `pixel[r,c]`).
    pub name: String,
    /// Population stability index.
    pub psi: f64,
    /// Kolmogorov–Smirnov statistic.
    pub ks: f64,
    /// Training mean.
    pub training_mean: f64,
    /// Mean in the window.
    pub live_mean: f64,
}

/// Drift of the outputs.
#[derive(Debug, Clone, Serialize)]
pub struct OutputDrift {
    /// PSI of the predicted classes against the training labels' frequencies, or of the first
    /// target against its training sketch.
    pub psi: f64,
    /// Share of each class among the window's predictions (classifiers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub live_frequencies: Vec<f64>,
}

/// The drift of a window.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    /// Rows measured.
    pub rows: usize,
    /// Mean PSI over the features.
    pub score: f64,
    /// Whether the score or the outputs' PSI is above the threshold (with enough rows).
    pub alert: bool,
    /// The threshold.
    pub psi_threshold: f64,
    /// Features whose PSI is above the threshold.
    pub drifted_features: usize,
    /// Every feature, largest PSI first.
    pub features: Vec<FeatureDrift>,
    /// The outputs' drift.
    pub outputs: Option<OutputDrift>,
}

/// Measures `window` against `stats`. `names` names the features (missing names become
/// `feature[i]`).
pub fn measure(
    stats: &TrainingStatistics,
    window: &WindowSnapshot,
    names: &[String],
    config: &DriftConfig,
) -> DriftReport {
    let rows = window.features.len();
    let mut features: Vec<FeatureDrift> = stats
        .features
        .iter()
        .enumerate()
        .map(|(j, f)| {
            let mut live: Vec<f32> = window.features.iter().filter_map(|r| r.get(j).copied()).collect();
            live.retain(|v| v.is_finite());
            let live_mean = live.iter().map(|&v| v as f64).sum::<f64>() / live.len().max(1) as f64;
            // No rows: nothing has drifted yet.
            let psi = if live.is_empty() { 0.0 } else { psi(&f.bins, &live) };
            live.sort_by(f32::total_cmp);
            let ks = ks(&f.quantiles, &live);
            let name = names.get(j).cloned().unwrap_or_else(|| format!("feature[{j}]"));
            FeatureDrift { name, psi, ks, training_mean: f.mean, live_mean }
        })
        .collect();
    let score = features.iter().map(|f| f.psi).sum::<f64>() / features.len().max(1) as f64;
    features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    let drifted_features = features.iter().filter(|f| f.psi > config.psi_threshold).count();
    let outputs = (rows > 0).then(|| output_drift(&stats.outputs, window));
    let output_alert = outputs.as_ref().is_some_and(|o| o.psi > config.psi_threshold);
    let alert = rows >= config.min_rows && (score > config.psi_threshold || output_alert);
    DriftReport { rows, score, alert, psi_threshold: config.psi_threshold, drifted_features, features, outputs }
}

/// PSI of `live` values over training `bins`.
pub fn psi(bins: &Bins, live: &[f32]) -> f64 {
    let mut counts = vec![0f64; bins.fractions.len()];
    for &v in live {
        counts[bins.index(v)] += 1.0;
    }
    let n = live.len().max(1) as f64;
    counts.iter().zip(&bins.fractions).map(|(&c, &e)| psi_term(c / n, e)).sum()
}

fn psi_term(a: f64, e: f64) -> f64 {
    let (a, e) = (a.max(PSI_FLOOR), e.max(PSI_FLOOR));
    (a - e) * (a / e).ln()
}

/// The training CDF at `v` from the sketch; `strict`: P(X < v) rather than P(X ≤ v).
fn sketch_cdf(q: &[f32], v: f32, strict: bool) -> f64 {
    let step = 1.0 / (q.len().max(2) - 1) as f64;
    let below = |x: f32| if strict { x < v } else { x <= v };
    let Some(i) = q.iter().rposition(|&x| below(x)) else { return 0.0 };
    if i + 1 == q.len() {
        return 1.0;
    }
    let (lo, hi) = (q[i], q[i + 1]);
    let within = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) as f64 } else { 0.0 };
    (i as f64 + within) * step
}

/// KS statistic of sorted `live` values against the sketch `q`.
pub fn ks(q: &[f32], live: &[f32]) -> f64 {
    let n = live.len();
    if n == 0 || q.len() != SKETCH_POINTS {
        return 0.0;
    }
    let mut d: f64 = 0.0;
    let mut i = 0;
    while i < n {
        let v = live[i];
        let mut j = i;
        while j < n && live[j] == v {
            j += 1;
        }
        let (left, right) = (i as f64 / n as f64, j as f64 / n as f64);
        d = d.max((left - sketch_cdf(q, v, true)).abs()).max((right - sketch_cdf(q, v, false)).abs());
        i = j;
    }
    d
}

fn output_drift(stats: &OutputStatistics, window: &WindowSnapshot) -> OutputDrift {
    match stats {
        OutputStatistics::Classes { frequencies, .. } => {
            let mut counts = vec![0f64; frequencies.len()];
            for o in &window.outputs {
                if let Some(c) = o.first().and_then(|&c| counts.get_mut(c as usize)) {
                    *c += 1.0;
                }
            }
            let n = window.outputs.len().max(1) as f64;
            let live: Vec<f64> = counts.iter().map(|c| c / n).collect();
            let psi = live.iter().zip(frequencies).map(|(&a, &e)| psi_term(a, e)).sum();
            OutputDrift { psi, live_frequencies: live }
        }
        OutputStatistics::Targets { quantiles, .. } => {
            let Some(q) = quantiles.first() else {
                return OutputDrift { psi: 0.0, live_frequencies: Vec::new() };
            };
            let live: Vec<f32> = window.outputs.iter().filter_map(|o| o.first().copied()).collect();
            OutputDrift { psi: psi(&sketch_bins(q), &live), live_frequencies: Vec::new() }
        }
    }
}

/// Decile bins of a sketch, with the training shares the sketch implies.
fn sketch_bins(q: &[f32]) -> Bins {
    let mut edges: Vec<f32> = (1..10).map(|d| q[(d * 2).min(q.len() - 1)]).collect();
    edges.dedup();
    let mut cdf: Vec<f64> = edges.iter().map(|&e| sketch_cdf(q, e, false)).collect();
    cdf.push(1.0);
    let fractions = cdf.iter().scan(0.0, |prev, &c| Some(c - std::mem::replace(prev, c))).collect();
    Bins { edges, fractions }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(values: &[f32]) -> TrainingStatistics {
        TrainingStatistics::fit(values, 1, TrainingStatistics::class_outputs(&[], std::iter::empty()))
    }

    fn window_of(values: &[f32]) -> WindowSnapshot {
        WindowSnapshot {
            features: values.iter().map(|&v| vec![v].into()).collect(),
            outputs: values.iter().map(|_| vec![].into()).collect(),
            seen: values.len() as u64,
        }
    }

    fn normal(n: usize, shift: f32) -> Vec<f32> {
        // Evenly spaced quantiles of N(shift, 1), by the logistic approximation of its inverse.
        (0..n)
            .map(|i| {
                let p = (i as f32 + 0.5) / n as f32;
                shift + (p / (1.0 - p)).ln() / 1.702
            })
            .collect()
    }

    #[test]
    fn the_same_distribution_is_stable_and_a_shift_of_one_std_is_not() {
        let stats = stats_of(&normal(5000, 0.0));
        let f = &stats.features[0];
        let same = normal(1000, 0.0);
        assert!(psi(&f.bins, &same) < 0.01, "{}", psi(&f.bins, &same));
        assert!(ks(&f.quantiles, &same) < 0.06);
        let shifted = normal(1000, 1.0);
        assert!(psi(&f.bins, &shifted) > 0.5, "{}", psi(&f.bins, &shifted));
        let mut sorted = shifted.clone();
        sorted.sort_by(f32::total_cmp);
        let d = ks(&f.quantiles, &sorted);
        // The exact KS distance of N(0,1) and N(1,1) is 2Φ(0.5) − 1 ≈ 0.383.
        assert!((d - 0.383).abs() < 0.06, "{d}");
    }

    #[test]
    fn an_empty_window_has_not_drifted() {
        let stats = stats_of(&normal(500, 0.0));
        let report = measure(&stats, &window_of(&[]), &[], &DriftConfig::default());
        assert_eq!((report.rows, report.score, report.alert), (0, 0.0, false));
        assert!(report.outputs.is_none());
    }

    #[test]
    fn a_constant_training_pixel_gives_a_finite_psi() {
        let stats = stats_of(&vec![0.0; 500]);
        let report = measure(&stats, &window_of(&[0.0; 200]), &[], &DriftConfig::default());
        assert_eq!(report.score, 0.0);
        assert!(!report.alert);
        let mut some_ink = vec![0.0; 198];
        some_ink.extend([0.5, 0.7]);
        let p = psi(&stats.features[0].bins, &some_ink);
        assert!(p.is_finite() && p < 0.1, "{p}");
    }

    #[test]
    fn the_alert_needs_enough_rows() {
        let stats = stats_of(&normal(2000, 0.0));
        let config = DriftConfig::default();
        assert!(!measure(&stats, &window_of(&normal(50, 3.0)), &[], &config).alert);
        let report = measure(&stats, &window_of(&normal(200, 3.0)), &["x".into()], &config);
        assert!(report.alert);
        assert_eq!(report.features[0].name, "x");
    }
}
