use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::Tokenizer;

use lathe_kernels::bf16;
use lathe_kernels::linear::Precision;

use crate::encoder::bert::{BertConfig, BertEncoder};
use crate::EmbedError;

/// Which implementation runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Lathe's encoder in bfloat16 where the CPU has AVX-512 BF16, else in f32; candle for
    /// architectures Lathe's encoder does not run.
    Auto,
    /// Lathe's encoder, bfloat16 products with f32 accumulation (needs AVX-512 BF16).
    EncoderBf16,
    /// Lathe's encoder, f32 throughout.
    EncoderF32,
    /// candle's BERT, f32.
    Candle,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            // `native-*` are the names of earlier releases, still accepted.
            "encoder-bf16" | "native-bf16" => Ok(Backend::EncoderBf16),
            "encoder-f32" | "native-f32" => Ok(Backend::EncoderF32),
            "candle" => Ok(Backend::Candle),
            other => Err(format!("unknown backend {other:?}: expected auto, encoder-bf16, encoder-f32 or candle")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::EncoderBf16 => "encoder-bf16",
            Backend::EncoderF32 => "encoder-f32",
            Backend::Candle => "candle",
        })
    }
}

/// Tokens per forward pass of Lathe's encoder.
const ENCODER_CHUNK_TOKENS: usize = 1024;

enum Encoder {
    Own(Box<BertEncoder>),
    Candle(Box<BertModel>, Device),
}

pub use lathe_formats::Pooling;

/// A loaded sentence-embedding model.
pub struct Embedder {
    encoder: Encoder,
    backend: Backend,
    vocab_size: usize,
    /// Does not truncate: inputs are measured, then cut to `max_seq_length`.
    full_tokenizer: Tokenizer,
    max_seq_length: usize,
    pooling: Pooling,
    normalize: bool,
    dim: usize,
}

/// Token ids of a batch, before padding.
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// Ids per input (special tokens included, truncated to the limit).
    pub ids: Vec<Vec<u32>>,
    /// Whether each input was truncated.
    pub truncated: Vec<bool>,
    /// Tokens of each input before truncation.
    pub full_lengths: Vec<usize>,
}

impl TokenizedBatch {
    /// Adds one input, cut to `max` tokens keeping its last (special) token, as the Hugging
    /// Face tokenizer truncates.
    fn push(&mut self, ids: &[u32], max: usize) {
        self.full_lengths.push(ids.len());
        self.truncated.push(ids.len() > max);
        if ids.len() > max {
            let mut cut = ids[..max - 1].to_vec();
            cut.push(*ids.last().expect("non-empty"));
            self.ids.push(cut);
        } else {
            self.ids.push(ids.to_vec());
        }
    }
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(rename = "type")]
    kind: String,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbedError> {
    let bytes = std::fs::read(path)
        .map_err(|e| EmbedError::File { path: path.display().to_string(), message: e.to_string() })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| EmbedError::File { path: path.display().to_string(), message: e.to_string() })
}

