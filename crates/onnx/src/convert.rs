//! Lathe tensors to tract tensors and back, element type for element type (FP16 travels as
//! raw IEEE half bits on Lathe's side).

use lathe_types::{DType, Tensor, TensorData};
use tract_onnx::prelude::{f16, Datum, DatumType, TDim, Tensor as TractTensor, TractResult};

use crate::error::OnnxError;

/// Lathe's element type for a tract one (TDim, tract's symbolic integers, travel as INT64);
/// `None` for types Lathe does not carry.
pub fn dtype_of(d: DatumType) -> Option<DType> {
    Some(match d {
        DatumType::Bool => DType::Bool,
        DatumType::U8 => DType::U8,
        DatumType::U16 => DType::U16,
        DatumType::U32 => DType::U32,
        DatumType::U64 => DType::U64,
        DatumType::I8 => DType::I8,
        DatumType::I16 => DType::I16,
        DatumType::I32 => DType::I32,
        DatumType::I64 | DatumType::TDim => DType::I64,
        DatumType::F16 => DType::F16,
        DatumType::F32 => DType::F32,
        DatumType::F64 => DType::F64,
        _ => return None,
    })
}

/// A Lathe tensor as a tract tensor of the same shape and type.
///
/// # Errors
/// BYTES tensors, and data that does not fill the shape.
pub fn to_tract(t: &Tensor) -> Result<TractTensor, OnnxError> {
    let shape = &t.shape;
    let made = match &t.data {
        TensorData::Bool(v) => TractTensor::from_shape(shape, v),
        TensorData::U8(v) => TractTensor::from_shape(shape, v),
        TensorData::U16(v) => TractTensor::from_shape(shape, v),
        TensorData::U32(v) => TractTensor::from_shape(shape, v),
        TensorData::U64(v) => TractTensor::from_shape(shape, v),
        TensorData::I8(v) => TractTensor::from_shape(shape, v),
        TensorData::I16(v) => TractTensor::from_shape(shape, v),
        TensorData::I32(v) => TractTensor::from_shape(shape, v),
        TensorData::I64(v) => TractTensor::from_shape(shape, v),
        TensorData::F16(v) => {
            let halves: Vec<f16> = v.iter().map(|&b| f16::from_bits(b)).collect();
            TractTensor::from_shape(shape, &halves)
        }
        TensorData::F32(v) => TractTensor::from_shape(shape, v),
        TensorData::F64(v) => TractTensor::from_shape(shape, v),
        TensorData::Bytes(_) => return Err(OnnxError::Run(format!("input {:?}: BYTES is not an ONNX type", t.name))),
    };
    made.map_err(|e| OnnxError::Run(format!("input {:?}: {}", t.name, crate::error::chain(&e))))
}

/// A tract tensor as a Lathe tensor named `name` (TDim values become INT64).
///
/// # Errors
/// Element types Lathe does not carry.
pub fn from_tract(name: &str, t: &TractTensor) -> Result<Tensor, OnnxError> {
    let unreadable = |e: tract_onnx::prelude::TractError| OnnxError::Run(format!("output {name:?}: {e:#}"));
    macro_rules! plain {
        ($variant:ident, $ty:ty) => {
            TensorData::$variant(values::<$ty>(t).map_err(unreadable)?)
        };
    }
    let data = match t.datum_type() {
        DatumType::Bool => plain!(Bool, bool),
        DatumType::U8 => plain!(U8, u8),
        DatumType::U16 => plain!(U16, u16),
        DatumType::U32 => plain!(U32, u32),
        DatumType::U64 => plain!(U64, u64),
        DatumType::I8 => plain!(I8, i8),
        DatumType::I16 => plain!(I16, i16),
        DatumType::I32 => plain!(I32, i32),
        DatumType::I64 => plain!(I64, i64),
        DatumType::TDim => {
            let dims = values::<TDim>(t).map_err(unreadable)?;
            let values: Option<Vec<i64>> = dims.iter().map(TDim::as_i64).collect();
            TensorData::I64(values.ok_or_else(|| OnnxError::Run(format!("output {name:?}: unresolved dimension")))?)
        }
        DatumType::F16 => TensorData::F16(values::<f16>(t).map_err(unreadable)?.iter().map(|h| h.to_bits()).collect()),
        DatumType::F32 => plain!(F32, f32),
        DatumType::F64 => plain!(F64, f64),
        other => return Err(OnnxError::Run(format!("output {name:?}: type {other:?} is not served"))),
    };
    Ok(Tensor { name: name.to_string(), shape: t.shape().to_vec(), data })
}

/// A tensor's elements, copied out of its memory.
fn values<T: Datum + Clone>(t: &TractTensor) -> TractResult<Vec<T>> {
    Ok(t.try_as_plain_ram()?.as_slice::<T>()?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_type_goes_there_and_back() {
        let cases = vec![
            TensorData::Bool(vec![true, false]),
            TensorData::U8(vec![1, 255]),
            TensorData::I8(vec![-128, 7]),
            TensorData::I64(vec![i64::MIN, 3]),
            TensorData::U64(vec![u64::MAX, 0]),
            TensorData::F16(vec![0x3c00, 0xc000]),
            TensorData::F32(vec![1.5, -2.0]),
            TensorData::F64(vec![1e300, -0.0]),
        ];
        for data in cases {
            let t = Tensor { name: "x".into(), shape: vec![2, 1], data };
            let back = from_tract("x", &to_tract(&t).unwrap()).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn bytes_and_short_data_are_refused() {
        let bytes = Tensor { name: "s".into(), shape: vec![1], data: TensorData::Bytes(vec![b"a".to_vec()]) };
        assert!(to_tract(&bytes).unwrap_err().to_string().contains("BYTES"));
        let short = Tensor { name: "x".into(), shape: vec![2, 2], data: TensorData::F32(vec![1.0]) };
        assert!(to_tract(&short).unwrap_err().to_string().contains("input \"x\""));
    }
}
