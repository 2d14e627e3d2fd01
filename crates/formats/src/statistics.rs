//! Training statistics of a version's inputs and outputs: the reference live traffic is
//! compared with to measure drift. Written at training time as `statistics.json`, one of the
//! version's checksummed files.
//!
//! Per input feature (for images, per pixel): mean, standard deviation, minimum, maximum, a
//! quantile sketch (the 0 %, 5 %, …, 100 % quantiles) and the population-stability bins (cut at
//! the deciles, equal cut points merged) with the share of training values in each. The PSI
//! and KS statistics of the server's monitoring are computed against these.

use serde::{Deserialize, Serialize};

/// File name of the statistics inside a version folder.
pub const STATISTICS_FILE: &str = "statistics.json";

/// Quantiles in the sketch: 0 %, 5 %, …, 100 %.
pub const SKETCH_POINTS: usize = 21;

/// Rows the quantiles and bins are fitted on at most (evenly spaced over the split); the mean,
/// standard deviation, minimum and maximum use every row.
pub const SKETCH_ROWS: usize = 10_000;

/// What the version was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingStatistics {
    /// Training rows the statistics describe.
    pub rows: u64,
    /// One entry per network input feature (after a table's column encoding, before scaling).
    pub features: Vec<FeatureStatistics>,
    /// The outputs the model was trained to produce.
    pub outputs: OutputStatistics,
}

/// Statistics of one input feature over the training rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStatistics {
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// The quantile sketch: [`SKETCH_POINTS`] values at levels `i / (SKETCH_POINTS − 1)`.
    pub quantiles: Vec<f32>,
    /// The bins PSI is computed over.
    pub bins: Bins,
}

/// Bins of a feature's values: bin `i` holds `edges[i−1] < v ≤ edges[i]` (the first has no
/// lower bound, the last no upper one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    /// Ascending, distinct cut points.
    pub edges: Vec<f32>,
    /// Share of training values in each bin (`edges.len() + 1` of them, summing to 1).
    pub fractions: Vec<f64>,
}

impl Bins {
    /// The bin `v` falls in.
    pub fn index(&self, v: f32) -> usize {
        self.edges.partition_point(|&e| e < v)
    }
}

/// The outputs a version was trained to produce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputStatistics {
    /// A classifier: the share of each class among the training labels, in output order.
    Classes {
        /// Class names.
        names: Vec<String>,
        /// Shares, summing to 1.
        frequencies: Vec<f64>,
    },
    /// A regressor: the quantile sketch of each target, in its own units.
    Targets {
        /// Target names.
        names: Vec<String>,
        /// One sketch of [`SKETCH_POINTS`] quantiles per target.
        quantiles: Vec<Vec<f32>>,
    },
}

impl TrainingStatistics {
    /// Fits the statistics of `x` (`rows · features` values, row-major, before scaling) with
    /// the given output statistics.
    pub fn fit(x: &[f32], features: usize, outputs: OutputStatistics) -> TrainingStatistics {
        let rows = x.len() / features.max(1);
        let sample = sample_rows(rows);
        let features = (0..features)
            .map(|j| {
                let column = x.iter().skip(j).step_by(features);
                let sampled: Vec<f32> = sample.iter().map(|&r| x[r * features + j]).collect();
                FeatureStatistics::fit(column, sampled)
            })
            .collect();
        TrainingStatistics { rows: rows as u64, features, outputs }
    }

    /// Class frequencies from class indices (`labels`, one per row) of `names.len()` classes.
    pub fn class_outputs(names: &[String], labels: impl Iterator<Item = usize>) -> OutputStatistics {
        let mut counts = vec![0u64; names.len()];
        let mut total = 0u64;
        for c in labels {
            if let Some(n) = counts.get_mut(c) {
                *n += 1;
                total += 1;
            }
        }
        let frequencies = counts.iter().map(|&c| c as f64 / total.max(1) as f64).collect();
        OutputStatistics::Classes { names: names.to_vec(), frequencies }
    }

    /// Target sketches from `values` (`rows · names.len()` values, row-major, in target units).
    pub fn target_outputs(names: &[String], values: &[f32]) -> OutputStatistics {
        let width = names.len().max(1);
        let quantiles =
            (0..names.len()).map(|j| sketch(values.iter().skip(j).step_by(width).copied().collect())).collect();
        OutputStatistics::Targets { names: names.to_vec(), quantiles }
    }
}

impl FeatureStatistics {
    fn fit<'a>(column: impl Iterator<Item = &'a f32>, sampled: Vec<f32>) -> FeatureStatistics {
        let Moments { mean, std, min, max, .. } = Moments::of(column);
        let quantiles = sketch(sampled.clone());
        let bins = fit_bins(&quantiles, &sampled);
        FeatureStatistics { mean, std, min, max, quantiles, bins }
    }
}

