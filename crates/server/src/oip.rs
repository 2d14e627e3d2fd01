//! Open Inference Protocol (KServe V2) REST: health, metadata, readiness, infer (JSON and
//! binary), model configuration and statistics.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lathe_runtime::{LoadState, LoadedVersion, Selector, VersionPolicy};
use lathe_types::{ApiError, ErrorKind};
use serde_json::{json, Value};

use crate::body::{json_ok, json_response, parse_version, read_body};
use crate::error::{HttpError, HttpResult};
use crate::metrics::RequestLabels;
use crate::oip_codec::{decode_request, encode_response};
use crate::preprocessing_metadata::{column_parameters, parameters_of};
use crate::state::AppState;

/// Extensions this server implements, advertised in server metadata.
pub const EXTENSIONS: [&str; 6] =
    ["binary_tensor_data", "classification", "model_repository", "model_configuration", "statistics", "parameters"];

/// `GET /v2`.
#[utoipa::path(
    get,
    path = "/v2",
    tag = "v2",
    summary = "Server metadata: name, version and the extensions implemented",
    responses(
        (status = 200, description = "`{name, version, extensions}`"),
    ),
)]
pub async fn server_metadata() -> Response {
    json_ok(&json!({ "name": "lathe", "version": env!("CARGO_PKG_VERSION"), "extensions": EXTENSIONS }))
}

/// `GET /v2/health/live`.
#[utoipa::path(
    get,
    path = "/v2/health/live",
    tag = "health",
    summary = "Liveness (also `/healthz`, `/livez`, `/ping`)",
    responses(
        (status = 200, description = "`{live: true}`"),
    ),
)]
pub async fn live() -> Response {
    json_ok(&json!({ "live": true }))
}

/// `GET /v2/health/ready`: 200 when every model has a ready version, else 503.
#[utoipa::path(
    get,
    path = "/v2/health/ready",
    tag = "health",
    summary = "Readiness: every model has a ready version (also `/readyz`)",
    responses(
        (status = 200, description = "`{ready: true}`"),
        (status = 503, description = "Not ready"),
    ),
)]
pub async fn ready(State(st): State<AppState>) -> HttpResult<Response> {
    if st.manager.is_ready() {
        Ok(json_ok(&json!({ "ready": true })))
    } else {
        Err(ApiError::new(ErrorKind::Unavailable, "not every model has a ready version yet").into())
    }
}

fn selector(version: Option<&str>) -> Result<Selector, ApiError> {
    Ok(match version {
        Some(v) => Selector::Version(parse_version(v)?),
        None => Selector::Default,
    })
}

fn metadata(st: &AppState, name: &str, version: Option<&str>) -> HttpResult<Response> {
    let loaded = st.manager.resolve(name, &selector(version)?)?;
    let sig = loaded.servable.signature();
    let ready: Vec<String> = st
        .manager
        .model(name)
        .map(|m| m.versions.iter().filter(|v| v.state == LoadState::Ready).map(|v| v.version.to_string()).collect())
        .unwrap_or_default();
    Ok(json_ok(&json!({
        "name": name,
        "versions": ready,
        "platform": loaded.servable.platform(),
        "inputs": input_metadata(&loaded),
        "outputs": sig.outputs,
        "properties": properties(&loaded),
        "parameters": parameters_of(&loaded.manifest),
    })))
}

/// Input tensors for metadata; an input that carries a raw table column gets `parameters`
/// saying its kind, categories and what a missing cell becomes.
fn input_metadata(loaded: &LoadedVersion) -> Vec<Value> {
    let columns = loaded.manifest.sequential().map(|s| s.columns.as_slice()).unwrap_or_default();
    let with_parameters = |sig: &lathe_types::TensorSignature| {
        let mut v = json!(sig);
        if let Some(c) = columns.iter().find(|c| c.name() == sig.name) {
            v["parameters"] = Value::Object(column_parameters(c));
        }
        v
    };
    loaded.servable.signature().inputs.iter().map(with_parameters).collect()
}

