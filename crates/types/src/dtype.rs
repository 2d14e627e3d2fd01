use serde::{Deserialize, Serialize};

/// Element type of a tensor, named as the Open Inference Protocol names it (`FP32`, `INT64`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    /// 32-bit IEEE float.
    #[serde(rename = "FP32")]
    F32,
    /// 64-bit IEEE float.
    #[serde(rename = "FP64")]
    F64,
    /// Signed 32-bit integer.
    #[serde(rename = "INT32")]
    I32,
    /// Signed 64-bit integer.
    #[serde(rename = "INT64")]
    I64,
    /// Unsigned byte.
    #[serde(rename = "UINT8")]
    U8,
    /// Boolean.
    #[serde(rename = "BOOL")]
    Bool,
    /// Variable-length bytes (strings).
    #[serde(rename = "BYTES")]
    Bytes,
}

impl DType {
    /// The protocol name of the type, e.g. `FP32`.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "FP32",
            DType::F64 => "FP64",
            DType::I32 => "INT32",
            DType::I64 => "INT64",
            DType::U8 => "UINT8",
            DType::Bool => "BOOL",
            DType::Bytes => "BYTES",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
