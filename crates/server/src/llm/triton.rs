//! Triton's generate extension: `POST /v2/models/{m}[/versions/{v}]/generate` and
//! `…/generate_stream` with `{"text_input", "parameters"}`; errors as V2's `{"error": …}`.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use lathe_runtime::generation::Delta;
use lathe_types::ApiError;
use serde_json::{json, Map, Value};

use super::request::Common;
use super::stream::{sse, Encoder};
use super::{blocking, collect, resolve_llm, submit};
use crate::body::{json_ok, parse_version, read_body};
use crate::error::HttpError;
use crate::metrics::RequestLabels;
use crate::state::AppState;

/// Tokens generated when the request does not say.
const DEFAULT_MAX_TOKENS: usize = 256;

/// `POST /v2/models/{m}/generate`.
#[utoipa::path(post, path = "/v2/models/{m}/generate", tag = "v2",
    summary = "Triton's generate extension: {text_input, parameters: {max_tokens, temperature, top_p, top_k, seed, \
        stop, …}} → {model_name, model_version, text_output}",
    params(("m" = String, Path, description = "Model name")),
    responses((status = 200, description = "`{model_name, model_version, text_output}`")))]
pub async fn generate(State(st): State<AppState>, Path(m): Path<String>, headers: HeaderMap, body: Body) -> Response {
    run(st, m, None, headers, body, false).await
}

/// `POST /v2/models/{m}/versions/{v}/generate`.
#[utoipa::path(post, path = "/v2/models/{m}/versions/{v}/generate", tag = "v2",
    summary = "Triton's generate extension on one version",
    params(("m" = String, Path, description = "Model name"), ("v" = String, Path, description = "Version")),
    responses((status = 200, description = "`{model_name, model_version, text_output}`")))]
pub async fn generate_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(st, m, Some(v), headers, body, false).await
}

/// `POST /v2/models/{m}/generate_stream`.
#[utoipa::path(post, path = "/v2/models/{m}/generate_stream", tag = "v2",
    summary = "Triton's generate extension, streamed: server-sent events `data: {model_name, model_version, \
        text_output}`; a later error arrives as `data: {\"error\": …}`",
    params(("m" = String, Path, description = "Model name")),
    responses((status = 200, description = "`text/event-stream`")))]
pub async fn generate_stream(
    State(st): State<AppState>,
    Path(m): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(st, m, None, headers, body, true).await
}

/// `POST /v2/models/{m}/versions/{v}/generate_stream`.
#[utoipa::path(post, path = "/v2/models/{m}/versions/{v}/generate_stream", tag = "v2",
    summary = "Triton's generate extension on one version, streamed",
    params(("m" = String, Path, description = "Model name"), ("v" = String, Path, description = "Version")),
    responses((status = 200, description = "`text/event-stream`")))]
pub async fn generate_stream_version(
    State(st): State<AppState>,
    Path((m, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    run(st, m, Some(v), headers, body, true).await
}

async fn run(st: AppState, m: String, v: Option<String>, headers: HeaderMap, body: Body, stream: bool) -> Response {
    let started = Instant::now();
    let api = if stream { "generate_stream" } else { "generate" };
    let mut labels = RequestLabels { model: String::new(), version: String::new(), protocol: "v2", api, code: 0 };
    let response = match answer(&st, &m, v, &headers, body, stream, &mut labels).await {
        Ok(r) => r,
        Err(e) => HttpError(e).into_response(),
    };
    labels.code = response.status().as_u16();
    st.metrics.record(labels, started.elapsed().as_secs_f64());
    response
}

/// A generate request: its `id`, the text, and `parameters` merged over the top level.
struct Fields {
    id: Option<Value>,
    text: String,
    params: Map<String, Value>,
}

/// The request's fields (`parameters` merged over the top level: both forms are in use).
fn fields(bytes: &[u8]) -> Result<Fields, ApiError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
    let Value::Object(mut obj) = value else { return Err(ApiError::invalid("expected a JSON object")) };
    let text = match obj.remove("text_input") {
        Some(Value::String(s)) => s,
        _ => return Err(ApiError::invalid("text_input: expected a string")),
    };
    if let Some(params) = obj.remove("parameters").filter(|p| !p.is_null()) {
        let Value::Object(params) = params else { return Err(ApiError::invalid("parameters: expected an object")) };
        obj.extend(params);
    }
    let id = obj.remove("id").filter(|v| !v.is_null());
    if id.as_ref().is_some_and(|v| !v.is_string()) {
        return Err(ApiError::invalid("id: expected a string"));
    }
    for key in ["model", "n", "stream", "stream_options"] {
        obj.remove(key);
    }
    super::request::check_fields(&obj, &[])?;
    Ok(Fields { id, text, params: obj })
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    st: &AppState,
    m: &str,
    v: Option<String>,
    headers: &HeaderMap,
    body: Body,
    stream: bool,
    labels: &mut RequestLabels,
) -> Result<Response, ApiError> {
    let model = match &v {
        Some(v) => format!("{m}:{}", parse_version(v)?),
        None => m.to_string(),
    };
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    let Fields { id, text, params } = fields(&bytes)?;
    let common = Common::parse(&params, 1, None)?;
    let llm = resolve_llm(st, Some(&model), headers)?;
    labels.model = m.to_string();
    labels.version = llm.loaded.version.to_string();
    let generator = llm.generator();
    let prompt = blocking(move || generator.tokenize(&text, true)).await??;
    let mut choices = submit(&llm, std::slice::from_ref(&prompt), &common, Some(DEFAULT_MAX_TOKENS))?;
    let (name, version) = (m.to_string(), llm.loaded.version.to_string());
    if stream {
        return Ok(sse(choices, Vec::new(), TritonEvents { id, name, version }));
    }
    let out = collect(choices.remove(0)).await?;
    let mut answer = json!({
        "model_name": name,
        "model_version": version,
        "text_output": out.text,
        "finish_reason": out.finished.reason.as_str(),
    });
    if let Some(id) = id {
        answer["id"] = id;
    }
    Ok(json_ok(&answer))
}

/// `{id?, model_name, model_version, text_output}` per delta with text, the last with
/// `finish_reason`; a later error as V2's `{"error": …}`.
struct TritonEvents {
    id: Option<Value>,
    name: String,
    version: String,
}

impl Encoder for TritonEvents {
    fn delta(&mut self, _choice: usize, d: &Delta) -> Vec<Value> {
        if d.text.is_empty() && d.finished.is_none() {
            return Vec::new();
        }
        let mut event = json!({"model_name": self.name, "model_version": self.version, "text_output": d.text});
        if let Some(id) = &self.id {
            event["id"] = id.clone();
        }
        if let Some(f) = &d.finished {
            event["finish_reason"] = json!(f.reason.as_str());
        }
        vec![event]
    }

    fn done_marker(&self) -> bool {
        false
    }

    fn error(&self, message: &str) -> Value {
        json!({ "error": message })
    }
}
