//! GGUF files: the header is parsed by candle's reader (`candle_core::quantized::gguf_file`),
//! the tensor data stays in a read-only memory map and is handed out as byte slices, never
//! copied whole. Every tensor is checked on open: a type Lathe reads, rows made of whole
//! blocks, bytes inside the file.
//!
//! Layout reference: `ggml/include/gguf.h` and `ggml/src/gguf.cpp` in llama.cpp.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Content};
use candle_core::quantized::GgmlDType;
use std::sync::Arc;

use lathe_kernels::mmap::Mapped;
use lathe_kernels::quant::{GgmlType, QuantError};
use thiserror::Error;

/// A metadata value (GGUF's typed key-value pairs).
pub type MetadataValue = gguf_file::Value;

/// What is wrong with a GGUF file; every message names the file.
#[derive(Debug, Error)]
pub enum GgufError {
    /// The file cannot be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The header is not valid GGUF (bad magic or version, truncated header, bad value type).
    #[error("{path}: not a valid GGUF file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The reader's explanation.
        message: String,
    },
    /// A tensor of a type Lathe does not read.
    #[error("{path}: tensor {tensor:?}: {source}")]
    UnsupportedType {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The type and the supported ones.
        source: QuantError,
    },
    /// A tensor whose rows are not whole blocks of its type, or whose size overflows.
    #[error("{path}: tensor {tensor:?}: shape {dims:?} does not fit {ty} blocks of {block} values")]
    Shape {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Dimensions, innermost (contiguous) first as in the file.
        dims: Vec<usize>,
        /// Its type's name.
        ty: &'static str,
        /// Values per block.
        block: usize,
    },
    /// A tensor whose bytes run past the end of the file.
    #[error("{path}: truncated: tensor {tensor:?} needs bytes {start}..{end}, the file has {len}")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// First byte of its data.
        start: u64,
        /// One past its last byte.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// A metadata key that is missing or of another type.
    #[error("{path}: metadata {key}: {problem}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// Where one tensor's data lies in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSlice {
    /// Its type.
    pub ty: GgmlType,
    /// Dimensions, innermost (contiguous) first: `[columns, rows]` for a matrix.
    pub dims: Vec<usize>,
    /// Byte offset of its data in the file.
    pub start: usize,
    /// Bytes of data.
    pub len: usize,
}

impl TensorSlice {
    /// Values per row (`dims[0]`).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Rows (the product of the outer dimensions).
    pub fn rows(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
}

/// An open GGUF file: metadata, and tensors as slices of the memory map.
pub struct GgufFile {
    path: PathBuf,
    map: Arc<Mapped>,
    metadata: HashMap<String, MetadataValue>,
    tensors: BTreeMap<String, TensorSlice>,
}

impl std::fmt::Debug for GgufFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufFile").field("path", &self.path).field("tensors", &self.tensors.len()).finish()
    }
}

impl GgufFile {
    /// Maps `path` and checks its header and every tensor.
    ///
    /// The file must not change while it is open (a published version's file never does).
    pub fn open(path: &Path) -> Result<GgufFile, GgufError> {
        let map = Mapped::open_immutable(path).map_err(|source| GgufError::Io { path: path.into(), source })?;
        let content = Content::read(&mut Cursor::new(&map[..])).map_err(|e| format_error(path, e))?;
        let len = map.len() as u64;
        let mut tensors = BTreeMap::new();
        for (name, info) in &content.tensor_infos {
            let slice = check_tensor(path, name, info, content.tensor_data_offset, len)?;
            tensors.insert(name.clone(), slice);
        }
        Ok(GgufFile { path: path.into(), map: Arc::new(map), metadata: content.metadata, tensors })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor, by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorSlice> {
        &self.tensors
    }

    /// The memory map the tensors lie in.
    pub fn map(&self) -> &Arc<Mapped> {
        &self.map
    }

    /// A tensor and its bytes.
    pub fn tensor(&self, name: &str) -> Option<(&TensorSlice, &[u8])> {
        self.tensors.get(name).map(|t| (t, &self.map[t.start..t.start + t.len]))
    }

    /// The bytes of a tensor of this file.
    pub fn data(&self, t: &TensorSlice) -> &[u8] {
        &self.map[t.start..t.start + t.len]
    }

    /// Every metadata key and value.
    pub fn metadata(&self) -> &HashMap<String, MetadataValue> {
        &self.metadata
    }

    /// A metadata value, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.metadata.get(key)
    }

    /// A string value; an error when missing or not a string.
    pub fn string(&self, key: &str) -> Result<&str, GgufError> {
        let value = self.require(key)?;
        value.to_string().map(String::as_str).map_err(|_| self.wrong_type(key, "a string", value))
    }

    /// An unsigned integer value of any width; an error when missing or of another type.
    pub fn unsigned(&self, key: &str) -> Result<u64, GgufError> {
        self.require(key).and_then(|v| self.as_unsigned(key, v))
    }

    /// An unsigned integer value, `None` when absent.
    pub fn unsigned_opt(&self, key: &str) -> Result<Option<u64>, GgufError> {
        self.get(key).map(|v| self.as_unsigned(key, v)).transpose()
    }

