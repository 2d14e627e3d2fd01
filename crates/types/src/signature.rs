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