/// Model properties for metadata: class names, and the limits of text models.
fn properties(loaded: &LoadedVersion) -> serde_json::Map<String, Value> {
    let mut p = serde_json::Map::new();
    p.insert("class_names".into(), json!(loaded.servable.class_names().join(",")));
    if let Some(e) = loaded.manifest.embedding() {
        p.insert("max_tokens".into(), json!(e.max_tokens.to_string()));
        p.insert("dim".into(), json!(e.dim.to_string()));
        p.insert("pooling".into(), json!(e.pooling.name()));
        p.insert("normalize".into(), json!(e.normalize.to_string()));
    }
    if loaded.servable.signature().inputs.first().is_some_and(|i| i.datatype == lathe_types::DType::Bytes) {
        p.insert("max_client_batch_size".into(), json!(crate::embed::MAX_CLIENT_BATCH_SIZE.to_string()));
        p.insert("max_batch_size".into(), json!(loaded.batcher.config().max_batch_size.to_string()));
    }
    p
}

/// `GET /v2/models/{m}`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}",
    tag = "v2",
    summary = "Model metadata of the default route",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "`{name, versions, platform, inputs, outputs, properties, parameters}`; \
            `parameters` say what the version does to its inputs (preprocessing, table columns)"),
        (status = 404, description = "Unknown model"),
        (status = 503, description = "No ready version"),
    ),
)]
pub async fn model_metadata(State(st): State<AppState>, Path(name): Path<String>) -> HttpResult<Response> {
    metadata(&st, &name, None)
}

/// `GET /v2/models/{m}/versions/{v}`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/versions/{v}",
    tag = "v2",
    summary = "Metadata of one version",
    params(
        ("m" = String, Path, description = "Model name"),
        ("v" = String, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "Metadata"),
        (status = 404, description = "Unknown model or version"),
    ),
)]
pub async fn version_metadata(
    State(st): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> HttpResult<Response> {
    metadata(&st, &name, Some(&v))
}

fn readiness(st: &AppState, name: &str, version: Option<&str>) -> HttpResult<Response> {
    st.manager.resolve(name, &selector(version)?)?;
    Ok(json_ok(&json!({ "name": name, "ready": true })))
}

/// `GET /v2/models/{m}/ready`: 200 when a default route is ready, 404/503 otherwise.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/ready",
    tag = "v2",
    summary = "Model readiness",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "`{name, ready: true}`"),
        (status = 404, description = "Unknown model"),
        (status = 503, description = "Not ready"),
    ),
)]
pub async fn model_ready(State(st): State<AppState>, Path(name): Path<String>) -> HttpResult<Response> {
    readiness(&st, &name, None)
}

/// `GET /v2/models/{m}/versions/{v}/ready`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/versions/{v}/ready",
    tag = "v2",
    summary = "Version readiness",
    params(
        ("m" = String, Path, description = "Model name"),
        ("v" = String, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "Ready"),
        (status = 404, description = "Unknown"),
        (status = 503, description = "Not ready"),
    ),
)]
pub async fn version_ready(
    State(st): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> HttpResult<Response> {
    readiness(&st, &name, Some(&v))
}

/// `POST /v2/models/{m}/infer`.
#[utoipa::path(
    post,
    path = "/v2/models/{m}/infer",
    tag = "v2",
    summary = "Inference on the default route (or the traffic policy): JSON, or JSON header + binary tensors with \
        `Inference-Header-Content-Length`",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "Inference response (JSON, or JSON + binary outputs)"),
        (status = 400, description = "Invalid request"),
        (status = 404, description = "Unknown model"),
        (status = 413, description = "Body over the limit"),
        (status = 429, description = "Queue full (Retry-After)"),
        (status = 503, description = "No ready version"),
        (status = 504, description = "Timed out"),
    ),
)]
pub async fn infer_model(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer(st, name, None, headers, body).await
}

