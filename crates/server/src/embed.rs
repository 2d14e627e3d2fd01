//! Sentence embedding as one protocol-independent operation, used by OpenAI's
//! `/v1/embeddings` and by V2 inference on embedding models: a typed [`EmbedRequest`] in,
//! [`Embeddings`] out. The output width (`dimensions`) and truncation are decided from the
//! tokeniser's lengths before anything is computed; usage is counted from the same lengths.

use std::sync::Arc;

use lathe_runtime::LoadedVersion;
use lathe_types::{ApiError, DType, ErrorKind, Tensor, TensorData};
use serde_json::{Map, Value};

use crate::state::AppState;

/// Most inputs in one request (TEI's `max_client_batch_size` default).
pub const MAX_CLIENT_BATCH_SIZE: usize = 64;

/// What to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    /// UTF-8 texts (checked when tokenised).
    Texts(Vec<Vec<u8>>),
    /// Token-id sequences of the model's own vocabulary, used as given.
    TokenIds(Vec<Vec<i64>>),
}

impl EmbedInput {
    /// Number of inputs.
    pub fn len(&self) -> usize {
        match self {
            EmbedInput::Texts(t) => t.len(),
            EmbedInput::TokenIds(t) => t.len(),
        }
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An embedding request, whatever protocol it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedRequest {
    /// The inputs (at most [`MAX_CLIENT_BATCH_SIZE`]).
    pub input: EmbedInput,
    /// Output width: the first `dimensions` components, L2-renormalised (OpenAI's
    /// `dimensions`, Matryoshka-style); `None` for the model's width.
    pub dimensions: Option<u64>,
    /// Whether inputs over the model's token limit are cut (`true`) or refused with 422.
    pub truncate: bool,
}

/// The answer: one vector per input, with what the tokeniser counted.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// `[inputs, width]`, row-major.
    pub vectors: Vec<f32>,
    /// Components per vector.
    pub width: usize,
    /// Each input's length in tokens before truncation.
    pub tokens: Vec<usize>,
    /// Indices of the inputs that were cut to the model's limit.
    pub truncated: Vec<usize>,
    /// Tokens computed on, after truncation (OpenAI's `usage.prompt_tokens`).
    pub prompt_tokens: usize,
}

/// A failed embedding: the error, and the request field at fault when there is one (OpenAI's
/// `param`).
#[derive(Debug)]
pub struct EmbedError {
    /// What went wrong.
    pub error: ApiError,
    /// The request field at fault.
    pub field: Option<&'static str>,
}

impl EmbedError {
    /// An error blamed on `field`.
    pub fn at(field: &'static str, error: ApiError) -> EmbedError {
        EmbedError { error, field: Some(field) }
    }
}

impl From<ApiError> for EmbedError {
    fn from(error: ApiError) -> EmbedError {
        EmbedError { error, field: None }
    }
}

/// Reads the options both protocols take from a request's JSON fields: `truncate` (default
/// true) and `dimensions` (a positive integer). `prefix` is where the protocol keeps them
/// (`""` for OpenAI's body, `"parameters."` for V2), for the error messages.
pub fn options(fields: &Map<String, Value>, prefix: &str) -> Result<(bool, Option<u64>), EmbedError> {
    let invalid = |field: &'static str, expected: &str| {
        EmbedError::at(field, ApiError::invalid(format!("{prefix}{field}: expected {expected}")))
    };
    let truncate = match fields.get("truncate") {
        None => true,
        Some(v) => v.as_bool().ok_or_else(|| invalid("truncate", "true or false"))?,
    };
    let dimensions = match fields.get("dimensions") {
        None => None,
        Some(v) => Some(v.as_u64().filter(|&d| d >= 1).ok_or_else(|| invalid("dimensions", "a positive integer"))?),
    };
    Ok((truncate, dimensions))
}

/// Whether `v` is an embedding model: one BYTES input, `embedding` and `tokens` outputs.
pub fn is_embedding_model(v: &LoadedVersion) -> bool {
    let sig = v.servable.signature();
    sig.inputs.len() == 1
        && sig.inputs[0].datatype == DType::Bytes
        && sig.outputs.iter().any(|o| o.name == "embedding")
        && sig.outputs.iter().any(|o| o.name == "tokens")
}

/// Refuses models that are not embedding models (field `model`).
pub fn require_embedding_model(v: &LoadedVersion, name: &str) -> Result<(), EmbedError> {
    match is_embedding_model(v) {
        true => Ok(()),
        false => Err(EmbedError::at("model", ApiError::invalid(format!("model {name:?} is not an embedding model")))),
    }
}

/// Embeds `req` on the embedding version `v`: tokenise (blocking pool), decide truncation,
/// compute (the version's batcher), narrow to the requested width.
///
/// Errors: 400 for a bad width, texts that are not UTF-8 or token ids outside the vocabulary;
/// 422 for inputs over the token limit with `truncate: false`; the queue's 429/503/504.
pub async fn embed(st: &AppState, v: &Arc<LoadedVersion>, req: EmbedRequest) -> Result<Embeddings, EmbedError> {
    let model_width = model_width(v);
    let width = output_width(model_width, req.dimensions)?;
    let rows = req.input.len();
    let tokenized = tokenize(st, v, req.input).await?;
    let tokens = v
        .servable
        .untruncated_lengths(&tokenized)
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "the model reports no token lengths"))?;
    let max_tokens = v.manifest.embedding().map_or(usize::MAX, |e| e.max_tokens);
    let truncated = check_lengths(&tokens, max_tokens, req.truncate)?;
    let outputs = crate::infer::submit(st, v, tokenized, rows).await.map_err(blame_input)?;
    let vectors = take_embedding(outputs, rows * model_width)?;
    tokens.iter().for_each(|&t| st.metrics.record_tokens(&v.name, t as f64));
    Ok(Embeddings {
        vectors: narrow(vectors, model_width, width),
        width,
        prompt_tokens: tokens.iter().map(|&t| t.min(max_tokens)).sum(),
        tokens,
        truncated,
    })
}

