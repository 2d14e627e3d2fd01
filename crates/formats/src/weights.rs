use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Name, e.g. `layers.0.kernel`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

/// Why a weights file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The bytes are not a valid safetensors file.
    #[error("invalid safetensors file: {0}")]
    Invalid(String),
    /// A tensor has another element type than f32.
    #[error("tensor {name}: expected dtype F32, got {dtype}")]
    WrongDtype {
        /// Tensor name.
        name: String,
        /// What the file holds.
        dtype: String,
    },
}

/// Serialises tensors to safetensors bytes, with `metadata` in the header.
pub fn write_weights(
    tensors: &[NamedTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, WeightsError> {
    let views = tensors
        .iter()
        .map(|t| {
            let bytes: &[u8] = bytemuck_f32(&t.data);
            TensorView::new(Dtype::F32, t.shape.clone(), bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| WeightsError::Invalid(format!("{}: {e}", t.name)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, metadata).map_err(|e| WeightsError::Invalid(e.to_string()))
}

/// Reads every tensor of a safetensors file; all must be f32.
pub fn read_weights(bytes: &[u8]) -> Result<Vec<NamedTensor>, WeightsError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Invalid(e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(WeightsError::WrongDtype { name, dtype: format!("{:?}", view.dtype()) });
        }
        let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        out.push(NamedTensor { name, shape: view.shape().to_vec(), data });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Views f32 values as little-endian bytes (every supported target is little-endian).
fn bytemuck_f32(values: &[f32]) -> &[u8] {
    bytemuck::cast_slice(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip() {
        let t = vec![
            NamedTensor { name: "b".into(), shape: vec![2], data: vec![1.5, -2.0] },
            NamedTensor { name: "a".into(), shape: vec![2, 2], data: vec![0.0, 1.0, 2.0, 3.0] },
        ];
        let bytes = write_weights(&t, None).unwrap();
        let back = read_weights(&bytes).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], t[1]);
        assert_eq!(back[1], t[0]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(read_weights(b"not a safetensors file").is_err());
    }
}
