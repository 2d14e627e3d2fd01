//! A BERT encoder on Lathe's own kernels. Sequences are packed end to end (no padding): the
//! dense layers see every real token once, attention runs per sequence.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;

use lathe_kernels::attention::{attend, Heads};
use lathe_kernels::bf16::from_bf16;
use lathe_kernels::linear::{Epilogue, Linear, Precision};
use lathe_kernels::math::layer_norm;

use crate::EmbedError;

/// The parts of a Hugging Face `config.json` the encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    /// Architecture family.
    #[serde(default)]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Longest sequence.
    pub max_position_embeddings: usize,
    /// Token types.
    #[serde(default = "default_types")]
    pub type_vocab_size: usize,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Position embedding kind; only `absolute` is supported.
    #[serde(default = "default_position")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position() -> String {
    "absolute".into()
}

#[derive(Clone, Copy)]
enum Activation {
    Gelu,
    GeluTanh,
    Relu,
}

struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

/// A loaded BERT encoder.
pub struct BertEncoder {
    config: BertConfig,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    activation: Activation,
}

struct Weights<'a> {
    tensors: SafeTensors<'a>,
    prefix: &'static str,
    path: String,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, EmbedError> {
        let full = format!("{}{name}", self.prefix);
        let err = |message: String| EmbedError::File { path: self.path.clone(), message };
        let view = self.tensors.tensor(&full).map_err(|e| err(format!("tensor {full}: {e}")))?;
        if view.shape() != shape {
            return Err(err(format!("tensor {full}: shape {:?}, expected {shape:?}", view.shape())));
        }
        let bytes = view.data();
        let values = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| from_bf16(u16::from_le_bytes([b[0], b[1]]))).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            other => return Err(err(format!("tensor {full}: dtype {other:?}, expected F32, F16 or BF16"))),
        };
        Ok(values)
    }

    fn norm(&self, name: &str, width: usize) -> Result<Norm, EmbedError> {
        let gamma = self.get(&format!("{name}.weight"), &[width]);
        let gamma = match gamma {
            Ok(g) => g,
            Err(_) => self.get(&format!("{name}.gamma"), &[width])?,
        };
        let beta = match self.get(&format!("{name}.bias"), &[width]) {
            Ok(b) => b,
            Err(_) => self.get(&format!("{name}.beta"), &[width])?,
        };
        Ok(Norm { gamma, beta })
    }
}

/// The f32 value of an IEEE half-precision number.
fn f16_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

impl BertEncoder {
    /// Whether Lathe's encoder runs this architecture.
    pub fn supports(config: &BertConfig) -> bool {
        config.model_type == "bert"
            && config.position_embedding_type == "absolute"
            && matches!(config.hidden_act.as_str(), "gelu" | "gelu_new" | "gelu_pytorch_tanh" | "relu")
            && config.num_attention_heads > 0
            && config.hidden_size.is_multiple_of(config.num_attention_heads)
    }

    /// Loads `model.safetensors` of a BERT folder.
    pub fn load(weights_path: &Path, config: BertConfig, precision: Precision) -> Result<BertEncoder, EmbedError> {
        let path = weights_path.display().to_string();
        let bytes =
            std::fs::read(weights_path).map_err(|e| EmbedError::File { path: path.clone(), message: e.to_string() })?;
        let tensors = SafeTensors::deserialize(&bytes)
            .map_err(|e| EmbedError::File { path: path.clone(), message: e.to_string() })?;
        let prefix = if tensors.names().iter().any(|n| n.starts_with("bert.")) { "bert." } else { "" };
        let w = Weights { tensors, prefix, path };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        let linear = |name: &str, n: usize, k: usize| -> Result<Linear, EmbedError> {
            Ok(Linear::new(
                w.get(&format!("{name}.weight"), &[n, k])?,
                w.get(&format!("{name}.bias"), &[n])?,
                n,
                k,
                precision,
            ))
        };
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for l in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let mut qkv_w = Vec::with_capacity(3 * h * h);
            let mut qkv_b = Vec::with_capacity(3 * h);
            for part in ["query", "key", "value"] {
                qkv_w.extend(w.get(&format!("{p}.attention.self.{part}.weight"), &[h, h])?);
                qkv_b.extend(w.get(&format!("{p}.attention.self.{part}.bias"), &[h])?);
            }
            layers.push(Layer {
                qkv: Linear::new(qkv_w, qkv_b, 3 * h, h, precision),
                attn_out: linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                up: linear(&format!("{p}.intermediate.dense"), i, h)?,
                down: linear(&format!("{p}.output.dense"), h, i)?,
                out_norm: w.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let activation = match config.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            _ => Activation::GeluTanh,
        };
        Ok(BertEncoder {
            word: w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?,
            position: w.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?,
            token_type: w.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?,
            embed_norm: w.norm("embeddings.LayerNorm", h)?,
            layers,
            activation,
            config,
        })
    }

    /// Hidden states of the last layer for each sequence, packed: `[Σ len, hidden]`.
    /// Token ids must be below the vocabulary size and sequences no longer than the position
    /// table (callers check).
    pub fn forward(&self, ids: &[Vec<u32>]) -> Vec<f32> {
        let h = self.config.hidden_size;
        let mut spans = Vec::with_capacity(ids.len());
        let mut tokens = 0;
        for seq in ids {
            spans.push((tokens, seq.len()));
            tokens += seq.len();
        }
        let mut x = vec![0f32; tokens * h];
        for (seq, &(start, _)) in ids.iter().zip(&spans) {
            for (pos, &id) in seq.iter().enumerate() {
                let row = &mut x[(start + pos) * h..(start + pos + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let position = &self.position[pos * h..(pos + 1) * h];
                for (((d, a), b), c) in row.iter_mut().zip(word).zip(position).zip(&self.token_type[..h]) {
                    *d = a + b + c;
                }
            }
        }
        let eps = self.config.layer_norm_eps as f32;
        layer_norm(&mut x, h, &self.embed_norm.gamma, &self.embed_norm.beta, eps);
        let heads = Heads { count: self.config.num_attention_heads, dim: h / self.config.num_attention_heads };
        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut ctx = vec![0f32; tokens * h];
        let mut mid = vec![0f32; tokens * h];
        let mut up = vec![0f32; tokens * self.config.intermediate_size];
        let act = match self.activation {
            Activation::Gelu => Epilogue::Gelu,
            Activation::GeluTanh => Epilogue::GeluTanh,
            Activation::Relu => Epilogue::Relu,
        };
        for layer in &self.layers {
            layer.qkv.forward(&x, tokens, &mut qkv, Epilogue::Plain);
            attend(&qkv, &spans, heads, &mut ctx);
            layer.attn_out.forward(&ctx, tokens, &mut mid, Epilogue::Residual(&x));
            layer_norm(&mut mid, h, &layer.attn_norm.gamma, &layer.attn_norm.beta, eps);
            layer.up.forward(&mid, tokens, &mut up, act);
            layer.down.forward(&up, tokens, &mut x, Epilogue::Residual(&mid));
            layer_norm(&mut x, h, &layer.out_norm.gamma, &layer.out_norm.beta, eps);
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion() {
        for (h, want) in [(0x3c00u16, 1.0f32), (0xc000, -2.0), (0x0001, 5.960_464_5e-8), (0x7bff, 65504.0), (0, 0.0)] {
            assert_eq!(f16_to_f32(h), want, "{h:#x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
