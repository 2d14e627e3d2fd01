use serde::{Deserialize, Serialize};

/// Element type of a tensor, named as the Open Inference Protocol names it (`FP32`, `INT64`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// Boolean, one byte on the wire.
    #[serde(rename = "BOOL")]
    Bool,
    /// Unsigned 8-bit integer.
    #[serde(rename = "UINT8")]
    U8,
    /// Unsigned 16-bit integer.
    #[serde(rename = "UINT16")]
    U16,
    /// Unsigned 32-bit integer.
    #[serde(rename = "UINT32")]
    U32,
    /// Unsigned 64-bit integer.
    #[serde(rename = "UINT64")]
    U64,
    /// Signed 8-bit integer.
    #[serde(rename = "INT8")]
    I8,
    /// Signed 16-bit integer.
    #[serde(rename = "INT16")]
    I16,
    /// Signed 32-bit integer.
    #[serde(rename = "INT32")]
    I32,
    /// Signed 64-bit integer.
    #[serde(rename = "INT64")]
    I64,
    /// IEEE half float (binary transport only).
    #[serde(rename = "FP16")]
    F16,
    /// 32-bit IEEE float.
    #[serde(rename = "FP32")]
    F32,
    /// 64-bit IEEE float.
    #[serde(rename = "FP64")]
    F64,
    /// Variable-length bytes (strings).
    #[serde(rename = "BYTES")]
    Bytes,
}

/// Every datatype, in the protocol's order.
pub const ALL_DTYPES: [DType; 13] = [
    DType::Bool,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::F16,
    DType::F32,
    DType::F64,
    DType::Bytes,
];

impl DType {
    /// The protocol name of the type, e.g. `FP32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "BOOL",
            DType::U8 => "UINT8",
            DType::U16 => "UINT16",
            DType::U32 => "UINT32",
            DType::U64 => "UINT64",
            DType::I8 => "INT8",
            DType::I16 => "INT16",
            DType::I32 => "INT32",
            DType::I64 => "INT64",
            DType::F16 => "FP16",
            DType::F32 => "FP32",
            DType::F64 => "FP64",
            DType::Bytes => "BYTES",
        }
    }

    /// Parses a protocol name (`FP32`, `UINT8`, …).
    pub fn from_name(name: &str) -> Option<DType> {
        ALL_DTYPES.into_iter().find(|d| d.name() == name)
    }

    /// TensorFlow's name of the type (`DT_FLOAT`, …), for TF Serving metadata.
    pub fn tf_name(self) -> &'static str {
        match self {
            DType::Bool => "DT_BOOL",
            DType::U8 => "DT_UINT8",
            DType::U16 => "DT_UINT16",
            DType::U32 => "DT_UINT32",
            DType::U64 => "DT_UINT64",
            DType::I8 => "DT_INT8",
            DType::I16 => "DT_INT16",
            DType::I32 => "DT_INT32",
            DType::I64 => "DT_INT64",
            DType::F16 => "DT_HALF",
            DType::F32 => "DT_FLOAT",
            DType::F64 => "DT_DOUBLE",
            DType::Bytes => "DT_STRING",
        }
    }

    /// Bytes per element on the wire; `None` for variable-length BYTES.
    pub fn size(self) -> Option<usize> {
        Some(match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 => 8,
            DType::Bytes => return None,
        })
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
