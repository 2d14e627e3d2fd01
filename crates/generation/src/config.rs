//! A decoder's hyperparameters, read from GGUF metadata (`{arch}.*` keys, defaults as
//! llama.cpp's `load_hparams`).

use crate::gguf::{GgufError, GgufFile};

/// Decoder architectures Lathe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// Llama (also SmolLM, TinyLlama, Llama 3, Mistral, which GGUF files call `llama`).
    Llama,
    /// Qwen2: q/k/v biases, NEOX rotary layout.
    Qwen2,
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Adjacent pairs `(2i, 2i+1)`: llama weights as GGUF stores them (Q/K permuted).
    Norm,
    /// Halves `(i, i + n_rot/2)`: Qwen2, and Hugging Face's Llama weights.
    Neox,
}

/// Hyperparameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// The architecture.
    pub architecture: Architecture,
    /// Tokens in the vocabulary (rows of the embedding and output matrices).
    pub vocab_size: usize,
    /// Width of the residual stream (n_embd).
    pub hidden: usize,
    /// Transformer blocks.
    pub layers: usize,
    /// Inner width of the feed-forward network (n_ff).
    pub ffn: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Dimensions of each head that RoPE rotates.
    pub rope_dims: usize,
    /// RoPE base (theta).
    pub rope_theta: f32,
    /// Position scale of linear RoPE scaling (1 / factor; 1 without scaling).
    pub rope_freq_scale: f32,
    /// How RoPE pairs dimensions.
    pub rope_style: RopeStyle,
    /// Per-pair divisors of RoPE frequencies (Llama-3 scaling; GGUF's `rope_freqs.weight`).
    pub rope_freq_factors: Option<Vec<f32>>,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Training context length in tokens.
    pub context_length: usize,
}

/// Largest value of any one dimension Lathe accepts (the products of dimensions it computes
/// stay far from overflow).
const MAX_DIMENSION: usize = 1 << 24;

impl DecoderConfig {
    /// Bytes the KV cache holds per position: keys and values of every layer, f32.
    pub fn kv_bytes_per_position(&self) -> usize {
        2 * self.layers * self.kv_heads * self.head_dim * 4
    }

    /// Checks that the hyperparameters describe a decoder Lathe can run: every dimension at
    /// least 1 and at most 2²⁴, query heads a multiple of key/value heads, RoPE dimensions even
    /// and at most the head width. Returns the first problem, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let dims = [
            ("vocab_size", self.vocab_size),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("ffn", self.ffn),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("head_dim", self.head_dim),
            ("context_length", self.context_length),
        ];
        if let Some((name, v)) = dims.iter().find(|(_, v)| *v == 0 || *v > MAX_DIMENSION) {
            return Err(format!("{name} is {v}; expected 1 to {MAX_DIMENSION}"));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(format!("{} attention heads cannot share {} key/value heads", self.heads, self.kv_heads));
        }
        if self.heads * self.head_dim > MAX_DIMENSION {
            return Err(format!("{} heads of {} dimensions are too wide", self.heads, self.head_dim));
        }
        if self.rope_dims > self.head_dim || !self.rope_dims.is_multiple_of(2) {
            return Err(format!(
                "RoPE dimensions {} must be even and at most the head width {}",
                self.rope_dims, self.head_dim
            ));
        }
        if self.rope_freq_factors.as_ref().is_some_and(|f| f.len() != self.rope_dims / 2) {
            return Err(format!("expected {} RoPE frequency factors", self.rope_dims / 2));
        }
        Ok(())
    }

    /// The hyperparameters of a GGUF file; errors name the missing or unsupported key.
    pub fn from_gguf(f: &GgufFile) -> Result<DecoderConfig, GgufError> {
        let arch_name = f.string("general.architecture")?;
        let architecture = match arch_name {
            "llama" | "mistral" => Architecture::Llama,
            "qwen2" => Architecture::Qwen2,
            other => {
                return Err(GgufError::Metadata {
                    path: f.path().into(),
                    key: "general.architecture".into(),
                    problem: format!("unsupported architecture {other:?}; supported: llama, mistral, qwen2"),
                })
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let usize_of = |k: &str| f.unsigned(&key(k)).map(|v| v as usize);
        let hidden = usize_of("embedding_length")?;
        let heads = usize_of("attention.head_count")?;
        let kv_heads = f.unsigned_opt(&key("attention.head_count_kv"))?.map_or(heads, |v| v as usize);
        let head_dim = f.unsigned_opt(&key("attention.key_length"))?.map_or(hidden / heads.max(1), |v| v as usize);
        let vocab_size = match f.unsigned_opt(&key("vocab_size"))? {
            Some(v) => v as usize,
            None => f.array("tokenizer.ggml.tokens")?.len(),
        };
        let rope_dims = f.unsigned_opt(&key("rope.dimension_count"))?.map_or(head_dim, |v| v as usize);
        let scale = f.float_opt(&key("rope.scaling.factor"))?.filter(|&x| x > 0.0).map_or(1.0, |x| 1.0 / x);
        let cfg = DecoderConfig {
            architecture,
            vocab_size,
            hidden,
            layers: usize_of("block_count")?,
            ffn: usize_of("feed_forward_length")?,
            heads,
            kv_heads,
            head_dim,
            rope_dims,
            rope_theta: f.float_opt(&key("rope.freq_base"))?.unwrap_or(10_000.0) as f32,
            rope_freq_scale: scale as f32,
            rope_style: match architecture {
                Architecture::Llama => RopeStyle::Norm,
                Architecture::Qwen2 => RopeStyle::Neox,
            },
            rope_freq_factors: rope_freq_factors(f, rope_dims)?,
            rms_eps: f.float_opt(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5) as f32,
            context_length: usize_of("context_length")?,
        };
        cfg.validate().map_err(|problem| GgufError::Metadata {
            path: f.path().into(),
            key: format!("{arch_name}.*"),
            problem,
        })?;
        Ok(cfg)
    }
}

/// Llama-3 RoPE scaling as llama.cpp stores it: `rope_freqs.weight`, one divisor per pair.
fn rope_freq_factors(f: &GgufFile, rope_dims: usize) -> Result<Option<Vec<f32>>, GgufError> {
    let Some((slice, bytes)) = f.tensor("rope_freqs.weight") else { return Ok(None) };
    let problem =
        |p: String| GgufError::Metadata { path: f.path().into(), key: "rope_freqs.weight".into(), problem: p };
    if slice.dims != [rope_dims / 2] {
        return Err(problem(format!("has dimensions {:?}, expected [{}]", slice.dims, rope_dims / 2)));
    }
    let mut factors = vec![0.0; rope_dims / 2];
    lathe_kernels::quant::dequantize(slice.ty, bytes, &mut factors).map_err(|e| problem(e.to_string()))?;
    Ok(Some(factors))
}