/// The width of the model's `embedding` output.
fn model_width(v: &LoadedVersion) -> usize {
    let outputs = &v.servable.signature().outputs;
    let embedding = outputs.iter().find(|o| o.name == "embedding");
    embedding.and_then(|o| o.shape.get(1).copied()).unwrap_or(0).max(0) as usize
}

/// The requested width, checked against the model's.
fn output_width(model_width: usize, dimensions: Option<u64>) -> Result<usize, EmbedError> {
    match dimensions {
        None => Ok(model_width),
        Some(d) if d >= 1 && d <= model_width as u64 => Ok(d as usize),
        Some(_) => {
            let message = format!("dimensions: expected an integer from 1 to {model_width}");
            Err(EmbedError::at("dimensions", ApiError::invalid(message)))
        }
    }
}

/// Errors about the inputs' contents are the `input` field's.
fn blame_input(e: ApiError) -> EmbedError {
    let field = matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::OverLimit).then_some("input");
    EmbedError { error: e, field }
}

/// Texts or token ids into what the model computes on, off the async executor.
async fn tokenize(st: &AppState, v: &Arc<LoadedVersion>, input: EmbedInput) -> Result<Vec<Tensor>, EmbedError> {
    match input {
        EmbedInput::Texts(texts) => {
            let name = v.servable.signature().inputs[0].name.clone();
            let texts = Tensor { name, shape: vec![texts.len()], data: TensorData::Bytes(texts) };
            crate::infer::preprocess(st, v, vec![texts]).await.map_err(blame_input)
        }
        EmbedInput::TokenIds(ids) => {
            let servable = v.servable.clone();
            let prepared = tokio::task::spawn_blocking(move || servable.preprocess_token_ids(&ids))
                .await
                .map_err(|_| ApiError::new(ErrorKind::Internal, "preparing the token ids failed"))?;
            let refused = || ApiError::invalid(format!("model {:?} does not take token ids; send texts", v.name));
            prepared.ok_or_else(refused).and_then(|r| r).map_err(blame_input)
        }
    }
}

/// The indices of inputs longer than `max_tokens`; an error (field `input`) when there are
/// any and `truncate` is off.
fn check_lengths(tokens: &[usize], max_tokens: usize, truncate: bool) -> Result<Vec<usize>, EmbedError> {
    let over: Vec<usize> = (0..tokens.len()).filter(|&i| tokens[i] > max_tokens).collect();
    match over.first() {
        Some(&i) if !truncate => {
            let message = format!(
                "input[{i}] has {} tokens, more than the model's limit of {max_tokens}; send truncate: true to cut it",
                tokens[i]
            );
            Err(EmbedError::at("input", ApiError::new(ErrorKind::OverLimit, message)))
        }
        _ => Ok(over),
    }
}

/// The `embedding` output's values, checked to hold `len` of them.
fn take_embedding(outputs: Vec<Tensor>, len: usize) -> Result<Vec<f32>, ApiError> {
    let embedding = outputs.into_iter().find(|t| t.name == "embedding").map(|t| t.data);
    match embedding {
        Some(TensorData::F32(v)) if v.len() == len => Ok(v),
        _ => Err(ApiError::new(ErrorKind::Internal, "the model returned no embeddings of the expected size")),
    }
}

/// Keeps the first `width` of every `model_width` components, L2-renormalised when cut.
fn narrow(vectors: Vec<f32>, model_width: usize, width: usize) -> Vec<f32> {
    if width >= model_width {
        return vectors;
    }
    let mut out = Vec::with_capacity(vectors.len() / model_width.max(1) * width);
    for row in vectors.chunks(model_width) {
        let kept = &row[..width];
        let norm = kept.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        out.extend(kept.iter().map(|x| x / norm));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_are_checked_against_the_model() {
        assert_eq!(output_width(384, None).unwrap(), 384);
        assert_eq!(output_width(384, Some(64)).unwrap(), 64);
        for bad in [0, 385] {
            let e = output_width(384, Some(bad)).unwrap_err();
            assert_eq!(
                (e.field, e.error.message.as_str()),
                (Some("dimensions"), "dimensions: expected an integer from 1 to 384")
            );
        }
    }

    #[test]
    fn truncation_is_decided_from_the_lengths() {
        assert_eq!(check_lengths(&[3, 300, 256, 400], 256, true).unwrap(), vec![1, 3]);
        let e = check_lengths(&[3, 300], 256, false).unwrap_err();
        assert_eq!((e.field, e.error.kind), (Some("input"), ErrorKind::OverLimit));
        assert!(e.error.message.starts_with("input[1] has 300 tokens, more than the model's limit of 256"));
        assert!(check_lengths(&[256], 256, false).unwrap().is_empty());
    }

    #[test]
    fn narrowing_keeps_leading_components_and_renormalises() {
        let v = narrow(vec![3.0, 4.0, 12.0, 0.0, 5.0, 0.0], 3, 2);
        let want = [0.6, 0.8, 0.0, 1.0];
        assert!(v.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{v:?}");
        assert_eq!(narrow(vec![1.0, 2.0], 2, 2), vec![1.0, 2.0]);
    }
}
