//! A decoder's weights as views of memory-mapped files (GGUF, or a Hugging Face folder's
//! safetensors): matrices stay in the map in their stored type and are read row by row when
//! used; norms and biases (small) are decoded to f32 once.

use std::sync::Arc;

use lathe_kernels::mmap::Mapped;
use lathe_kernels::quant::{dequantize, Activations, GgmlType};
use thiserror::Error;

use crate::config::DecoderConfig;

/// A tensor that is missing or has another shape than the configuration implies.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// A required tensor is absent.
    #[error("{path}: tensor {tensor:?} is missing")]
    Missing {
        /// The file or folder.
        path: String,
        /// The tensor.
        tensor: String,
    },
    /// A tensor's dimensions differ from the configuration's.
    #[error("{path}: tensor {tensor:?} has dimensions {got:?}, expected {want:?} (innermost first)")]
    Shape {
        /// The file or folder.
        path: String,
        /// The tensor.
        tensor: String,
        /// Its dimensions.
        got: Vec<usize>,
        /// The expected ones.
        want: Vec<usize>,
    },
}

/// Where a tensor's bytes lie: a memory map, the byte range, its type and dimensions
/// (innermost first, `[cols, rows]` for a matrix).
#[derive(Clone)]
pub struct TensorData {
    /// The map holding the bytes.
    pub map: Arc<Mapped>,
    /// First byte.
    pub start: usize,
    /// Bytes (exactly the values of `dims` in `ty`; sources check this when opened).
    pub len: usize,
    /// Stored type.
    pub ty: GgmlType,
    /// Dimensions, innermost first.
    pub dims: Vec<usize>,
}

impl TensorData {
    fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

/// Files that hold a decoder's tensors under llama.cpp's names (`blk.0.attn_q.weight`).
pub trait TensorSource {
    /// The file or folder, for messages.
    fn describe(&self) -> String;
    /// The tensor called `name` in llama.cpp's naming, if present.
    fn tensor_data(&self, name: &str) -> Option<TensorData>;
}

/// A matrix of `rows` rows of `cols` values (dimensions `[cols, rows]`), y = W·x.
pub struct Matrix {
    data: TensorData,
}

impl Matrix {
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.data.dims[1]
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.data.dims[0]
    }

    /// The stored type.
    pub fn ty(&self) -> GgmlType {
        self.data.ty
    }

    /// Row `r` decoded into `out` (`cols` values).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let n = self.data.len / self.rows().max(1);
        let bytes = &self.data.bytes()[r * n..(r + 1) * n];
        dequantize(self.data.ty, bytes, out).expect("rows checked when the file was opened");
    }

    /// `out = W·x` (`x`: `cols` values, `out`: `rows` values), as llama.cpp computes it:
    /// `x` is quantized to the weight type's 8-bit partner and dotted in integers (float
    /// weights: in f32 after rounding `x` to the weight's float type).
    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        lathe_kernels::quant::matvec(self.data.ty, self.data.bytes(), x, out);
    }

    /// `out = x·Wᵀ` for `tokens` rows of `x` (`[tokens, cols]` → `[tokens, rows]`), each weight
    /// row read once per tile of tokens.
    pub fn matmul(&self, x: &[f32], tokens: usize, out: &mut [f32]) {
        lathe_kernels::quant::matmul(self.data.ty, self.data.bytes(), x, tokens, out);
    }

    /// This matrix as a member of a [`lathe_kernels::quant::matvec_group`] writing to `out`.
    pub fn group_member<'a>(&'a self, out: &'a mut [f32]) -> lathe_kernels::quant::GroupMember<'a> {
        lathe_kernels::quant::GroupMember { ty: self.data.ty, bytes: self.data.bytes(), out }
    }

    /// As [`Matrix::matmul`] with `x` already quantized for this matrix's type (shared by
    /// matrices of one type that read the same input: q/k/v, gate/up).
    pub fn matmul_quantized(&self, acts: &[Activations], out: &mut [f32]) {
        lathe_kernels::quant::matmul_quantized(self.data.ty, self.data.bytes(), acts, out);
    }
}

