//! V2 inference on embedding models, through the same operation as OpenAI's embeddings
//! ([`crate::embed`]): request `parameters` `truncate` (default true) and `dimensions` (default
//! the model's width), outputs `embedding` `[n, width]` FP32 and `tokens` `[n]` INT64 (each
//! input's length before truncation).

use std::sync::Arc;

use lathe_runtime::LoadedVersion;
use lathe_types::{ApiError, Tensor, TensorData};
use serde_json::{Map, Value};

use crate::embed::{embed, EmbedInput, EmbedRequest};
use crate::state::AppState;

/// Embeds the texts of a decoded V2 request; returns the signature's outputs, in order.
pub async fn infer(
    st: &AppState,
    v: &Arc<LoadedVersion>,
    parameters: &Map<String, Value>,
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, ApiError> {
    let req = request(v, parameters, inputs)?;
    let out = embed(st, v, req).await.map_err(|e| e.error)?;
    let rows = out.tokens.len();
    Ok(vec![
        Tensor { name: "embedding".into(), shape: vec![rows, out.width], data: TensorData::F32(out.vectors) },
        Tensor {
            name: "tokens".into(),
            shape: vec![rows],
            data: TensorData::I64(out.tokens.iter().map(|&t| t as i64).collect()),
        },
    ])
}

/// The typed request: the conformed text input and the parameters.
fn request(v: &LoadedVersion, parameters: &Map<String, Value>, inputs: Vec<Tensor>) -> Result<EmbedRequest, ApiError> {
    let (mut inputs, _) = crate::infer::conform(v.servable.signature(), inputs)?;
    let TensorData::Bytes(texts) = inputs.swap_remove(0).data else {
        return Err(ApiError::invalid("embedding models take one BYTES input of texts"));
    };
    let (truncate, dimensions) = crate::embed::options(parameters, "parameters.").map_err(|e| e.error)?;
    Ok(EmbedRequest { input: EmbedInput::Texts(texts), dimensions, truncate })
}
