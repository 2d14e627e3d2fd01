//! Owned tensors at the API edge: a name, a shape and typed row-major data.

use crate::DType;

/// Typed, row-major tensor values.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// BOOL.
    Bool(Vec<bool>),
    /// UINT8.
    U8(Vec<u8>),
    /// UINT16.
    U16(Vec<u16>),
    /// UINT32.
    U32(Vec<u32>),
    /// UINT64.
    U64(Vec<u64>),
    /// INT8.
    I8(Vec<i8>),
    /// INT16.
    I16(Vec<i16>),
    /// INT32.
    I32(Vec<i32>),
    /// INT64.
    I64(Vec<i64>),
    /// FP16, as raw IEEE half bits.
    F16(Vec<u16>),
    /// FP32.
    F32(Vec<f32>),
    /// FP64.
    F64(Vec<f64>),
    /// BYTES, one byte string per element.
    Bytes(Vec<Vec<u8>>),
}

macro_rules! each {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// IEEE 754 binary16 bits as f32 (exact).
fn f16_to_f32(bits: u16) -> f32 {
    half::f16::from_bits(bits).to_f32()
}

macro_rules! per_variant {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::U8($v) => TensorData::U8($body),
            TensorData::U16($v) => TensorData::U16($body),
            TensorData::U32($v) => TensorData::U32($body),
            TensorData::U64($v) => TensorData::U64($body),
            TensorData::I8($v) => TensorData::I8($body),
            TensorData::I16($v) => TensorData::I16($body),
            TensorData::I32($v) => TensorData::I32($body),
            TensorData::I64($v) => TensorData::I64($body),
            TensorData::F16($v) => TensorData::F16($body),
            TensorData::F32($v) => TensorData::F32($body),
            TensorData::F64($v) => TensorData::F64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}

impl TensorData {
    /// Elements `lo..hi`, same type.
    pub fn slice(&self, lo: usize, hi: usize) -> TensorData {
        per_variant!(self, v => v[lo..hi].to_vec())
    }

    /// The elements of `parts` one after the other; `None` when their types differ.
    pub fn concat(parts: &[&TensorData]) -> Option<TensorData> {
        let first = parts.first()?;
        if parts.iter().any(|p| p.dtype() != first.dtype()) {
            return None;
        }
        macro_rules! gather {
            ($variant:ident) => {{
                let mut all = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
                for p in parts {
                    if let TensorData::$variant(v) = p {
                        all.extend_from_slice(v);
                    }
                }
                TensorData::$variant(all)
            }};
        }
        Some(match first {
            TensorData::Bool(_) => gather!(Bool),
            TensorData::U8(_) => gather!(U8),
            TensorData::U16(_) => gather!(U16),
            TensorData::U32(_) => gather!(U32),
            TensorData::U64(_) => gather!(U64),
            TensorData::I8(_) => gather!(I8),
            TensorData::I16(_) => gather!(I16),
            TensorData::I32(_) => gather!(I32),
            TensorData::I64(_) => gather!(I64),
            TensorData::F16(_) => gather!(F16),
            TensorData::F32(_) => gather!(F32),
            TensorData::F64(_) => gather!(F64),
            TensorData::Bytes(_) => gather!(Bytes),
        })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::Bool(_) => DType::Bool,
            TensorData::U8(_) => DType::U8,
            TensorData::U16(_) => DType::U16,
            TensorData::U32(_) => DType::U32,
            TensorData::U64(_) => DType::U64,
            TensorData::I8(_) => DType::I8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
            TensorData::F16(_) => DType::F16,
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::Bytes(_) => DType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32, for numeric types (BYTES has none).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        Some(match self {
            TensorData::Bool(v) => v.iter().map(|b| *b as u8 as f32).collect(),
            TensorData::U8(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::U16(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::U32(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::U64(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::I8(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::I16(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::F16(v) => v.iter().map(|x| f16_to_f32(*x)).collect(),
            TensorData::F32(v) => v.clone(),
            TensorData::F64(v) => v.iter().map(|x| *x as f32).collect(),
            TensorData::Bytes(_) => return None,
        })
    }

    /// Decodes little-endian wire bytes of `count` elements (BYTES: 4-byte length prefixes).
    pub fn from_le_bytes(dtype: DType, bytes: &[u8], count: usize) -> Result<TensorData, String> {
        if let Some(size) = dtype.size() {
            if bytes.len() != size * count {
                return Err(format!(
                    "expected {} bytes for {count} {dtype} elements, got {}",
                    size * count,
                    bytes.len()
                ));
            }
        }
        macro_rules! num {
            ($variant:ident, $t:ty, $n:expr) => {
                TensorData::$variant(
                    bytes.chunks_exact($n).map(|c| <$t>::from_le_bytes(c.try_into().unwrap())).collect(),
                )
            };
        }
        Ok(match dtype {
            DType::Bool => TensorData::Bool(bytes.iter().map(|b| *b != 0).collect()),
            DType::U8 => TensorData::U8(bytes.to_vec()),
            DType::U16 => num!(U16, u16, 2),
            DType::U32 => num!(U32, u32, 4),
            DType::U64 => num!(U64, u64, 8),
            DType::I8 => TensorData::I8(bytes.iter().map(|b| *b as i8).collect()),
            DType::I16 => num!(I16, i16, 2),
            DType::I32 => num!(I32, i32, 4),
            DType::I64 => num!(I64, i64, 8),
            DType::F16 => num!(F16, u16, 2),
            DType::F32 => num!(F32, f32, 4),
            DType::F64 => num!(F64, f64, 8),
            DType::Bytes => {
                let mut out = Vec::with_capacity(count);
                let mut rest = bytes;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err("truncated BYTES element length".into());
                    }
                    let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                    if rest.len() < 4 + n {
                        return Err(format!("BYTES element announces {n} bytes, {} remain", rest.len() - 4));
                    }
                    out.push(rest[4..4 + n].to_vec());
                    rest = &rest[4 + n..];
                }
                if out.len() != count {
                    return Err(format!("expected {count} BYTES elements, got {}", out.len()));
                }
                TensorData::Bytes(out)
            }
        })
    }

    /// Encodes the values as little-endian wire bytes (BYTES: 4-byte length prefixes).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        macro_rules! num {
            ($v:expr) => {
                $v.iter().flat_map(|x| x.to_le_bytes()).collect()
            };
        }
        match self {
            TensorData::Bool(v) => v.iter().map(|b| *b as u8).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::U16(v) => num!(v),
            TensorData::U32(v) => num!(v),
            TensorData::U64(v) => num!(v),
            TensorData::I8(v) => v.iter().map(|x| *x as u8).collect(),
            TensorData::I16(v) => num!(v),
            TensorData::I32(v) => num!(v),
            TensorData::I64(v) => num!(v),
            TensorData::F16(v) => num!(v),
            TensorData::F32(v) => num!(v),
            TensorData::F64(v) => num!(v),
            TensorData::Bytes(v) => {
                let mut out = Vec::new();
                for b in v {
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(b);
                }
                out
            }
        }
    }
}

/// A named tensor with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Name as the model's signature spells it.
    pub name: String,
    /// Shape, batch dimension first.
    pub shape: Vec<usize>,
    /// Values.
    pub data: TensorData,
}

impl Tensor {
    /// One row of zeros (empty strings for BYTES) shaped as `sig`, its symbolic dimensions 1:
    /// what a version runs before it takes traffic.
    ///
    /// # Errors
    /// None for the types Lathe carries; the decoder's message otherwise.
    pub fn zero_row(sig: &crate::TensorSignature) -> Result<Tensor, String> {
        let shape: Vec<usize> = sig.shape.iter().map(|&d| if d < 0 { 1 } else { d as usize }).collect();
        let n: usize = shape.iter().product();
        let data = TensorData::from_le_bytes(sig.datatype, &vec![0u8; n * sig.datatype.size().unwrap_or(4)], n)?;
        Ok(Tensor { name: sig.name.clone(), shape, data })
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Rows (the size of dimension 0; 1 for scalars).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Rows `offset..offset + rows` (dimension 0), or `None` when the values do not split
    /// evenly into this tensor's rows.
    pub fn slice_rows(&self, offset: usize, rows: usize) -> Option<Tensor> {
        let total = self.rows();
        let per_row = self.data.len() / total.max(1);
        if per_row * total != self.data.len() || offset + rows > total {
            return None;
        }
        let mut shape = self.shape.clone();
        shape[0] = rows;
        Some(Tensor {
            name: self.name.clone(),
            shape,
            data: self.data.slice(offset * per_row, (offset + rows) * per_row),
        })
    }

    /// The rows of `parts` stacked along dimension 0 (named after the first); `None` when
    /// there are no parts or their types differ.
    pub fn concat_rows(parts: &[&Tensor]) -> Option<Tensor> {
        let first = parts.first()?;
        let mut shape = first.shape.clone();
        shape[0] = parts.iter().map(|t| t.rows()).sum();
        let data = TensorData::concat(&parts.iter().map(|t| &t.data).collect::<Vec<_>>())?;
        Some(Tensor { name: first.name.clone(), shape, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bytes_round_trip_for_every_type() {
        let cases = vec![
            TensorData::Bool(vec![true, false]),
            TensorData::U8(vec![1, 255]),
            TensorData::U16(vec![1, 65535]),
            TensorData::U32(vec![7, 1 << 31]),
            TensorData::U64(vec![9, u64::MAX]),
            TensorData::I8(vec![-1, 127]),
            TensorData::I16(vec![-300, 300]),
            TensorData::I32(vec![-5, 5]),
            TensorData::I64(vec![i64::MIN, 3]),
            TensorData::F16(vec![0x3c00, 0xc000]),
            TensorData::F32(vec![1.5, -0.25]),
            TensorData::F64(vec![1e300, -2.0]),
            TensorData::Bytes(vec![b"ab".to_vec(), vec![]]),
        ];
        for data in cases {
            let bytes = data.to_le_bytes();
            let back = TensorData::from_le_bytes(data.dtype(), &bytes, data.len()).unwrap();
            assert_eq!(back, data);
        }
        assert_eq!(TensorData::F32(vec![1.0]).to_le_bytes(), vec![0, 0, 0x80, 0x3f]);
    }

    #[test]
    fn rows_slice_and_stack_back() {
        let t = Tensor { name: "x".into(), shape: vec![3, 2], data: TensorData::I64(vec![1, 2, 3, 4, 5, 6]) };
        let a = t.slice_rows(0, 1).unwrap();
        let b = t.slice_rows(1, 2).unwrap();
        assert_eq!((a.shape.clone(), b.data.clone()), (vec![1, 2], TensorData::I64(vec![3, 4, 5, 6])));
        assert_eq!(Tensor::concat_rows(&[&a, &b]).unwrap(), t);
        assert!(t.slice_rows(2, 2).is_none());
        let f = Tensor { name: "f".into(), shape: vec![1], data: TensorData::F32(vec![1.0]) };
        assert!(Tensor::concat_rows(&[&a, &f]).is_none(), "mixed types");
    }

    #[test]
    fn half_floats_convert() {
        assert_eq!(
            TensorData::F16(vec![0x3c00, 0xc000, 0x0001, 0x7c00]).to_f32().unwrap()[..3],
            [1.0, -2.0, 5.960_464_5e-8]
        );
        assert!(TensorData::F16(vec![0x7c00]).to_f32().unwrap()[0].is_infinite());
    }

    #[test]
    fn wrong_byte_counts_are_errors() {
        assert!(TensorData::from_le_bytes(DType::F32, &[0; 7], 2).is_err());
        assert!(TensorData::from_le_bytes(DType::Bytes, &[5, 0, 0, 0, 1], 1).is_err());
    }
}