/// `POST /v2/models/{m}/versions/{v}/infer`.
#[utoipa::path(
    post,
    path = "/v2/models/{m}/versions/{v}/infer",
    tag = "v2",
    summary = "Inference on one version",
    params(
        ("m" = String, Path, description = "Model name"),
        ("v" = String, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "Inference response"),
        (status = 400, description = "Invalid request"),
        (status = 404, description = "Unknown model or version"),
        (status = 429, description = "Queue full"),
        (status = 504, description = "Timed out"),
    ),
)]
pub async fn infer_version(
    State(st): State<AppState>,
    Path((name, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    infer(st, name, Some(v), headers, body).await
}

async fn infer(st: AppState, name: String, version: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let mut answered = String::new();
    let mut model_label = String::new();
    let result = async {
        let header_len = header_length(&headers)?;
        let sel = selector(version.as_deref())?;
        let bytes = read_body(body, st.limits.max_body_bytes).await?;
        let (loaded, shadow): (std::sync::Arc<LoadedVersion>, _) =
            if sel == Selector::Default && st.manager.has_traffic(&name) {
                // Sticky routing: the X-Request-Id header, else the request's own id.
                let header_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
                let key = header_id.or_else(|| request_id(&bytes, header_len));
                let routed = st.manager.route(&name, key.as_deref())?;
                (routed.primary, routed.shadow)
            } else {
                (st.manager.resolve(&name, &sel)?, None)
            };
        answered = loaded.version.to_string();
        model_label = name.clone();
        let mut req = decode_request(&bytes, header_len, loaded.servable.signature())?;
        let inputs = std::mem::take(&mut req.inputs);
        crate::infer::mirror(&st, shadow, &inputs, "v2");
        let outputs = if crate::embed::is_embedding_model(&loaded) {
            crate::oip_embed::infer(&st, &loaded, &req.parameters, inputs).await?
        } else {
            crate::infer::run(&st, &loaded, inputs).await?
        };
        encode_response(&name, loaded.version, &req, outputs, loaded.servable.class_names())
    }
    .await;
    let response = match result {
        Ok(enc) => match enc.header_len {
            None => json_response(enc.body),
            Some(n) => {
                let mut r = (StatusCode::OK, enc.body).into_response();
                let h = r.headers_mut();
                h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                h.insert("inference-header-content-length", HeaderValue::from(n));
                r
            }
        },
        Err(e) => HttpError(e).into_response(),
    };
    st.metrics.record(
        RequestLabels {
            model: model_label,
            version: answered,
            protocol: "v2",
            api: "infer",
            code: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The binary extension's `Inference-Header-Content-Length`, when present.
fn header_length(headers: &HeaderMap) -> Result<Option<usize>, ApiError> {
    match headers.get("inference-header-content-length") {
        None => Ok(None),
        Some(v) => {
            Ok(Some(v.to_str().ok().and_then(|s| s.trim().parse::<usize>().ok()).ok_or_else(|| {
                ApiError::invalid("Inference-Header-Content-Length: expected a non-negative integer")
            })?))
        }
    }
}

/// The `id` of a JSON request body, read without decoding the tensors.
fn request_id(body: &[u8], header_len: Option<usize>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<String>,
    }
    let json = match header_len {
        Some(0) => return None,
        Some(n) => body.get(..n)?,
        None => body,
    };
    serde_json::from_slice::<IdOnly>(json).ok()?.id
}

fn config(st: &AppState, name: &str, version: Option<&str>) -> HttpResult<Response> {
    let loaded = st.manager.resolve(name, &selector(version)?)?;
    let model = st.manager.model(name).ok_or_else(|| ApiError::not_found(format!("model {name:?} not found")))?;
    let sig = loaded.servable.signature();
    let dims = |shape: &[i64]| shape.iter().skip(1).copied().collect::<Vec<_>>();
    let tensors = |list: &[lathe_types::TensorSignature]| -> Vec<Value> {
        list.iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "data_type": format!("TYPE_{}", triton_type(t.datatype)),
                    "dims": dims(&t.shape)
                })
            })
            .collect()
    };
    let b = &model.config.batching;
    let policy = match &model.config.version_policy {
        VersionPolicy::Latest { num_versions } => json!({ "latest": { "num_versions": num_versions } }),
        VersionPolicy::All {} => json!({ "all": {} }),
        VersionPolicy::Specific { versions } => json!({ "specific": { "versions": versions } }),
    };
    Ok(json_ok(&json!({
        "name": name,
        "platform": loaded.servable.platform(),
        "backend": "lathe",
        "version_policy": policy,
        "max_batch_size": b.max_batch_size,
        "input": tensors(&sig.inputs),
        "output": tensors(&sig.outputs),
        "dynamic_batching": {
            "max_queue_delay_microseconds": b.max_queue_delay_us,
            "default_queue_policy": { "max_queue_size": b.max_queue_size },
            "max_batch_tokens": b.max_batch_tokens,
            "max_batch_requests": b.max_batch_requests
        },
        "instance_group": [{ "name": name, "kind": "KIND_CPU", "count": b.instances }],
        "labels": model.labels,
        "config_error": model.config_error,
    })))
}

