//! The request log middleware: for a sampled share of each model's inference requests, the
//! request and response as one JSON line on the log's queue (see `lathe_monitor::RequestLog`,
//! which drops rather than blocks). `lathe replay` sends such a log back to a server.
//!
//! A line: `time` (RFC 3339, UTC), `model`, `version` (when the answer names it),
//! `method`, `path`, `query`, `content_type`, `inference_header_content_length` (V2 binary
//! bodies), `status`, `latency_ms`, `redacted`, `request` (a JSON body) or `request_base64`
//! (any other body), and `response` (the JSON answer; left out for streams).

use std::time::Instant;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use lathe_types::{ApiError, ErrorKind};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::error::HttpError;
use crate::observe::RequestLogSettings;
use crate::state::AppState;

/// Replaces what redacted inputs held.
pub const REDACTED: &str = "[redacted]";

/// Samples and logs inference requests when the request log is on.
pub async fn record(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(settings) = st.observe.request_log.as_ref() else { return next.run(req).await };
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(model_in_path) = model_of(req.uri().path()) else { return next.run(req).await };
    if model_in_path.is_some_and(|m| !sampled(settings, m)) {
        return next.run(req).await;
    }
    let model_in_path = model_in_path.map(str::to_string);
    let path = req.uri().path().to_string();
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, st.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => return too_large(st.limits.max_body_bytes),
    };
    let model = match model_in_path {
        Some(m) => m,
        None => match body_model(&bytes) {
            Some(m) if sampled(settings, &m) => m,
            _ => return next.run(Request::from_parts(parts, Body::from(bytes))).await,
        },
    };
    let entry = Entry { model, path, query: parts.uri.query().map(str::to_string), headers: parts.headers.clone() };
    let started = Instant::now();
    let response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    finish(&st, settings, entry, bytes, started, response).await
}

struct Entry {
    model: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
}

fn sampled(settings: &RequestLogSettings, model: &str) -> bool {
    let rate = settings.rate(model);
    rate >= 1.0 || (rate > 0.0 && rand::random::<f64>() < rate)
}

fn too_large(limit: usize) -> Response {
    let e = ApiError::new(ErrorKind::PayloadTooLarge, format!("the request body is larger than {limit} bytes"));
    HttpError(e).into_response()
}

/// Buffers the answer (not streams), queues the line, and returns the answer unchanged. The
/// line is made on the log's thread from the buffered bytes.
async fn finish(
    st: &AppState,
    settings: &RequestLogSettings,
    entry: Entry,
    request: Bytes,
    started: Instant,
    response: Response,
) -> Response {
    let streamed = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("text/event-stream"));
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let (answer, response) = if streamed {
        (None, Response::from_parts(parts, body))
    } else {
        match to_bytes(body, usize::MAX).await {
            Ok(b) => (Some(b.clone()), Response::from_parts(parts, Body::from(b))),
            Err(_) => {
                return HttpError(ApiError::new(ErrorKind::Internal, "reading the answer failed")).into_response()
            }
        }
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1e3;
    let redact = settings.redact.clone();
    let single_input = if redact.is_empty() { None } else { single_input(st, &entry.model) };
    let time = now();
    settings.log.record_with(move || {
        let exchange = Exchange { request, answer, status, latency_ms, time };
        line(entry, exchange, &redact, single_input.as_deref())
    });
    response
}

/// What a line records besides the request's names.
struct Exchange {
    request: Bytes,
    answer: Option<Bytes>,
    status: u16,
    latency_ms: f64,
    time: String,
}

/// One line as written: the bodies are embedded as they came when nothing is redacted.
#[derive(serde::Serialize)]
struct Record<'a> {
    time: &'a str,
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    method: &'static str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inference_header_content_length: Option<&'a str>,
    status: u16,
    latency_ms: f64,
    redacted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<Json<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Json<'a>>,
}

/// A JSON body: as received, or rebuilt (compacted onto one line, or redacted).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Json<'a> {
    Raw(&'a RawValue),
    Tree(Value),
}