    /// A float value (f32 or f64), `None` when absent.
    pub fn float_opt(&self, key: &str) -> Result<Option<f64>, GgufError> {
        self.get(key)
            .map(|v| match v {
                MetadataValue::F32(x) => Ok(*x as f64),
                MetadataValue::F64(x) => Ok(*x),
                other => Err(self.wrong_type(key, "a float", other)),
            })
            .transpose()
    }

    /// A boolean value, `None` when absent.
    pub fn bool_opt(&self, key: &str) -> Result<Option<bool>, GgufError> {
        self.get(key).map(|v| v.to_bool().map_err(|_| self.wrong_type(key, "a boolean", v))).transpose()
    }

    /// An array value; an error when missing or not an array.
    pub fn array(&self, key: &str) -> Result<&[MetadataValue], GgufError> {
        let value = self.require(key)?;
        value.to_vec().map(Vec::as_slice).map_err(|_| self.wrong_type(key, "an array", value))
    }

    fn require(&self, key: &str) -> Result<&MetadataValue, GgufError> {
        self.get(key).ok_or_else(|| GgufError::Metadata {
            path: self.path.clone(),
            key: key.into(),
            problem: "missing".into(),
        })
    }

    fn as_unsigned(&self, key: &str, value: &MetadataValue) -> Result<u64, GgufError> {
        let n = match value {
            MetadataValue::U8(x) => Some(*x as u64),
            MetadataValue::U16(x) => Some(*x as u64),
            MetadataValue::U32(x) => Some(*x as u64),
            MetadataValue::U64(x) => Some(*x),
            MetadataValue::I8(x) => u64::try_from(*x).ok(),
            MetadataValue::I16(x) => u64::try_from(*x).ok(),
            MetadataValue::I32(x) => u64::try_from(*x).ok(),
            MetadataValue::I64(x) => u64::try_from(*x).ok(),
            _ => None,
        };
        n.ok_or_else(|| self.wrong_type(key, "a non-negative integer", value))
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &MetadataValue) -> GgufError {
        GgufError::Metadata {
            path: self.path.clone(),
            key: key.into(),
            problem: format!("expected {expected}, got a value of type {:?}", got.value_type()),
        }
    }
}

/// candle's reader names unknown type ids without the tensor; say which type it is.
fn format_error(path: &Path, e: candle_core::Error) -> GgufError {
    // candle appends a backtrace when RUST_BACKTRACE is set; the first line is the message.
    let message = e.to_string().lines().next().unwrap_or_default().to_string();
    let unknown_id = message.strip_prefix("unknown dtype for tensor ").and_then(|id| id.trim().parse::<u32>().ok());
    match unknown_id.map(GgmlType::from_id) {
        Some(Err(source)) => GgufError::Format { path: path.into(), message: source.to_string() },
        _ => GgufError::Format { path: path.into(), message },
    }
}

fn our_type(dtype: GgmlDType) -> Result<GgmlType, QuantError> {
    let id = match dtype {
        GgmlDType::F32 => 0,
        GgmlDType::F16 => 1,
        GgmlDType::Q4_0 => 2,
        GgmlDType::Q4_1 => 3,
        GgmlDType::Q5_0 => 6,
        GgmlDType::Q5_1 => 7,
        GgmlDType::Q8_0 => 8,
        GgmlDType::Q8_1 => 9,
        GgmlDType::Q2K => 10,
        GgmlDType::Q3K => 11,
        GgmlDType::Q4K => 12,
        GgmlDType::Q5K => 13,
        GgmlDType::Q6K => 14,
        GgmlDType::Q8K => 15,
        GgmlDType::BF16 => 30,
    };
    GgmlType::from_id(id)
}

fn check_tensor(
    path: &Path,
    name: &str,
    info: &gguf_file::TensorInfo,
    data_offset: u64,
    file_len: u64,
) -> Result<TensorSlice, GgufError> {
    let ty = our_type(info.ggml_dtype).map_err(|source| GgufError::UnsupportedType {
        path: path.into(),
        tensor: name.into(),
        source,
    })?;
    // candle lists dimensions outermost first; GGUF (and this crate) innermost first.
    let dims: Vec<usize> = info.shape.dims().iter().rev().copied().collect();
    let values = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let row_whole = dims.first().is_some_and(|&d| d % ty.block_values() == 0);
    let bytes = values.filter(|_| row_whole).and_then(|v| ty.bytes_for(v));
    let shape_error = || GgufError::Shape {
        path: path.into(),
        tensor: name.into(),
        dims: dims.clone(),
        ty: ty.name(),
        block: ty.block_values(),
    };
    let len = bytes.ok_or_else(shape_error)? as u64;
    let start = data_offset.saturating_add(info.offset);
    let end = start.saturating_add(len);
    if end > file_len {
        return Err(GgufError::Truncated { path: path.into(), tensor: name.into(), start, end, len: file_len });
    }
    Ok(TensorSlice { ty, dims, start: start as usize, len: len as usize })
}
