//! The native engine behind the runtime's contract.

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{Loader, Servable};
use lathe_formats::Manifest;
use lathe_types::{ApiError, ErrorKind, Signature, Tensor, TensorData};

use crate::SequentialModel;

/// Platform name reported in model metadata.
pub const PLATFORM: &str = "lathe_native";

impl Servable for SequentialModel {
    fn signature(&self) -> &Signature {
        &self.manifest().signature
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
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

    fn platform(&self) -> &str {
        PLATFORM
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