impl Embedder {
    /// Loads a sentence-transformers folder with the [`Backend::Auto`] choice.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        Embedder::load_with(dir, Backend::Auto)
    }

    /// Loads a sentence-transformers folder on the given backend.
    pub fn load_with(dir: &Path, backend: Backend) -> Result<Embedder, EmbedError> {
        let bert_config: BertConfig = read_json(&dir.join("config.json"))?;
        let dim = bert_config.hidden_size;
        let vocab_size = bert_config.vocab_size;
        let max_seq_length = if dir.join("sentence_bert_config.json").is_file() {
            read_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))?.max_seq_length.unwrap_or(512)
        } else {
            512
        };
        let pooling = if dir.join("1_Pooling/config.json").is_file() {
            let p: PoolingConfig = read_json(&dir.join("1_Pooling/config.json"))?;
            match (p.pooling_mode_mean_tokens, p.pooling_mode_cls_token, p.pooling_mode_lasttoken) {
                (_, true, _) => Pooling::Cls,
                (_, _, true) => Pooling::LastToken,
                _ => Pooling::Mean,
            }
        } else {
            Pooling::Mean
        };
        let normalize = dir.join("modules.json").is_file()
            && read_json::<Vec<Module>>(&dir.join("modules.json"))?.iter().any(|m| m.kind.ends_with("Normalize"));
        let mut full_tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        full_tokenizer.with_truncation(None).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        full_tokenizer.with_padding(None);
        let runs_bert = BertEncoder::supports(&bert_config);
        let backend = match backend {
            Backend::Auto if runs_bert && bf16::supported() => Backend::EncoderBf16,
            Backend::Auto if runs_bert => Backend::EncoderF32,
            Backend::Auto => Backend::Candle,
            Backend::EncoderBf16 if !bf16::supported() => {
                return Err(EmbedError::Model(
                    "backend encoder-bf16 needs a CPU with AVX-512 BF16 (and LATHE_CPU allowing avx512)".into(),
                ))
            }
            Backend::EncoderBf16 | Backend::EncoderF32 if !runs_bert => {
                return Err(EmbedError::Model(format!(
                    "Lathe's encoder does not run model_type {:?} (hidden_act {:?}, positions {:?}); use candle",
                    bert_config.model_type, bert_config.hidden_act, bert_config.position_embedding_type
                )))
            }
            other => other,
        };
        let max_seq_length = max_seq_length.min(bert_config.max_position_embeddings);
        let weights = dir.join("model.safetensors");
        let encoder = match backend {
            Backend::EncoderBf16 => Encoder::Own(Box::new(BertEncoder::load(&weights, bert_config, Precision::Bf16)?)),
            Backend::EncoderF32 => Encoder::Own(Box::new(BertEncoder::load(&weights, bert_config, Precision::F32)?)),
            _ => {
                let config: Config = read_json(&dir.join("config.json"))?;
                let device = Device::Cpu;
                // Read, not memory-mapped: candle copies every tensor at load anyway, and a map
                // would need `unsafe` here.
                let bytes = std::fs::read(&weights)
                    .map_err(|e| EmbedError::File { path: weights.display().to_string(), message: e.to_string() })?;
                let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)?;
                Encoder::Candle(Box::new(BertModel::load(vb, &config)?), device)
            }
        };
        Ok(Embedder { encoder, backend, vocab_size, full_tokenizer, max_seq_length, pooling, normalize, dim })
    }

    /// The backend that runs the encoder (never [`Backend::Auto`]).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Pooling mode.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Whether outputs are L2-normalised.
    pub fn normalizes(&self) -> bool {
        self.normalize
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Longest input, in tokens (special tokens included).
    pub fn max_tokens(&self) -> usize {
        self.max_seq_length
    }

    /// Tokenises texts; over-long inputs are truncated (the last special token kept, as the
    /// Hugging Face tokenizer does), or refused when `truncate` is off.
    pub fn tokenize(&self, texts: &[&str], truncate: bool) -> Result<TokenizedBatch, EmbedError> {
        // One text at a time on the calling thread: `encode_batch` would queue on the rayon
        // pool, behind the encoder's work, and so serialise tokenisation with inference.
        let full = texts
            .iter()
            .map(|t| self.full_tokenizer.encode(*t, true))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let max = self.max_seq_length;
        let mut batch = TokenizedBatch { ids: Vec::new(), truncated: Vec::new(), full_lengths: Vec::new() };
        for (index, e) in full.iter().enumerate() {
            let ids = e.get_ids();
            if ids.len() > max && !truncate {
                return Err(EmbedError::TooLong { index, tokens: ids.len(), limit: max });
            }
            batch.push(ids, max);
        }
        Ok(batch)
    }

    /// Takes caller-supplied token ids (used as given: special tokens are the caller's to
    /// add): every sequence non-empty with ids below the vocabulary size; over-long ones are
    /// cut like tokenised texts (the last token kept).
    pub fn prepare_ids(&self, ids: &[Vec<i64>]) -> Result<TokenizedBatch, EmbedError> {
        let mut batch = TokenizedBatch { ids: Vec::new(), truncated: Vec::new(), full_lengths: Vec::new() };
        for (index, row) in ids.iter().enumerate() {
            if row.is_empty() {
                return Err(EmbedError::BadTokens { index, message: "no tokens".into() });
            }
            if let Some(bad) = row.iter().find(|&&id| id < 0 || id as usize >= self.vocab_size) {
                return Err(EmbedError::BadTokens {
                    index,
                    message: format!("token id {bad} is outside the vocabulary (0 to {})", self.vocab_size - 1),
                });
            }
            let row: Vec<u32> = row.iter().map(|&id| id as u32).collect();
            batch.push(&row, self.max_seq_length);
        }
        Ok(batch)
    }

    /// Embeds already tokenised inputs (made by [`Embedder::tokenize`] or checked by
    /// [`Embedder::prepare_ids`]).
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pooled = match &self.encoder {
            Encoder::Own(bert) => {
                // Runs of about ENCODER_CHUNK_TOKENS tokens keep the activations in cache.
                let mut pooled = Vec::with_capacity(ids.len());
                let mut start = 0;
                while start < ids.len() {
                    let mut end = start + 1;
                    let mut tokens = ids[start].len();
                    while end < ids.len() && tokens + ids[end].len() <= ENCODER_CHUNK_TOKENS {
                        tokens += ids[end].len();
                        end += 1;
                    }
                    pooled.extend(self.pool_packed(&bert.forward(&ids[start..end]), &ids[start..end]));
                    start = end;
                }
                pooled
            }
            Encoder::Candle(model, device) => self.embed_candle(model, device, ids)?,
        };
        if self.normalize {
            for v in &mut pooled {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(pooled)
    }

    /// Pools the packed hidden states of Lathe's encoder.
    fn pool_packed(&self, hidden: &[f32], ids: &[Vec<u32>]) -> Vec<Vec<f32>> {
        let h = self.dim;
        let mut start = 0;
        ids.iter()
            .map(|seq| {
                let rows = &hidden[start * h..(start + seq.len()) * h];
                start += seq.len();
                match self.pooling {
                    Pooling::Mean => {
                        let mut sum = vec![0f32; h];
                        rows.chunks_exact(h).for_each(|r| sum.iter_mut().zip(r).for_each(|(s, x)| *s += x));
                        let n = seq.len().max(1) as f32;
                        sum.iter_mut().for_each(|s| *s /= n);
                        sum
                    }
                    Pooling::Cls => rows[..h].to_vec(),
                    Pooling::LastToken => rows[rows.len() - h..].to_vec(),
                }
            })
            .collect()
    }

    /// One padded forward pass on candle, pooled.
    fn embed_candle(&self, model: &BertModel, device: &Device, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let b = ids.len();
        let len = ids.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut flat = vec![0u32; b * len];
        let mut mask = vec![0u32; b * len];
        for (i, row) in ids.iter().enumerate() {
            flat[i * len..i * len + row.len()].copy_from_slice(row);
            mask[i * len..i * len + row.len()].iter_mut().for_each(|m| *m = 1);
        }
        let input = Tensor::from_vec(flat, (b, len), device)?;
        let mask_t = Tensor::from_vec(mask, (b, len), device)?;
        let types = input.zeros_like()?;
        let hidden = model.forward(&input, &types, Some(&mask_t))?; // [b, len, dim]
        let pooled = match self.pooling {
            Pooling::Mean => {
                let m = mask_t.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::LastToken => {
                let rows: Vec<Tensor> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, r)| hidden.get(i)?.get(r.len().saturating_sub(1)))
                    .collect::<candle_core::Result<_>>()?;
                Tensor::stack(&rows, 0)?
            }
        };
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// Tokenises (truncating) and embeds.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = self.tokenize(texts, true)?;
        self.embed_ids(&batch.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_names_and_their_earlier_aliases_parse() {
        for backend in [Backend::Auto, Backend::EncoderBf16, Backend::EncoderF32, Backend::Candle] {
            assert_eq!(backend.to_string().parse::<Backend>(), Ok(backend));
        }
        assert_eq!("native-bf16".parse::<Backend>(), Ok(Backend::EncoderBf16));
        assert_eq!("native-f32".parse::<Backend>(), Ok(Backend::EncoderF32));
        let err = "gpu".parse::<Backend>().unwrap_err();
        assert!(err.contains("expected auto, encoder-bf16, encoder-f32 or candle"), "{err}");
    }
}
