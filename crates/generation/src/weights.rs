//! A decoder's weights as views of a GGUF file: matrices stay in the memory map in their
//! stored type and are decoded row by row when used; norms and biases (small) are decoded
//! to f32 once.

use std::sync::Arc;

use lathe_kernels::quant::dequantize;
use thiserror::Error;

use crate::config::DecoderConfig;
use crate::gguf::{GgufFile, TensorSlice};

/// A tensor that is missing or has another shape than the configuration implies.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// A required tensor is absent.
    #[error("{path}: tensor {tensor:?} is missing")]
    Missing {
        /// The file.
        path: String,
        /// The tensor.
        tensor: String,
    },
    /// A tensor's dimensions differ from the configuration's.
    #[error("{path}: tensor {tensor:?} has dimensions {got:?}, expected {want:?} (innermost first)")]
    Shape {
        /// The file.
        path: String,
        /// The tensor.
        tensor: String,
        /// Its dimensions.
        got: Vec<usize>,
        /// The expected ones.
        want: Vec<usize>,
    },
}

/// A matrix of `rows` rows of `cols` values (GGUF dimensions `[cols, rows]`), y = W·x.
pub struct Matrix {
    file: Arc<GgufFile>,
    slice: TensorSlice,
}

impl Matrix {
    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.slice.rows()
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        self.slice.row_len()
    }

    fn row_bytes(&self) -> usize {
        self.slice.len / self.rows().max(1)
    }

    /// Row `r` decoded into `out` (`cols` values).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let n = self.row_bytes();
        let bytes = &self.file.data(&self.slice)[r * n..(r + 1) * n];
        dequantize(self.slice.ty, bytes, out).expect("rows checked when the file was opened");
    }

    /// `out = W·x` (`x`: `cols` values, `out`: `rows` values), as llama.cpp computes it:
    /// `x` is quantized to the weight type's 8-bit partner and dotted in integers (float
    /// weights: in f32 after rounding `x` to the weight's float type).
    pub fn matvec(&self, x: &[f32], out: &mut [f32]) {
        lathe_kernels::quant::matvec(self.slice.ty, self.file.data(&self.slice), x, out);
    }
}

/// One transformer block.
pub struct Layer {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query, key, value and output projections.
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
    file: &'a Arc<GgufFile>,
}

impl Reader<'_> {
    fn error_missing(&self, name: &str) -> WeightsError {
        WeightsError::Missing { path: self.file.path().display().to_string(), tensor: name.into() }
    }

    fn checked(&self, name: &str, want: &[usize]) -> Result<TensorSlice, WeightsError> {
        let (slice, _) = self.file.tensor(name).ok_or_else(|| self.error_missing(name))?;
        if slice.dims != want {
            let path = self.file.path().display().to_string();
            return Err(WeightsError::Shape {
                path,
                tensor: name.into(),
                got: slice.dims.clone(),
                want: want.to_vec(),
            });
        }
        Ok(slice.clone())
    }

    fn matrix(&self, name: &str, cols: usize, rows: usize) -> Result<Matrix, WeightsError> {
        Ok(Matrix { file: self.file.clone(), slice: self.checked(name, &[cols, rows])? })
    }

    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>, WeightsError> {
        let slice = self.checked(name, &[len])?;
        let mut out = vec![0.0; len];
        dequantize(slice.ty, self.file.data(&slice), &mut out).expect("checked when the file was opened");
        Ok(out)
    }
}

impl Weights {
    /// The weights of `file`, checked against `cfg` (names of llama.cpp's `llama-arch.cpp`).
    pub fn from_gguf(file: &Arc<GgufFile>, cfg: &DecoderConfig) -> Result<Weights, WeightsError> {
        let r = Reader { file };
        let (h, q_dim, kv_dim) = (cfg.hidden, cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim);
        let layers = (0..cfg.layers)
            .map(|i| {
                let name = |t: &str| format!("blk.{i}.{t}");
                let qkv_bias = if file.tensor(&name("attn_q.bias")).is_some() {
                    Some([
                        r.vector(&name("attn_q.bias"), q_dim)?,
                        r.vector(&name("attn_k.bias"), kv_dim)?,
                        r.vector(&name("attn_v.bias"), kv_dim)?,
                    ])
                } else {
                    None
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
        let output_name = if file.tensor("output.weight").is_some() { "output.weight" } else { "token_embd.weight" };
        Ok(Weights {
            embed: r.matrix("token_embd.weight", h, cfg.vocab_size)?,
            layers,
            out_norm: r.vector("output_norm.weight", h)?,
            output: r.matrix(output_name, h, cfg.vocab_size)?,
        })
    }
}
