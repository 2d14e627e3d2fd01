//! The native engine behind the runtime's contract.

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{GradientResult, LayerReport, Loader, Servable};
use lathe_formats::{Cell, ColumnEncoding, Manifest};
use lathe_types::{ApiError, ErrorKind, Signature, Tensor, TensorData};

use crate::SequentialModel;

/// Platform name reported in model metadata.
pub const PLATFORM: &str = "lathe_native";

impl Servable for SequentialModel {
    fn signature(&self) -> &Signature {
        &self.manifest().signature
    }

    fn preprocesses(&self) -> bool {
        !self.columns().is_empty()
    }

    /// Encodes a table's raw columns (one tensor per column, in signature order) into one
    /// `[n, features]` FP32 tensor: each request is checked on its own (an unseen category or
    /// a missing cell refuses that request alone).
    fn preprocess(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
        if self.columns().is_empty() {
            return Ok(inputs);
        }
        Ok(vec![self.encode_tensors(&inputs)?])
    }

    /// A table's row of known values: each column's fill value, else its most frequent
    /// category, else 0.
    fn warm_up_inputs(&self) -> Option<Vec<Tensor>> {
        if self.columns().is_empty() {
            return None;
        }
        let tensor = |name: &str, data| Tensor { name: name.to_string(), shape: vec![1], data };
        Some(
            self.columns()
                .iter()
                .map(|c| match c {
                    ColumnEncoding::Numeric { name, fill } => tensor(name, TensorData::F32(vec![fill.unwrap_or(0.0)])),
                    ColumnEncoding::Categorical { name, categories, fill, .. } => {
                        let text = fill.clone().or_else(|| categories.first().cloned()).unwrap_or_default();
                        tensor(name, TensorData::Bytes(vec![text.into_bytes()]))
                    }
                })
                .collect(),
        )
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        let encoded;
        let inputs = if !self.columns().is_empty() && inputs.len() == self.columns().len() && !is_encoded(inputs) {
            encoded = [self.encode_tensors(inputs)?];
            &encoded[..]
        } else {
            inputs
        };
        let [input] = inputs else {
            return Err(ApiError::invalid(format!("expected 1 input, got {}", inputs.len())));
        };
        let n = input.rows();
        let values = match &input.data {
            TensorData::F32(v) => std::borrow::Cow::Borrowed(v.as_slice()),
            other => std::borrow::Cow::Owned(
                other.to_f32().ok_or_else(|| ApiError::invalid(format!("input {}: expected numbers", input.name)))?,
            ),
        };
        if values.len() != n * self.input_len() {
            return Err(ApiError::invalid(format!(
                "input {}: {} values for {n} rows, expected {} per row",
                input.name,
                values.len(),
                self.input_len()
            )));
        }
        let out = self.predict(&values, n);
        if out.len() != n * self.output_len() {
            return Err(ApiError::new(ErrorKind::Internal, "the model produced the wrong number of outputs"));
        }
        let outputs = &self.manifest().signature.outputs;
        if !self.targets().is_empty() {
            // A regressor: one `[n]` tensor per target, in signature (= target) order.
            let w = self.output_len();
            return Ok(outputs
                .iter()
                .enumerate()
                .map(|(j, o)| Tensor {
                    name: o.name.clone(),
                    shape: vec![n],
                    data: TensorData::F32(out.iter().skip(j).step_by(w).copied().collect()),
                })
                .collect());
        }
        let name = outputs.first().map(|o| o.name.clone()).unwrap_or_else(|| "outputs".into());
        Ok(vec![Tensor { name, shape: vec![n, self.output_len()], data: TensorData::F32(out) }])
    }

    fn class_names(&self) -> &[String] {
        SequentialModel::class_names(self)
    }

    fn output_gradients(&self, features: &[f32], rows: usize, unit: usize) -> Option<GradientResult> {
        Some(self.raw_output_gradients(features, rows, unit))
    }

    fn feature_layout(&self) -> Option<Vec<(usize, String)>> {
        self.table_layout()
    }

    fn baseline_features(&self) -> Option<Vec<f32>> {
        self.mean_features()
    }

    fn inspect(&self, inputs: &[Tensor]) -> Option<Result<Vec<LayerReport>, ApiError>> {
        let encoded;
        let inputs = if !self.columns().is_empty() && !is_encoded(inputs) {
            match self.encode_tensors(inputs) {
                Ok(t) => encoded = [t],
                Err(e) => return Some(Err(e)),
            }
            &encoded[..]
        } else {
            inputs
        };
        Some(self.layer_reports(inputs))
    }

    fn platform(&self) -> &str {
        PLATFORM
    }
}

/// Name of the tensor [`Servable::preprocess`] makes of a table's columns.
const ENCODED: &str = "encoded_features";

fn is_encoded(inputs: &[Tensor]) -> bool {
    matches!(inputs, [t] if t.name == ENCODED)
}

impl SequentialModel {
    /// One `[n, features]` tensor from one tensor per raw column (signature order).
    fn encode_tensors(&self, inputs: &[Tensor]) -> Result<Tensor, ApiError> {
        let columns = self.columns();
        if inputs.len() != columns.len() {
            return Err(ApiError::invalid(format!("expected {} inputs, got {}", columns.len(), inputs.len())));
        }
        let rows = inputs.first().map_or(0, Tensor::rows);
        let texts: Vec<Option<Vec<&str>>> = inputs
            .iter()
            .map(|t| match &t.data {
                TensorData::Bytes(v) => v
                    .iter()
                    .map(|b| std::str::from_utf8(b))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Some)
                    .map_err(|_| ApiError::invalid(format!("input {:?}: expected UTF-8 text", t.name))),
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        let numbers: Vec<Option<Vec<f32>>> = inputs.iter().map(|t| t.data.to_f32()).collect();
        let x = self
            .encode_cells(rows, |r, c| match (&texts[c], &numbers[c]) {
                (Some(t), _) => Cell::Text(t[r]),
                (None, Some(v)) => Cell::Number(v[r]),
                (None, None) => Cell::Missing,
            })
            .map_err(ApiError::invalid)?;
        Ok(Tensor { name: ENCODED.into(), shape: vec![rows, self.input_len()], data: TensorData::F32(x) })
    }
}

/// Loads `native-sequential` versions.
pub struct SequentialLoader;

impl Loader for SequentialLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        if manifest.kind() != crate::SEQUENTIAL_KIND {
            return Err(format!("model kind {:?} is not served by the sequential engine", manifest.kind()));
        }
        Ok(Arc::new(SequentialModel::load(dir).map_err(|e| e.to_string())?))
    }
}