fn triton_type(d: lathe_types::DType) -> &'static str {
    match d {
        lathe_types::DType::Bytes => "STRING",
        other => other.name(),
    }
}

/// `GET /v2/models/{m}/config`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/config",
    tag = "v2",
    summary = "Model configuration (Triton shape)",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "Configuration"),
        (status = 404, description = "Unknown model"),
    ),
)]
pub async fn model_config(State(st): State<AppState>, Path(name): Path<String>) -> HttpResult<Response> {
    config(&st, &name, None)
}

/// `GET /v2/models/{m}/versions/{v}/config`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/versions/{v}/config",
    tag = "v2",
    summary = "Configuration of one version",
    params(
        ("m" = String, Path, description = "Model name"),
        ("v" = String, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "Configuration"),
        (status = 404, description = "Unknown"),
    ),
)]
pub async fn version_config(
    State(st): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> HttpResult<Response> {
    config(&st, &name, Some(&v))
}

fn stats(st: &AppState, name: Option<&str>, version: Option<&str>) -> HttpResult<Response> {
    let version = version.map(parse_version).transpose()?;
    let models = match name {
        Some(n) => vec![st.manager.model(n).ok_or_else(|| ApiError::not_found(format!("model {n:?} not found")))?],
        None => st.manager.models(),
    };
    let mut out = Vec::new();
    for m in &models {
        for v in m.versions.iter().filter(|v| version.is_none_or(|want| want == v.version)) {
            let s = &v.stats;
            let pair = |d: &lathe_runtime::stats::Duration2| {
                let (count, ns) = d.get();
                json!({ "count": count, "ns": ns })
            };
            let batch: Vec<Value> = s
                .per_batch_size
                .lock()
                .expect("stats lock")
                .iter()
                .map(|(size, (count, ns))| json!({ "batch_size": size, "compute_infer": { "count": count, "ns": ns } }))
                .collect();
            out.push(json!({
                "name": m.name,
                "version": v.version.to_string(),
                "state": v.state.name(),
                "last_inference": s.last_inference_ms.load(Ordering::Relaxed),
                "inference_count": s.inference_count.load(Ordering::Relaxed),
                "execution_count": s.execution_count.load(Ordering::Relaxed),
                "inference_stats": {
                    "success": pair(&s.success),
                    "fail": pair(&s.fail),
                    "queue": pair(&s.queue),
                    "compute_infer": pair(&s.compute_infer),
                },
                "batch_stats": batch,
            }));
        }
    }
    if let (Some(n), Some(v), true) = (name, version, out.is_empty()) {
        return Err(ApiError::not_found(format!("model {n:?} has no version {v}")).into());
    }
    Ok(json_ok(&json!({ "model_stats": out })))
}

/// `GET /v2/models/stats`.
#[utoipa::path(
    get,
    path = "/v2/models/stats",
    tag = "v2",
    summary = "Statistics of every served version (Triton shape)",
    responses(
        (status = 200, description = "`{model_stats: [...]}`"),
    ),
)]
pub async fn all_stats(State(st): State<AppState>) -> HttpResult<Response> {
    stats(&st, None, None)
}