/// One transformer block.
pub struct Layer {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection.
    pub q: Matrix,
    /// Key projection.
    pub k: Matrix,
    /// Value projection.
    pub v: Matrix,
    /// Output projection.
    pub o: Matrix,
    /// Query, key and value biases (Qwen2).
    pub qkv_bias: Option<[Vec<f32>; 3]>,
    /// RMSNorm weight before the feed-forward network.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate projection.
    pub gate: Matrix,
    /// SwiGLU up projection.
    pub up: Matrix,
    /// Down projection.
    pub down: Matrix,
}

/// Every weight of a decoder.
pub struct Weights {
    /// Token embeddings (`vocab_size` rows of `hidden`).
    pub embed: Matrix,
    /// The blocks.
    pub layers: Vec<Layer>,
    /// Final RMSNorm weight.
    pub out_norm: Vec<f32>,
    /// Output head (the embeddings when tied).
    pub output: Matrix,
}

struct Reader<'a> {
    source: &'a dyn TensorSource,
}

impl Reader<'_> {
    fn checked(&self, name: &str, want: &[usize]) -> Result<TensorData, WeightsError> {
        let path = || self.source.describe();
        let data =
            self.source.tensor_data(name).ok_or_else(|| WeightsError::Missing { path: path(), tensor: name.into() })?;
        if data.dims != want {
            return Err(WeightsError::Shape { path: path(), tensor: name.into(), got: data.dims, want: want.to_vec() });
        }
        Ok(data)
    }

    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix, WeightsError> {
        Ok(Matrix { data: self.checked(name, &[cols, rows])? })
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, WeightsError> {
        let data = self.checked(name, &[len])?;
        let mut out = vec![0.0; len];
        dequantize(data.ty, data.bytes(), &mut out).expect("checked when the file was opened");
        Ok(out)
    }
}

impl Weights {
    /// The weights in `source`, checked against `cfg` (names of llama.cpp's `llama-arch.cpp`).
    pub fn load(source: &dyn TensorSource, cfg: &DecoderConfig) -> Result<Weights, WeightsError> {
        let r = Reader { source };
        let (h, q_dim, kv_dim) = (cfg.hidden, cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim);
        let layers = (0..cfg.layers)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}");
                let qkv_bias = match source.tensor_data(&name("attn_q.bias")) {
                    Some(_) => Some([
                        r.vector(&name("attn_q.bias"), q_dim)?,
                        r.vector(&name("attn_k.bias"), kv_dim)?,
                        r.vector(&name("attn_v.bias"), kv_dim)?,
                    ]),
                    None => None,
                };
                Ok(Layer {
                    attn_norm: r.vector(&name("attn_norm.weight"), h)?,
                    q: r.matrix(&name("attn_q.weight"), h, q_dim)?,
                    k: r.matrix(&name("attn_k.weight"), h, kv_dim)?,
                    v: r.matrix(&name("attn_v.weight"), h, kv_dim)?,
                    o: r.matrix(&name("attn_output.weight"), q_dim, h)?,
                    qkv_bias,
                    ffn_norm: r.vector(&name("ffn_norm.weight"), h)?,
                    gate: r.matrix(&name("ffn_gate.weight"), h, cfg.ffn)?,
                    up: r.matrix(&name("ffn_up.weight"), h, cfg.ffn)?,
                    down: r.matrix(&name("ffn_down.weight"), cfg.ffn, h)?,
                })
            })
            .collect::<Result<Vec<_>, WeightsError>>()?;
        let output_name = match source.tensor_data("output.weight") {
            Some(_) => "output.weight",
            None => "token_embd.weight",
        };
        Ok(Weights {
            embed: r.matrix("token_embd.weight", h, cfg.vocab_size)?,
            layers,
            out_norm: r.vector("output_norm.weight", h)?,
            output: r.matrix(output_name, h, cfg.vocab_size)?,
        })
    }
}

impl TensorSource for crate::gguf::GgufFile {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn tensor_data(&self, name: &str) -> Option<TensorData> {
        let (slice, _) = self.tensor(name)?;
        Some(TensorData {
            map: self.map().clone(),
            start: slice.start,
            len: slice.len,
            ty: slice.ty,
            dims: slice.dims.clone(),
        })
    }
}
