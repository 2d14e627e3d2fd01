use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::EmbedError;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the tokens (attention mask respected).
    Mean,
    /// The first ([CLS]) token.
    Cls,
    /// The last real token.
    LastToken,
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    /// Does not truncate: inputs are measured, then cut to `max_seq_length`.
    full_tokenizer: Tokenizer,
    max_seq_length: usize,
    pooling: Pooling,
    normalize: bool,
    dim: usize,
    device: Device,
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
    /// Loads a sentence-transformers folder.
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let config: Config = read_json(&dir.join("config.json"))?;
        let dim =
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(dir.join("config.json")).unwrap_or_default())
                .ok()
                .and_then(|v| v["hidden_size"].as_u64())
                .unwrap_or(0) as usize;
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
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY: the file is mapped read-only; Lathe never writes into version folders.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device)? };
        let model = BertModel::load(vb, &config)?;
        Ok(Embedder { model, full_tokenizer, max_seq_length, pooling, normalize, dim, device })
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
        let full =
            self.full_tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let max = self.max_seq_length;
        let mut batch = TokenizedBatch { ids: Vec::new(), truncated: Vec::new(), full_lengths: Vec::new() };
        for (index, e) in full.iter().enumerate() {
            let ids = e.get_ids();
            if ids.len() > max && !truncate {
                return Err(EmbedError::TooLong { index, tokens: ids.len(), limit: max });
            }
            batch.full_lengths.push(ids.len());
            batch.truncated.push(ids.len() > max);
            if ids.len() > max {
                let mut cut = ids[..max - 1].to_vec();
                cut.push(*ids.last().expect("non-empty"));
                batch.ids.push(cut);
            } else {
                batch.ids.push(ids.to_vec());
            }
        }
        Ok(batch)
    }

    /// Embeds already tokenised inputs (one forward pass, padded to the longest).
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let b = ids.len();
        let len = ids.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut flat = vec![0u32; b * len];
        let mut mask = vec![0u32; b * len];
        for (i, row) in ids.iter().enumerate() {
            flat[i * len..i * len + row.len()].copy_from_slice(row);
            mask[i * len..i * len + row.len()].iter_mut().for_each(|m| *m = 1);
        }
        let input = Tensor::from_vec(flat, (b, len), &self.device)?;
        let mask_t = Tensor::from_vec(mask, (b, len), &self.device)?;
        let types = input.zeros_like()?;
        let hidden = self.model.forward(&input, &types, Some(&mask_t))?; // [b, len, dim]
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
        let pooled = if self.normalize {
            let norm = pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            pooled.broadcast_div(&norm)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2::<f32>()?)
    }

    /// Tokenises (truncating) and embeds.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = self.tokenize(texts, true)?;
        self.embed_ids(&batch.ids)
    }
}