/// Count, mean, population standard deviation, minimum and maximum of the finite values, and
/// how many were NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    /// Finite values.
    pub count: u64,
    /// Their mean (0 when there are none).
    pub mean: f64,
    /// Their population standard deviation.
    pub std: f64,
    /// The smallest (`+∞` when there are none).
    pub min: f32,
    /// The largest (`−∞` when there are none).
    pub max: f32,
    /// NaN values.
    pub nan: u64,
    /// Infinite values.
    pub infinite: u64,
}

impl Moments {
    /// The moments of `values`, in one pass.
    pub fn of<'a>(values: impl IntoIterator<Item = &'a f32>) -> Moments {
        let (mut sum, mut sq) = (0f64, 0f64);
        let mut m =
            Moments { count: 0, mean: 0.0, std: 0.0, min: f32::INFINITY, max: f32::NEG_INFINITY, nan: 0, infinite: 0 };
        for &v in values {
            if v.is_nan() {
                m.nan += 1;
            } else if v.is_infinite() {
                m.infinite += 1;
            } else {
                m.count += 1;
                sum += v as f64;
                sq += v as f64 * v as f64;
                m.min = m.min.min(v);
                m.max = m.max.max(v);
            }
        }
        let n = (m.count as f64).max(1.0);
        m.mean = sum / n;
        m.std = (sq / n - m.mean * m.mean).max(0.0).sqrt();
        m
    }
}

/// Row indices evenly spaced over `rows`, at most [`SKETCH_ROWS`] of them.
fn sample_rows(rows: usize) -> Vec<usize> {
    let take = rows.min(SKETCH_ROWS);
    (0..take).map(|i| i * rows / take.max(1)).collect()
}

/// The [`SKETCH_POINTS`] quantiles of `values` (nearest rank); zeros when empty.
pub fn sketch(mut values: Vec<f32>) -> Vec<f32> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return vec![0.0; SKETCH_POINTS];
    }
    values.sort_by(f32::total_cmp);
    let last = values.len() - 1;
    (0..SKETCH_POINTS).map(|i| values[(i * last + (SKETCH_POINTS - 1) / 2) / (SKETCH_POINTS - 1)]).collect()
}

/// Bins cut at the deciles of the sketch (every other point from 10 % to 90 %), equal cut
/// points merged, with the share of `values` in each.
fn fit_bins(quantiles: &[f32], values: &[f32]) -> Bins {
    let mut edges: Vec<f32> = (1..10).map(|d| quantiles[d * 2]).collect();
    edges.dedup();
    let mut bins = Bins { fractions: vec![0.0; edges.len() + 1], edges };
    for &v in values {
        let i = bins.index(v);
        bins.fractions[i] += 1.0;
    }
    let total = values.len().max(1) as f64;
    bins.fractions.iter_mut().for_each(|f| *f /= total);
    bins
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_feature_gets_decile_bins_of_a_tenth_each() {
        let x: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let s = TrainingStatistics::fit(&x, 1, TrainingStatistics::class_outputs(&[], std::iter::empty()));
        let f = &s.features[0];
        assert!((f.mean - 499.5).abs() < 1e-9);
        assert_eq!((f.min, f.max), (0.0, 999.0));
        assert_eq!(f.quantiles.len(), SKETCH_POINTS);
        assert_eq!(f.quantiles[10], 500.0);
        assert_eq!(f.bins.edges.len(), 9);
        for share in &f.bins.fractions {
            assert!((share - 0.1).abs() < 0.002, "{:?}", f.bins.fractions);
        }
    }

    #[test]
    fn a_constant_feature_has_one_cut_and_every_value_in_the_first_bin() {
        let x = vec![0.0f32; 50];
        let s = TrainingStatistics::fit(&x, 1, TrainingStatistics::target_outputs(&["y".into()], &x));
        let f = &s.features[0];
        assert_eq!(f.bins.edges, vec![0.0]);
        assert_eq!(f.bins.fractions, vec![1.0, 0.0]);
        assert_eq!(f.std, 0.0);
    }

    #[test]
    fn class_frequencies_sum_to_one() {
        let names = vec!["a".to_string(), "b".to_string()];
        let OutputStatistics::Classes { frequencies, .. } =
            TrainingStatistics::class_outputs(&names, [0, 1, 1, 1].into_iter())
        else {
            panic!("classes")
        };
        assert_eq!(frequencies, vec![0.25, 0.75]);
    }
}
