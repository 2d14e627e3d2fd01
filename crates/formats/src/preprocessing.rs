use serde::{Deserialize, Serialize};

/// Preprocessing with its fitted statistics, stored in a version and applied to every raw
/// sample before the first layer, in training, evaluation and prediction alike.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Preprocessing {
    /// Raw values are used as they are.
    #[default]
    None,
    /// Every value is divided by `divisor`.
    Rescale {
        /// The divisor.
        divisor: f32,
    },
    /// `(x - mean[i]) / std[i]` per feature, statistics from the training split.
    Standardize {
        /// Per-feature means.
        mean: Vec<f32>,
        /// Per-feature standard deviations (never zero).
        std: Vec<f32>,
    },
}

impl Preprocessing {
    /// Fits standardisation statistics on row-major samples of `features` values each.
    /// Constant features get a standard deviation of 1 so that they map to 0.
    pub fn fit_standardize(samples: &[f32], features: usize) -> Preprocessing {
        let n = (samples.len() / features.max(1)).max(1) as f64;
        let mut mean = vec![0f64; features];
        let mut sq = vec![0f64; features];
        for row in samples.chunks_exact(features) {
            for (j, &x) in row.iter().enumerate() {
                mean[j] += x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        for row in samples.chunks_exact(features) {
            for (j, &x) in row.iter().enumerate() {
                let d = x as f64 - mean[j];
                sq[j] += d * d;
            }
        }
        let std = sq
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-12 {
                    sd as f32
                } else {
                    1.0
                }
            })
            .collect();
        Preprocessing::Standardize { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }

    /// Applies the preprocessing in place to row-major samples of `features` values each.
    pub fn apply(&self, samples: &mut [f32], features: usize) {
        match self {
            Preprocessing::None => {}
            Preprocessing::Rescale { divisor } => {
                samples.iter_mut().for_each(|x| *x /= divisor);
            }
            Preprocessing::Standardize { mean, std } => {
                for row in samples.chunks_exact_mut(features) {
                    for ((x, m), s) in row.iter_mut().zip(mean).zip(std) {
                        *x = (*x - m) / s;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardize_maps_training_data_to_zero_mean_unit_variance() {
        let data = [1.0, 10.0, 3.0, 10.0, 5.0, 10.0];
        let p = Preprocessing::fit_standardize(&data, 2);
        let mut x = data;
        p.apply(&mut x, 2);
        let col0: Vec<f32> = x.iter().step_by(2).copied().collect();
        let mean: f32 = col0.iter().sum::<f32>() / 3.0;
        let var: f32 = col0.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "{col0:?}");
        assert!(x.iter().skip(1).step_by(2).all(|v| *v == 0.0), "constant column maps to 0");
    }

    #[test]
    fn rescale_divides() {
        let mut x = [255.0, 0.0, 51.0];
        Preprocessing::Rescale { divisor: 255.0 }.apply(&mut x, 3);
        assert_eq!(x, [1.0, 0.0, 0.2]);
    }
}
