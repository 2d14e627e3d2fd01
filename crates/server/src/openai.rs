//! The OpenAI-compatible embeddings API: `POST /v1/embeddings`, with OpenAI's error envelope.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use lathe_runtime::{LoadedVersion, Selector};
use lathe_types::{ApiError, DType, ErrorKind, Tensor, TensorData};
use serde_json::{json, Value};

use crate::body::{json_ok, read_body};
use crate::error::{openai_type_of, status_of};
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// Most inputs in one request (TEI's `max_client_batch_size` default).
pub const MAX_CLIENT_BATCH_SIZE: usize = 64;

/// An error in OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error(e: &ApiError, param: Option<&str>) -> Response {
    let status = status_of(e.kind);
    let kind = openai_type_of(e.kind);
    let body = json!({ "error": { "message": e.message, "type": kind, "param": param, "code": status.as_u16() } });
    let mut r = (status, serde_json::to_vec(&body).expect("json")).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn is_embedding_model(v: &LoadedVersion) -> bool {
    let sig = v.servable.signature();
    sig.inputs.len() == 1
        && sig.inputs[0].datatype == DType::Bytes
        && sig.outputs.iter().any(|o| o.name == "embedding")
        && sig.outputs.iter().any(|o| o.name == "tokens")
}

/// The response body, serialised straight from the vectors (no intermediate JSON values).
#[derive(serde::Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: Vec<Item>,
    model: &'a str,
    usage: Usage,
    truncated_inputs: Vec<usize>,
}

#[derive(serde::Serialize)]
struct Usage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(serde::Serialize)]
struct Item {
    object: &'static str,
    index: usize,
    embedding: Vector,
}

/// An embedding as floats or as base64 of little-endian f32.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Vector {
    Float(Vec<f32>),
    Base64(String),
}

/// What `input` holds: texts, or token-id sequences of the model's own vocabulary.
enum Inputs {
    Texts(Vec<String>),
    TokenIds(Vec<Vec<i64>>),
}

impl Inputs {
    fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::TokenIds(t) => t.len(),
        }
    }
}

/// One token-id sequence: a non-empty list of non-negative integers.
fn token_ids(items: &[Value], at: &str) -> Result<Vec<i64>, ApiError> {
    if items.is_empty() {
        return Err(ApiError::invalid(format!("{at}: the token list is empty")));
    }
    items
        .iter()
        .enumerate()
        .map(|(j, v)| {
            v.as_u64()
                .filter(|&id| id <= u32::MAX as u64)
                .map(|id| id as i64)
                .ok_or_else(|| ApiError::invalid(format!("{at}[{j}]: expected a token id (a non-negative integer)")))
        })
        .collect()
}

/// Parses `input`: a string, a list of strings, a list of token ids, or a list of lists of
/// token ids, at most [`MAX_CLIENT_BATCH_SIZE`] inputs.
fn parse_inputs(input: Option<&Value>) -> Result<Inputs, ApiError> {
    const EXPECTED: &str = "a string, a list of strings, a list of token ids or a list of lists of token ids";
    let items = match input {
        None => return Err(ApiError::invalid(format!("input: missing; expected {EXPECTED}"))),
        Some(Value::String(s)) => return Ok(Inputs::Texts(vec![s.clone()])),
        Some(Value::Array(items)) if items.is_empty() => return Err(ApiError::invalid("input: the list is empty")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid(format!("input: expected {EXPECTED}"))),
    };
    if items[0].is_number() {
        return Ok(Inputs::TokenIds(vec![token_ids(items, "input")?]));
    }
    if !items[0].is_string() && !items[0].is_array() {
        return Err(ApiError::invalid("input[0]: expected a string, a token id or a list of token ids"));
    }
    if items.len() > MAX_CLIENT_BATCH_SIZE {
        return Err(ApiError::new(
            ErrorKind::OverLimit,
            format!("input: {} inputs, more than the limit of {MAX_CLIENT_BATCH_SIZE} per request", items.len()),
        ));
    }
    if items[0].is_array() {
        let ids = items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Array(inner) => token_ids(inner, &format!("input[{i}]")),
                _ => Err(ApiError::invalid(format!("input[{i}]: expected a list of token ids like input[0]"))),
            })
            .collect::<Result<_, _>>()?;
        return Ok(Inputs::TokenIds(ids));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(ApiError::invalid(format!("input[{i}]: expected a string like input[0]"))),
        })
        .collect::<Result<_, _>>()
        .map(Inputs::Texts)
}

