//! Sentence embeddings behind the runtime's contract: a BYTES input of texts, an FP32
//! `embedding` output and an INT64 `tokens` output (each input's length before truncation).

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{Loader, Servable};
use lathe_formats::Manifest;
use lathe_types::{ApiError, DType, ErrorKind, HasErrorKind, Signature, Tensor, TensorData, TensorSignature};

use crate::{Backend, Embedder, TokenizedBatch};

/// Kind of model (in the manifest) served by [`EmbeddingLoader`].
pub use lathe_formats::EMBEDDING_KIND;
/// Platform name reported in model metadata, by backend.
pub fn platform_of(backend: Backend) -> &'static str {
    match backend {
        Backend::EncoderBf16 => "lathe_encoder_bf16",
        Backend::EncoderF32 | Backend::Auto => "lathe_encoder_f32",
        Backend::Candle => "lathe_candle",
    }
}

/// The signature every embedding version has.
pub fn embedding_signature(dim: usize) -> Signature {
    Signature {
        inputs: vec![TensorSignature { name: "text".into(), datatype: DType::Bytes, shape: vec![-1] }],
        outputs: vec![
            TensorSignature { name: "embedding".into(), datatype: DType::F32, shape: vec![-1, dim as i64] },
            TensorSignature { name: "tokens".into(), datatype: DType::I64, shape: vec![-1] },
        ],
    }
}

/// A loaded embedding version.
pub struct EmbeddingModel {
    embedder: Embedder,
    signature: Signature,
}

impl EmbeddingModel {
    /// Wraps a loaded embedder.
    pub fn new(embedder: Embedder) -> EmbeddingModel {
        let signature = embedding_signature(embedder.dim());
        EmbeddingModel { embedder, signature }
    }
}

impl Servable for EmbeddingModel {
    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn infer(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ApiError> {
        let tokenized;
        let inputs = match inputs {
            [t] if t.dtype() == DType::Bytes => {
                tokenized = self.preprocess(inputs.to_vec())?;
                tokenized.as_slice()
            }
            other => other,
        };
        let [ids, lengths, full] = inputs else {
            return Err(ApiError::invalid(format!(
                "expected texts or (ids, lengths, full lengths), got {} inputs",
                inputs.len()
            )));
        };
        let (TensorData::I64(ids), TensorData::I64(lengths), TensorData::I64(full)) =
            (&ids.data, &lengths.data, &full.data)
        else {
            return Err(ApiError::new(ErrorKind::Internal, "token tensors must be INT64"));
        };
        let width = self.embedder.max_tokens();
        let rows: Vec<Vec<u32>> = ids
            .chunks(width)
            .zip(lengths)
            .map(|(row, &len)| row[..len as usize].iter().map(|&x| x as u32).collect())
            .collect();
        let vectors = self.embedder.embed_ids(&rows).map_err(|e| e.to_api_error())?;
        let n = rows.len();
        Ok(vec![
            Tensor {
                name: "embedding".into(),
                shape: vec![n, self.embedder.dim()],
                data: TensorData::F32(vectors.concat()),
            },
            Tensor { name: "tokens".into(), shape: vec![n], data: TensorData::I64(full.clone()) },
        ])
    }

    fn preprocesses(&self) -> bool {
        true
    }

    fn tokens_per_row(&self, inputs: &[Tensor]) -> Option<usize> {
        match inputs.get(1).map(|t| &t.data) {
            Some(TensorData::I64(lengths)) => lengths.iter().max().map(|&l| l as usize),
            _ => None,
        }
    }

    /// Tokenises texts into `ids` `[n, max_tokens]` (zero-padded), `lengths` `[n]` and
    /// `full` `[n]` (length before truncation): fixed widths, so requests batch together.
    fn preprocess(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
        let [input] = inputs.as_slice() else {
            return Err(ApiError::invalid(format!("expected 1 input, got {}", inputs.len())));
        };
        let TensorData::Bytes(items) = &input.data else {
            return Err(ApiError::invalid(format!("input {}: expected BYTES", input.name)));
        };
        let texts = items
            .iter()
            .enumerate()
            .map(|(i, b)| {
                std::str::from_utf8(b)
                    .map_err(|_| ApiError::invalid(format!("input {}[{i}]: not valid UTF-8", input.name)))
            })
            .collect::<Result<Vec<&str>, _>>()?;
        let batch = self.embedder.tokenize(&texts, true).map_err(|e| e.to_api_error())?;
        Ok(self.token_tensors(&batch))
    }

    fn preprocess_token_ids(&self, ids: &[Vec<i64>]) -> Option<Result<Vec<Tensor>, ApiError>> {
        Some(self.embedder.prepare_ids(ids).map(|batch| self.token_tensors(&batch)).map_err(|e| e.to_api_error()))
    }

    fn untruncated_lengths(&self, preprocessed: &[Tensor]) -> Option<Vec<usize>> {
        match preprocessed.get(2).map(|t| &t.data) {
            Some(TensorData::I64(full)) => Some(full.iter().map(|&n| n as usize).collect()),
            _ => None,
        }
    }

    fn platform(&self) -> &str {
        platform_of(self.embedder.backend())
    }
}

impl EmbeddingModel {
    /// `ids` `[n, max_tokens]` (zero-padded), `lengths` `[n]` and `full` `[n]` (length
    /// before truncation): fixed widths, so requests batch together.
    fn token_tensors(&self, batch: &TokenizedBatch) -> Vec<Tensor> {
        let width = self.embedder.max_tokens();
        let n = batch.ids.len();
        let mut ids = vec![0i64; n * width];
        for (row, t) in ids.chunks_mut(width).zip(&batch.ids) {
            row[..t.len()].iter_mut().zip(t).for_each(|(d, s)| *d = *s as i64);
        }
        vec![
            Tensor { name: "ids".into(), shape: vec![n, width], data: TensorData::I64(ids) },
            Tensor {
                name: "lengths".into(),
                shape: vec![n],
                data: TensorData::I64(batch.ids.iter().map(|t| t.len() as i64).collect()),
            },
            Tensor {
                name: "full".into(),
                shape: vec![n],
                data: TensorData::I64(batch.full_lengths.iter().map(|&l| l as i64).collect()),
            },
        ]
    }
}

/// Loads `sentence-embedding` versions (an imported Hugging Face folder) on a backend.
pub struct EmbeddingLoader {
    /// Backend for every version it loads.
    pub backend: Backend,
}

impl Loader for EmbeddingLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        if manifest.kind() != EMBEDDING_KIND {
            return Err(format!("model kind {:?} is not served by the embedding engine", manifest.kind()));
        }
        for (file, entry) in &manifest.files {
            let (sha, _) = lathe_formats::atomic::sha256_file(&dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
            if sha != entry.sha256 {
                return Err(format!("{file}: sha256 {sha} does not match the manifest ({})", entry.sha256));
            }
        }
        let embedder = Embedder::load_with(dir, self.backend).map_err(|e| e.to_string())?;
        tracing::info!(dir = %dir.display(), backend = %embedder.backend(), "embedding model loaded");
        Ok(Arc::new(EmbeddingModel::new(embedder)))
    }
}
