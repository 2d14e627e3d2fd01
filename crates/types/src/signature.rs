use serde::{Deserialize, Serialize};

use crate::DType;

/// Name, element type and shape of one input or output tensor; `-1` marks a variable
/// dimension (the batch dimension is always the first and always `-1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSignature {
    /// Tensor name as clients address it.
    pub name: String,
    /// Element type.
    pub datatype: DType,
    /// Shape, batch dimension first.
    pub shape: Vec<i64>,
}

/// The inputs and outputs a model version accepts and produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Input tensors, in order.
    pub inputs: Vec<TensorSignature>,
    /// Output tensors, in order.
    pub outputs: Vec<TensorSignature>,
}

impl Signature {
    /// Index of the output holding a classifier's scores: the first floating-point output of
    /// shape `[-1, k]`, with k = `classes` when given, else k ≥ 2 (a scikit-learn graph's
    /// `probabilities` after its `label`, say).
    pub fn scores_output(&self, classes: Option<usize>) -> Option<usize> {
        self.outputs.iter().position(|o| {
            let float = matches!(o.datatype, crate::DType::F16 | crate::DType::F32 | crate::DType::F64);
            let width = o.shape.get(1).copied().unwrap_or(0);
            let fits = classes.map_or(width >= 2, |k| width == k as i64);
            float && o.shape.len() == 2 && fits
        })
    }
}
