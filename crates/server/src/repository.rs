//! Triton-shaped model repository API: index, load, unload.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use lathe_types::ApiError;
use serde_json::{json, Value};

use crate::body::{json_ok, read_body};
use crate::error::HttpResult;
use crate::state::AppState;

/// How long a load request waits for the model to become ready.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

async fn optional_json(st: &AppState, body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::invalid("expected a JSON object"));
    }
    Ok(v)
}

/// `POST /v2/repository/index` (`{"ready": true}` lists only ready versions).
#[utoipa::path(
    post,
    path = "/v2/repository/index",
    tag = "repository",
    summary = "Repository index: every model and version with its state and reason; `{ready: true}` for ready ones \
        only",
    responses(
        (status = 200, description = "`[{name, version, state, reason}]`"),
    ),
)]
pub async fn index(State(st): State<AppState>, body: Body) -> HttpResult<Response> {
    let req = optional_json(&st, body).await?;
    let ready_only = match req.get("ready") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(ApiError::invalid("ready: expected true or false").into()),
    };
    let rows: Vec<Value> = st
        .manager
        .index(ready_only)
        .into_iter()
        .map(|e| {
            let mut row = json!({ "name": e.name, "state": e.state, "reason": e.reason });
            if let Some(v) = e.version {
                row["version"] = json!(v.to_string());
            }
            row
        })
        .collect();
    Ok(json_ok(&rows))
}

/// `POST /v2/repository/models/{m}/load`: (re)loads the model's versions per its policy and
/// answers once they are ready, or with the reasons they failed.
#[utoipa::path(
    post,
    path = "/v2/repository/models/{m}/load",
    tag = "repository",
    summary = "Load (or reload) a model; answers when its versions are ready",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "`{name, load: true}`"),
        (status = 400, description = "Failed to load"),
        (status = 404, description = "Unknown model"),
    ),
)]
pub async fn load(
    State(st): State<AppState>,
    axum::Extension(actor): axum::Extension<crate::auth::Actor>,
    Path(name): Path<String>,
    body: Body,
) -> HttpResult<Response> {
    let req = optional_json(&st, body).await?;
    if req.get("parameters").and_then(|p| p.get("config")).is_some() {
        return Err(ApiError::new(
            lathe_types::ErrorKind::Unimplemented,
            "config overrides are not supported; write config.json in the model's folder",
        )
        .into());
    }
    let manager = st.manager.clone();
    let n = name.clone();
    tokio::task::spawn_blocking(move || manager.load_model(&n, LOAD_TIMEOUT))
        .await
        .map_err(|_| ApiError::new(lathe_types::ErrorKind::Internal, "load task failed"))??;
    audit(&st, &actor, "repository.load", &name);
    Ok(json_ok(&json!({ "name": name, "load": true })))
}

/// `POST /v2/repository/models/{m}/unload`.
#[utoipa::path(
    post,
    path = "/v2/repository/models/{m}/unload",
    tag = "repository",
    summary = "Unload a model until loaded again",
    params(
        ("m" = String, Path, description = "Model name"),
    ),
    responses(
        (status = 200, description = "`{name, unload: true}`"),
        (status = 404, description = "Unknown model"),
    ),
)]
pub async fn unload(
    State(st): State<AppState>,
    axum::Extension(actor): axum::Extension<crate::auth::Actor>,
    Path(name): Path<String>,
    body: Body,
) -> HttpResult<Response> {
    optional_json(&st, body).await?;
    let manager = st.manager.clone();
    let n = name.clone();
    tokio::task::spawn_blocking(move || manager.unload_model(&n))
        .await
        .map_err(|_| ApiError::new(lathe_types::ErrorKind::Internal, "unload task failed"))??;
    audit(&st, &actor, "repository.unload", &name);
    Ok(json_ok(&json!({ "name": name, "unload": true })))
}

fn audit(st: &AppState, actor: &crate::auth::Actor, action: &str, target: &str) {
    if let Some(a) = &st.admin {
        let _ = a.store.audit(&lathe_train::rfc3339_now(), &actor.0, action, target, "{}");
    }
}
