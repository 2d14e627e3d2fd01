//! The OpenAI-compatible embeddings API: `POST /v1/embeddings`, with OpenAI's error envelope.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use lathe_runtime::Selector;
use lathe_types::{ApiError, ErrorKind};
use serde_json::{json, Value};

use crate::body::{json_ok, read_body};
use crate::embed::{
    embed, require_embedding_model, EmbedError, EmbedInput, EmbedRequest, Embeddings, MAX_CLIENT_BATCH_SIZE,
};
use crate::error::{openai_type_of, status_of};
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// An error in OpenAI's envelope: `{"error": {"message", "type", "param", "code"}}`.
pub fn openai_error(e: &ApiError, param: Option<&str>) -> Response {
    let status = status_of(e.kind);
    let kind = openai_type_of(e.kind);
    let body = json!({ "error": { "message": e.message, "type": kind, "param": param, "code": status.as_u16() } });
    let mut r = (status, serde_json::to_vec(&body).expect("json")).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
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

/// A request to `/v1/embeddings`, checked field by field.
struct EmbeddingsRequest {
    model: String,
    embed: EmbedRequest,
    base64: bool,
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
fn parse_inputs(input: Option<&Value>) -> Result<EmbedInput, ApiError> {
    const EXPECTED: &str = "a string, a list of strings, a list of token ids or a list of lists of token ids";
    let items = match input {
        None => return Err(ApiError::invalid(format!("input: missing; expected {EXPECTED}"))),
        Some(Value::String(s)) => return Ok(EmbedInput::Texts(vec![s.clone().into_bytes()])),
        Some(Value::Array(items)) if items.is_empty() => return Err(ApiError::invalid("input: the list is empty")),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(ApiError::invalid(format!("input: expected {EXPECTED}"))),
    };
    if items[0].is_number() {
        return Ok(EmbedInput::TokenIds(vec![token_ids(items, "input")?]));
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
        return Ok(EmbedInput::TokenIds(ids));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.clone().into_bytes()),
            _ => Err(ApiError::invalid(format!("input[{i}]: expected a string like input[0]"))),
        })
        .collect::<Result<_, _>>()
        .map(EmbedInput::Texts)
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
    let response = match answer(&st, body, &mut labels).await {
        Ok(r) => r,
        Err(e) => openai_error(&e.error, e.field),
    };
    labels.code = response.status().as_u16();
    st.metrics.record(labels, started.elapsed().as_secs_f64());
    response
}

/// Reads and checks the request, resolves the model, embeds, encodes.
async fn answer(st: &AppState, body: Body, labels: &mut RequestLabels) -> Result<Response, EmbedError> {
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    let req = parse_request(&bytes)?;
    let loaded = st.manager.resolve(&req.model, &Selector::Default).map_err(|e| EmbedError::at("model", e))?;
    require_embedding_model(&loaded, &req.model)?;
    labels.model = req.model.clone();
    labels.version = loaded.version.to_string();
    let out = embed(st, &loaded, req.embed).await?;
    Ok(json_ok(&encode_list(&req.model, out, req.base64)))
}

const FIELDS: [&str; 6] = ["input", "model", "encoding_format", "dimensions", "user", "truncate"];

/// Parses the body into a typed request; errors name the field.
fn parse_request(bytes: &[u8]) -> Result<EmbeddingsRequest, EmbedError> {
    let req: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
    let Value::Object(obj) = req else {
        return Err(ApiError::invalid("expected a JSON object").into());
    };
    if let Some(k) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!("unknown field {k:?}")).into());
    }
    let field = |name: &'static str, message: &str| EmbedError::at(name, ApiError::invalid(message));
    let model =
        obj.get("model").and_then(Value::as_str).ok_or_else(|| field("model", "model: expected the model name"))?;
    let input = parse_inputs(obj.get("input")).map_err(|e| EmbedError::at("input", e))?;
    let base64 = match obj.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            let message = format!("encoding_format: expected float or base64, got {other:?}");
            return Err(field("encoding_format", &message));
        }
    };
    let (truncate, dimensions) = crate::embed::options(&obj, "")?;
    let embed = EmbedRequest { input, dimensions, truncate };
    Ok(EmbeddingsRequest { model: model.to_string(), embed, base64 })
}

/// OpenAI's `{object: list, data, model, usage}` (plus TEI-style `truncated_inputs`).
fn encode_list(model: &str, out: Embeddings, base64: bool) -> EmbeddingList<'_> {
    let data = out
        .vectors
        .chunks(out.width.max(1))
        .enumerate()
        .map(|(index, v)| {
            let embedding = match base64 {
                true => Vector::Base64(
                    base64::engine::general_purpose::STANDARD
                        .encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()),
                ),
                false => Vector::Float(v.to_vec()),
            };
            Item { object: "embedding", index, embedding }
        })
        .collect();
    let usage = Usage { prompt_tokens: out.prompt_tokens, total_tokens: out.prompt_tokens };
    EmbeddingList { object: "list", data, model, usage, truncated_inputs: out.truncated }
}