fn line(entry: Entry, x: Exchange, redact: &[String], single_input: Option<&str>) -> String {
    let header = |name: &str| entry.headers.get(name).and_then(|v| v.to_str().ok());
    let binary_len = header("inference-header-content-length");
    let (request, request_base64, redacted) = request_json(&x.request, binary_len.is_some(), redact, single_input);
    let record = Record {
        time: &x.time,
        model: &entry.model,
        version: x.answer.as_deref().and_then(answered_version),
        method: "POST",
        path: &entry.path,
        query: entry.query.as_deref(),
        content_type: header("content-type"),
        inference_header_content_length: binary_len,
        status: x.status,
        latency_ms: (x.latency_ms * 1000.0).round() / 1000.0,
        redacted,
        request,
        request_base64,
        response: x.answer.as_deref().and_then(answer_json),
    };
    serde_json::to_string(&record).expect("a record serialises")
}

/// The request body: JSON as received (compacted when it spans lines), redacted when inputs are
/// to be hidden; other bodies (V2 binary, not JSON) in base64 under `request_base64`, or, when
/// inputs are to be hidden, not at all, since they cannot be inspected. Returns the two fields
/// and whether anything was hidden.
fn request_json<'a>(
    body: &'a [u8],
    binary: bool,
    redact: &[String],
    single_input: Option<&str>,
) -> (Option<Json<'a>>, Option<String>, bool) {
    let opaque = || match redact.is_empty() {
        true => (None, Some(base64::engine::general_purpose::STANDARD.encode(body)), false),
        false => (Some(Json::Tree(Value::String(REDACTED.into()))), None, true),
    };
    if binary {
        return opaque();
    }
    if redact.is_empty() && !body.iter().any(|&b| b == b'\n' || b == b'\r') {
        return match serde_json::from_slice::<&RawValue>(body) {
            Ok(raw) => (Some(Json::Raw(raw)), None, false),
            Err(_) => opaque(),
        };
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            let redacted = redact_inputs(&mut v, redact, single_input);
            (Some(Json::Tree(v)), None, redacted)
        }
        Err(_) => opaque(),
    }
}

/// An answer to embed: as received, or compacted when it spans lines; `None` when not JSON.
fn answer_json(answer: &[u8]) -> Option<Json<'_>> {
    if answer.iter().any(|&b| b == b'\n' || b == b'\r') {
        return serde_json::from_slice::<Value>(answer).ok().map(Json::Tree);
    }
    serde_json::from_slice::<&RawValue>(answer).ok().map(Json::Raw)
}

/// `model_version` of a V2 answer, read without building the document.
fn answered_version(answer: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        model_version: Option<String>,
    }
    serde_json::from_slice::<VersionOnly>(answer).ok()?.model_version
}

fn now() -> String {
    let format = time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::now_utc().format(&format).unwrap_or_default()
}

/// The model named in an inference path: `Some(Some(m))` for `/v1/models/m…:verb` and
/// `/v2/models/m/…/{infer,explain,generate}`, `Some(None)` for the OpenAI routes (the model is
/// in the body), `None` for paths that are not inference.
fn model_of(path: &str) -> Option<Option<&str>> {
    if matches!(path, "/v1/embeddings" | "/v1/chat/completions" | "/v1/completions") {
        return Some(None);
    }
    if let Some(rest) = path.strip_prefix("/v1/models/") {
        let (target, verb) = rest.rsplit_once(':')?;
        if !matches!(verb, "predict" | "classify" | "regress" | "explain") {
            return None;
        }
        return Some(Some(target.split('/').next()?));
    }
    let rest = path.strip_prefix("/v2/models/")?;
    let last = rest.rsplit('/').next()?;
    if !matches!(last, "infer" | "explain" | "generate" | "generate_stream") {
        return None;
    }
    Some(Some(rest.split('/').next()?))
}

fn body_model(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ModelOnly {
        model: Option<String>,
    }
    serde_json::from_slice::<ModelOnly>(body).ok()?.model
}

/// The name of a model's only input, for redacting bare TF Serving instances.
fn single_input(st: &AppState, model: &str) -> Option<String> {
    let loaded = st.manager.resolve(model, &lathe_runtime::Selector::Default).ok()?;
    match &loaded.servable.signature().inputs[..] {
        [one] => Some(one.name.clone()),
        _ => None,
    }
}

