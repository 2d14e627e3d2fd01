//! vLLM's `POST /tokenize` and `POST /detokenize`.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use lathe_types::ApiError;
use serde_json::{json, Map, Value};

use super::request::boolean;
use super::{blocking, param_of, resolve_llm};
use crate::body::{json_ok, read_body};
use crate::openai::openai_error;
use crate::state::AppState;

async fn object(st: &AppState, body: Body) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err(ApiError::invalid("expected a JSON object")),
        Err(e) => Err(ApiError::invalid(format!("malformed JSON body: {e}"))),
    }
}

fn model(obj: &Map<String, Value>) -> Result<Option<&str>, ApiError> {
    match obj.get("model") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::invalid("model: expected the model's name")),
    }
}

fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(v) => json_ok(&v),
        Err(e) => openai_error(&e, param_of(&e).as_deref()),
    }
}

/// `POST /tokenize`.
#[utoipa::path(
    post,
    path = "/tokenize",
    tag = "openai",
    summary = "vLLM's tokenize: {model, prompt, add_special_tokens (default true)} or {model, messages} (the chat \
        template applied) → {count, max_model_len, tokens}",
    responses(
        (status = 200, description = "`{count, max_model_len, tokens}`"),
        (status = 400, description = "Invalid request (OpenAI error envelope)"),
    ),
)]
pub async fn tokenize(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    answer(tokenize_body(&st, &headers, body).await)
}

async fn tokenize_body(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let obj = object(st, body).await?;
    let llm = resolve_llm(st, model(&obj)?, headers)?;
    let generator = llm.generator();
    let tokens = if obj.contains_key("messages") {
        let messages = super::chat::parse_messages(&obj)?;
        blocking(move || generator.chat_prompt(&messages)).await??
    } else {
        let prompt = match obj.get("prompt") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err(ApiError::invalid("prompt: expected a string (or messages: a chat)")),
        };
        let special = boolean(&obj, "add_special_tokens")?.unwrap_or(true);
        blocking(move || generator.tokenize(&prompt, special)).await??
    };
    Ok(json!({"count": tokens.len(), "max_model_len": llm.context(), "tokens": tokens}))
}

/// `POST /detokenize`.
#[utoipa::path(
    post,
    path = "/detokenize",
    tag = "openai",
    summary = "vLLM's detokenize: {model, tokens} → {prompt}",
    responses((status = 200, description = "`{prompt}`"), (status = 400, description = "Invalid")),
)]
pub async fn detokenize(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    answer(detokenize_body(&st, &headers, body).await)
}

async fn detokenize_body(st: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let obj = object(st, body).await?;
    let llm = resolve_llm(st, model(&obj)?, headers)?;
    let tokens: Vec<u32> = match obj.get("tokens") {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let id = v.as_u64().filter(|&id| id <= u32::MAX as u64);
                id.map(|id| id as u32).ok_or_else(|| ApiError::invalid(format!("tokens[{j}]: expected a token id")))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(ApiError::invalid("tokens: expected a list of token ids")),
    };
    let generator = llm.generator();
    let text = blocking(move || generator.detokenize(&tokens))
        .await?
        .map_err(|e| ApiError::invalid(format!("tokens: {}", e.message)))?;
    Ok(json!({"prompt": text}))
}
