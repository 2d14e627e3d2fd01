//! What explanations and debugging need from a loaded version: gradients of an output w.r.t.
//! the raw features (the layers' own backward passes, then the preprocessing's), the features'
//! layout and baseline, and each layer's output for one request.

use lathe_engine::{GradientResult, LayerReport};
use lathe_formats::spec::infer_shapes;
use lathe_formats::Preprocessing;
use lathe_types::{ApiError, Tensor};

use crate::{Rng, SequentialModel};

impl SequentialModel {
    /// Output unit `unit` of `rows` raw feature rows and its gradient w.r.t. each raw feature:
    /// the network's input gradient divided by the preprocessing's scale (`divisor`, or the
    /// feature's standard deviation), and for a regressor multiplied by the target's.
    pub(crate) fn raw_output_gradients(&self, features: &[f32], rows: usize, unit: usize) -> GradientResult {
        let len = self.input_len();
        if features.len() != rows * len {
            return Err(ApiError::invalid(format!("expected {rows} x {len} features, got {}", features.len())));
        }
        if unit >= self.output_len() {
            return Err(ApiError::invalid(format!("output unit {unit}: the model has {}", self.output_len())));
        }
        let mut x = features.to_vec();
        let preprocessing = self.preprocessing();
        preprocessing.apply(&mut x, len);
        let mut ws = Default::default();
        let (mut values, mut grads) = self.network().input_gradients(&x, rows, &mut ws, unit);
        match preprocessing {
            Preprocessing::None => {}
            Preprocessing::Rescale { divisor } => grads.iter_mut().for_each(|g| *g /= divisor),
            Preprocessing::Standardize { std, .. } => {
                for row in grads.chunks_exact_mut(len) {
                    row.iter_mut().zip(std).for_each(|(g, s)| *g /= s);
                }
            }
        }
        if let Some(t) = self.targets().get(unit) {
            values.iter_mut().for_each(|v| *v = (*v as f64 * t.std + t.mean) as f32);
            grads.iter_mut().for_each(|g| *g = (*g as f64 * t.std) as f32);
        }
        Ok((values, grads))
    }

    /// For a table whose columns are encoded: per feature, its column's index and its name.
    pub(crate) fn table_layout(&self) -> Option<Vec<(usize, String)>> {
        if self.columns().is_empty() {
            return None;
        }
        let layout = self
            .columns()
            .iter()
            .enumerate()
            .flat_map(|(i, c)| c.feature_names().into_iter().map(move |n| (i, n)))
            .collect();
        Some(layout)
    }

    /// The training means of the features when the model standardises them.
    pub(crate) fn mean_features(&self) -> Option<Vec<f32>> {
        match self.preprocessing() {
            Preprocessing::Standardize { mean, .. } => Some(mean.clone()),
            _ => None,
        }
    }

    /// Runs one request (raw features, preprocessed here) and reports every layer's output and
    /// parameters.
    pub(crate) fn layer_reports(&self, inputs: &[Tensor]) -> Result<Vec<LayerReport>, ApiError> {
        let [input] = inputs else {
            return Err(ApiError::invalid(format!("expected 1 input, got {}", inputs.len())));
        };
        let rows = input.rows();
        let mut x = input
            .data
            .to_f32()
            .ok_or_else(|| ApiError::invalid(format!("input {:?}: expected numbers", input.name)))?;
        let len = self.input_len();
        if x.len() != rows * len {
            return Err(ApiError::invalid(format!("expected {rows} x {len} features, got {}", x.len())));
        }
        self.preprocessing().apply(&mut x, len);
        let shapes =
            infer_shapes(&self.spec.input.shape, &self.spec.layers).map_err(|e| ApiError::invalid(e.message))?;
        let mut ws = Default::default();
        self.network().forward(&x, rows, &mut ws, false, &mut Rng::new(0));
        let params = self.network().layer_parameters();
        let acts = self.network().activations(&ws);
        Ok(self
            .spec
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| LayerReport {
                name: format!("layers[{i}] {}", layer.type_name()),
                output_shape: std::iter::once(rows).chain(shapes[i].iter().copied()).collect(),
                output: acts[i].clone(),
                parameters: params[i].iter().map(|p| (p.name.to_string(), p.shape.clone(), p.value.clone())).collect(),
            })
            .collect())
    }
}