/// Replaces the values of the named inputs (TF Serving rows and columns, V2 tensors, and
/// top-level keys such as OpenAI's `input` or `messages`); returns whether anything was.
pub fn redact_inputs(body: &mut Value, names: &[String], single_input: Option<&str>) -> bool {
    if names.is_empty() {
        return false;
    }
    let hidden = |n: &str| names.iter().any(|x| x == n);
    let mut any = false;
    let mut hide = |v: &mut Value| {
        *v = Value::String(REDACTED.into());
        any = true;
    };
    let Value::Object(top) = body else { return false };
    if let Some(Value::Array(rows)) = top.get_mut("instances") {
        let bare = rows.iter().any(|r| !r.is_object());
        if bare && single_input.is_some_and(hidden) {
            rows.iter_mut().for_each(&mut hide);
        }
        for row in rows.iter_mut().filter_map(Value::as_object_mut) {
            row.iter_mut().filter(|(k, _)| hidden(k)).for_each(|(_, v)| hide(v));
        }
    }
    match top.get_mut("inputs") {
        Some(Value::Object(columns)) => columns.iter_mut().filter(|(k, _)| hidden(k)).for_each(|(_, v)| hide(v)),
        Some(Value::Array(tensors)) if is_tensor_list(tensors) => {
            for t in tensors.iter_mut().filter_map(Value::as_object_mut) {
                if t.get("name").and_then(Value::as_str).is_some_and(hidden) {
                    if let Some(data) = t.get_mut("data") {
                        hide(data);
                    }
                }
            }
        }
        // TF Serving's columnar form of a single input: `{"inputs": [[…], …]}` or a value.
        Some(v) if single_input.is_some_and(hidden) => hide(v),
        _ => {}
    }
    top.iter_mut().filter(|(k, _)| hidden(k) && k.as_str() != "inputs").for_each(|(_, v)| hide(v));
    any
}

/// Whether `items` is a V2 list of named tensors.
fn is_tensor_list(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(|t| t.get("name").is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_paths_name_their_model() {
        assert_eq!(model_of("/v1/models/mnist/versions/2:predict"), Some(Some("mnist")));
        assert_eq!(model_of("/v2/models/mnist/versions/2/infer"), Some(Some("mnist")));
        assert_eq!(model_of("/v1/chat/completions"), Some(None));
        assert_eq!(model_of("/v1/models/mnist/rollback"), None);
        assert_eq!(model_of("/v2/repository/index"), None);
    }

    #[test]
    fn redaction_covers_rows_columns_tensors_and_top_level_keys() {
        let names = vec!["ssn".to_string(), "messages".to_string()];
        let mut rows = json!({"instances": [{"ssn": "1", "age": 3}]});
        assert!(redact_inputs(&mut rows, &names, None));
        assert_eq!(rows, json!({"instances": [{"ssn": REDACTED, "age": 3}]}));
        let mut v2 = json!({"inputs": [{"name": "ssn", "data": [1]}, {"name": "age", "data": [3]}]});
        assert!(redact_inputs(&mut v2, &names, None));
        assert_eq!(v2["inputs"][0]["data"], json!(REDACTED));
        assert_eq!(v2["inputs"][1]["data"], json!([3]));
        let mut chat = json!({"model": "m", "messages": [{"role": "user", "content": "secret"}]});
        assert!(redact_inputs(&mut chat, &names, None));
        assert_eq!(chat["messages"], json!(REDACTED));
        let mut columnar = json!({"inputs": [[1, 2]]});
        assert!(redact_inputs(&mut columnar, &names, Some("ssn")));
        assert_eq!(columnar["inputs"], json!(REDACTED));
        let mut bare = json!({"instances": [[1, 2]]});
        assert!(redact_inputs(&mut bare, &names, Some("ssn")));
        assert!(!redact_inputs(&mut json!({"instances": [[1]]}), &names, Some("image")));
    }

    #[test]
    fn a_pretty_printed_body_becomes_one_line_and_opaque_bodies_are_hidden_when_redacting() {
        let pretty = b"{\n  \"instances\": [[1,\n 2]]\n}\n";
        let (request, b64, redacted) = request_json(pretty, false, &[], None);
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!((text.as_str(), b64, redacted), (r#"{"instances":[[1,2]]}"#, None, false));
        let (request, b64, _) = request_json(b"not json", false, &[], None);
        assert!(request.is_none());
        assert_eq!(b64.as_deref(), Some("bm90IGpzb24="));
        let names = vec!["image".to_string()];
        let (request, b64, redacted) = request_json(b"\x01\x02", true, &names, None);
        assert_eq!(serde_json::to_value(&request).unwrap(), json!(REDACTED));
        assert_eq!((b64, redacted), (None, true));
    }
}