/// `POST /v1/embeddings`.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "openai",
    summary = "OpenAI embeddings: input (string, list of strings, token ids or lists of token ids of the model's \
        vocabulary, used as given), model, encoding_format (float or base64), dimensions, truncate (default true)",
    responses(
        (status = 200, description = "`{object: list, data: [{object: embedding, index, embedding}], model, usage, \
            truncated_inputs}`"),
        (status = 400, description = "Invalid request (OpenAI error envelope)"),
        (status = 404, description = "Unknown model"),
        (status = 422, description = "Over a model limit"),
    ),
)]
pub async fn embeddings(State(st): State<AppState>, body: Body) -> Response {
    let started = Instant::now();
    let mut labels =
        RequestLabels { model: String::new(), version: String::new(), protocol: "openai", api: "embeddings", code: 0 };
    let result: Result<Response, (ApiError, Option<&'static str>)> = async {
        let bytes = read_body(body, st.limits.max_body_bytes).await.map_err(|e| (e, None))?;
        let req: Value = serde_json::from_slice(&bytes).map_err(|e| {
            (
                ApiError::invalid(format!(
                    "malformed JSON body: \
            {e}"
                )),
                None,
            )
        })?;
        let Value::Object(obj) = &req else {
            return Err((ApiError::invalid("expected a JSON object"), None));
        };
        for k in obj.keys() {
            if !matches!(k.as_str(), "input" | "model" | "encoding_format" | "dimensions" | "user" | "truncate") {
                return Err((ApiError::invalid(format!("unknown field {k:?}")), None));
            }
        }
        let model = req.get("model").and_then(Value::as_str).ok_or((
            ApiError::invalid(
                "model: expected the model \
            name",
            ),
            Some("model"),
        ))?;
        let inputs = parse_inputs(req.get("input")).map_err(|e| (e, Some("input")))?;
        let base64 = match req.get("encoding_format").and_then(Value::as_str) {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err((
                    ApiError::invalid(format!(
                        "encoding_format: expected float or base64, got \
                {other:?}"
                    )),
                    Some("encoding_format"),
                ))
            }
        };
        let truncate = req
            .get("truncate")
            .map(|v| v.as_bool().ok_or(()))
            .transpose()
            .map_err(|_| (ApiError::invalid("truncate: expected true or false"), Some("truncate")))?
            .unwrap_or(true);
        let loaded = st.manager.resolve(model, &Selector::Default).map_err(|e| (e, Some("model")))?;
        if !is_embedding_model(&loaded) {
            return Err((ApiError::invalid(format!("model {model:?} is not an embedding model")), Some("model")));
        }
        labels.model = model.to_string();
        labels.version = loaded.version.to_string();
        let dim = loaded
            .servable
            .signature()
            .outputs
            .iter()
            .find(|o| o.name == "embedding")
            .and_then(|o| o.shape.get(1).copied())
            .unwrap_or(0) as usize;
        let dimensions = match req.get("dimensions") {
            None => dim,
            Some(v) => match v.as_u64() {
                Some(d) if d >= 1 && d as usize <= dim => d as usize,
                _ => {
                    return Err((
                        ApiError::invalid(format!(
                            "dimensions: expected an integer from 1 to \
                    {dim}"
                        )),
                        Some("dimensions"),
                    ))
                }
            },
        };
        let max_tokens = loaded.manifest.embedding().map_or(usize::MAX, |e| e.max_tokens);
        let n = inputs.len();
        let outputs = match inputs {
            Inputs::Texts(texts) => {
                let tensor = Tensor {
                    name: "text".into(),
                    shape: vec![n],
                    data: TensorData::Bytes(texts.into_iter().map(String::into_bytes).collect()),
                };
                crate::infer::run(&st, &loaded, vec![tensor]).await
            }
            Inputs::TokenIds(ids) => match loaded.servable.preprocess_token_ids(&ids) {
                None => Err(ApiError::invalid(format!("model {model:?} does not take token ids; send texts"))),
                Some(Err(e)) => Err(e),
                Some(Ok(tensors)) => crate::infer::submit(&st, &loaded, tensors, n).await,
            },
        }
        .map_err(|e| {
            let param = matches!(e.kind, ErrorKind::InvalidArgument | ErrorKind::OverLimit).then_some("input");
            (e, param)
        })?;
        let (Some(TensorData::F32(vectors)), Some(TensorData::I64(tokens))) = (
            outputs.iter().find(|t| t.name == "embedding").map(|t| &t.data),
            outputs.iter().find(|t| t.name == "tokens").map(|t| &t.data),
        ) else {
            return Err((ApiError::new(ErrorKind::Internal, "the model returned no embeddings"), None));
        };
        if !truncate {
            if let Some((i, t)) = tokens.iter().enumerate().find(|(_, t)| **t as usize > max_tokens) {
                return Err((
                    ApiError::new(
                        ErrorKind::OverLimit,
                        format!(
                            "input[{i}] has {t} tokens, more than the model's \
                        limit of {max_tokens}; send truncate: true to cut it"
                        ),
                    ),
                    Some("input"),
                ));
            }
        }
        let mut data = Vec::with_capacity(n);
        for (i, v) in vectors.chunks(dim.max(1)).enumerate() {
            let mut v = v[..dimensions].to_vec();
            if dimensions < dim {
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
            let embedding = if base64 {
                Vector::Base64(
                    base64::engine::general_purpose::STANDARD
                        .encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
                )
            } else {
                Vector::Float(v)
            };
            data.push(Item { object: "embedding", index: i, embedding });
        }
        tokens.iter().for_each(|&t| st.metrics.record_tokens(model, t as f64));
        let used: usize = tokens.iter().map(|&t| (t as usize).min(max_tokens)).sum();
        let truncated: Vec<usize> =
            tokens.iter().enumerate().filter(|(_, t)| **t as usize > max_tokens).map(|(i, _)| i).collect();
        Ok(json_ok(&EmbeddingList {
            object: "list",
            data,
            model,
            usage: Usage { prompt_tokens: used, total_tokens: used },
            truncated_inputs: truncated,
        }))
    }
    .await;
    let response = match result {
        Ok(r) => r,
        Err((e, param)) => openai_error(&e, param),
    };
    labels.code = response.status().as_u16();
    st.metrics.record(labels, started.elapsed().as_secs_f64());
    response
}