/// `GET /v2/models/{m}/stats`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/stats",
    tag = "v2",
    summary = "Statistics of a model",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "`{model_stats: [...]}`"),
        (status = 404, description = "Unknown model"),
    ),
)]
pub async fn model_stats(State(st): State<AppState>, Path(name): Path<String>) -> HttpResult<Response> {
    stats(&st, Some(&name), None)
}

/// `GET /v2/models/{m}/versions/{v}/stats`.
#[utoipa::path(
    get,
    path = "/v2/models/{m}/versions/{v}/stats",
    tag = "v2",
    summary = "Statistics of a version",
    params(
        ("m" = String, Path, description = "Model name"),
        ("v" = String, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "`{model_stats: [...]}`"),
        (status = 404, description = "Unknown"),
    ),
)]
pub async fn version_stats(
    State(st): State<AppState>,
    Path((name, v)): Path<(String, String)>,
) -> HttpResult<Response> {
    stats(&st, Some(&name), Some(&v))
}

/// `POST /v2/models/{m}/explain`.
#[utoipa::path(
    post,
    path = "/v2/models/{m}/explain",
    tag = "v2",
    summary = "Explain the default version's outputs (body as for infer; parameters method, steps, target, window)",
    params(("m" = String, Path, description = "Model name")),
    responses(
        (status = 200, description = "Attributions shaped like the inputs"),
        (status = 400, description = "Invalid request"),
        (status = 404, description = "Unknown model"),
        (status = 429, description = "Explanations busy"),
    ),
)]
pub async fn explain_model(
    State(st): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    explain(st, name, None, headers, body).await
}

/// `POST /v2/models/{m}/versions/{v}/explain`.
#[utoipa::path(
    post,
    path = "/v2/models/{m}/versions/{v}/explain",
    tag = "v2",
    summary = "Explain one version's outputs",
    params(
        ("m" = String, Path, description = "Model name"),
        ("v" = String, Path, description = "Version number"),
    ),
    responses(
        (status = 200, description = "Attributions shaped like the inputs"),
        (status = 400, description = "Invalid request"),
        (status = 404, description = "Unknown model or version"),
        (status = 429, description = "Explanations busy"),
    ),
)]
pub async fn explain_version(
    State(st): State<AppState>,
    Path((name, v)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    explain(st, name, Some(v), headers, body).await
}

async fn explain(st: AppState, name: String, version: Option<String>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let mut answered = String::new();
    let result = async {
        let loaded = st.manager.resolve(&name, &selector(version.as_deref())?)?;
        answered = loaded.version.to_string();
        let bytes = read_body(body, st.limits.max_body_bytes).await?;
        let req = decode_request(&bytes, header_length(&headers)?, loaded.servable.signature())?;
        let options = crate::explain::options(&req.parameters)?;
        let explanations = crate::explain::run(&st, &loaded, req.inputs, options).await?;
        let body = crate::explain::v2_body(&name, loaded.version, req.id.as_deref(), &explanations);
        Ok::<_, ApiError>(serde_json::to_vec(&body).expect("serialise"))
    }
    .await;
    let response = match result {
        Ok(body) => json_response(body),
        Err(e) => HttpError(e).into_response(),
    };
    let labels = RequestLabels {
        model: name,
        version: answered,
        protocol: "v2",
        api: "explain",
        code: response.status().as_u16(),
    };
    st.metrics.record(labels, started.elapsed().as_secs_f64());
    response
}
