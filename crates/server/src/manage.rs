//! Model management over HTTP: labels, traffic policies (weights, shadow), rollback, version
//! deletion and a listing with metrics and load states. Admin scope (GETs need `read`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use lathe_registry::{RegistryError, Route, Traffic};
use lathe_types::{ApiError, HasErrorKind, ModelRef};
use serde_json::{json, Value};

use crate::auth::Actor;
use crate::body::{json_ok, parse_version, read_body};
use crate::error::{HttpError, HttpResult};
use crate::state::AppState;

fn registry_error(e: RegistryError) -> ApiError {
    e.to_api_error()
}

fn audit(st: &AppState, actor: &Actor, action: &str, target: &str, detail: Value) {
    if let Some(a) = &st.admin {
        let _ = a.store.audit(&lathe_train::rfc3339_now(), &actor.0, action, target, &detail.to_string());
    }
}

fn check_model(st: &AppState, name: &str) -> Result<(), ApiError> {
    ModelRef::validate_name(name).map_err(|e| ApiError::invalid(e.to_string()))?;
    if st.manager.repository().versions(name).map_err(registry_error)?.is_empty() {
        return Err(ApiError::not_found(format!("model {name:?} not found")));
    }
    Ok(())
}

/// Applies a repository change to routing now rather than at the next poll.
async fn apply(st: &AppState) {
    let m = st.manager.clone();
    let _ = tokio::task::spawn_blocking(move || m.reconcile()).await;
}

async fn json_body(st: &AppState, body: Body) -> Result<Value, ApiError> {
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("malformed JSON body: {e}")))
}

/// `PUT /v1/models/{m}/traffic` and `PUT /v1/models/{m}/labels/{l}` (`{"version": N}`).
#[utoipa::path(
    put,
    path = "/v1/models/{rest}",
    tag = "management",
    summary = "Set a traffic policy (`{m}/traffic`) or a label (`{m}/labels/{l}` with `{version: N}`)",
    params(
        ("rest" = String, Path, description = "`{m}[/versions/{v}|/labels/{l}]` with a `/metadata`, `/monitoring` or \
            `/traffic` tail (GET) or a `:predict|:classify|:regress|:explain` tail (POST)"),
    ),
    responses(
        (status = 200, description = "The new policy or labels"),
        (status = 400, description = "Invalid"),
        (status = 404, description = "Unknown model"),
    ),
)]
pub async fn put(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(rest): Path<String>,
    body: Body,
) -> HttpResult<Response> {
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        [name, "traffic"] => {
            check_model(&st, name)?;
            let v = json_body(&st, body).await?;
            let traffic: Traffic =
                serde_json::from_value(v).map_err(|e| ApiError::invalid(format!("invalid traffic policy: {e}")))?;
            st.manager.repository().set_traffic(name, Some(&traffic)).map_err(registry_error)?;
            audit(&st, &actor, "traffic.set", name, serde_json::to_value(&traffic).expect("json"));
            apply(&st).await;
            Ok(json_ok(&json!({ "name": name, "traffic": traffic })))
        }
        [name, "labels", label] => {
            check_model(&st, name)?;
            let v = json_body(&st, body).await?;
            let version = v
                .get("version")
                .and_then(Value::as_u64)
                .ok_or_else(|| ApiError::invalid("expected {\"version\": N}"))?;
            st.manager.repository().set_label(name, label, version).map_err(registry_error)?;
            audit(&st, &actor, "label.set", name, json!({ "label": label, "version": version }));
            apply(&st).await;
            Ok(json_ok(
                &json!({ "name": name, "labels": st.manager.repository().labels(name).map_err(registry_error)? }),
            ))
        }
        _ => Err(ApiError::not_found(format!("no route for PUT /v1/models/{rest}")).into()),
    }
}

/// `DELETE /v1/models/{m}/traffic`, `…/labels/{l}` and `…/versions/{v}` (409 while a label or
/// the traffic policy names the version).
#[utoipa::path(
    delete,
    path = "/v1/models/{rest}",
    tag = "management",
    summary = "Clear the traffic policy, remove a label, or delete a version (`{m}/versions/{v}`; 409 while \
        referenced)",
    params(
        ("rest" = String, Path, description = "`{m}[/versions/{v}|/labels/{l}]` with a `/metadata`, `/monitoring` or \
            `/traffic` tail (GET) or a `:predict|:classify|:regress|:explain` tail (POST)"),
    ),
    responses(
        (status = 200, description = "Done"),
        (status = 404, description = "Unknown"),
        (status = 409, description = "Still referenced"),
    ),
)]
pub async fn delete(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(rest): Path<String>,
) -> HttpResult<Response> {
    let segs: Vec<&str> = rest.split('/').collect();
    let repo = st.manager.repository();
    let out = match segs.as_slice() {
        [name, "traffic"] => {
            check_model(&st, name)?;
            repo.set_traffic(name, None).map_err(registry_error)?;
            audit(&st, &actor, "traffic.clear", name, json!({}));
            json!({ "name": name, "traffic": null })
        }
        [name, "labels", label] => {
            check_model(&st, name)?;
            if !repo.remove_label(name, label).map_err(registry_error)? {
                return Err(ApiError::not_found(format!("model {name:?} has no label {label:?}")).into());
            }
            audit(&st, &actor, "label.delete", name, json!({ "label": label }));
            json!({ "name": name, "labels": repo.labels(name).map_err(registry_error)? })
        }
        [name, "versions", v] => {
            check_model(&st, name)?;
            let version = parse_version(v)?;
            repo.delete_version(name, version).map_err(registry_error)?;
            audit(&st, &actor, "version.delete", name, json!({ "version": version }));
            json!({ "name": name, "deleted": version })
        }
        _ => return Err(ApiError::not_found(format!("no route for DELETE /v1/models/{rest}")).into()),
    };
    apply(&st).await;
    Ok(json_ok(&out))
}

/// `POST /v1/models/{m}/rollback` (`{"to": "1"}`, default the `stable` label): all traffic to
/// one target, shadow off.
pub async fn rollback(st: &AppState, actor: &Actor, name: &str, body: Body) -> Result<Response, HttpError> {
    check_model(st, name)?;
    let v = json_body(st, body).await?;
    let to = match v.get("to") {
        None => "stable".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(ApiError::invalid("to: expected a version number or a label").into()),
    };
    let traffic = Traffic { routes: vec![Route { target: to.clone(), weight: 100 }], shadow: None };
    st.manager.repository().set_traffic(name, Some(&traffic)).map_err(registry_error)?;
    audit(st, actor, "traffic.rollback", name, json!({ "to": to }));
    apply(st).await;
    Ok(json_ok(&json!({ "name": name, "traffic": traffic })))
}

/// `GET /v1/models/{m}/traffic`.
pub fn get_traffic(st: &AppState, name: &str) -> HttpResult<Response> {
    check_model(st, name)?;
    let t = st.manager.repository().traffic(name).map_err(registry_error)?;
    Ok(json_ok(&json!({ "name": name, "traffic": t })))
}

/// `GET /v1/admin/models`: every model with its versions, metrics, load states, labels and
/// traffic policy.
#[utoipa::path(
    get,
    path = "/v1/admin/models",
    tag = "management",
    summary = "Models with versions, metrics, load states, labels and traffic",
    responses(
        (status = 200, description = "`{models: [...]}`"),
    ),
)]
pub async fn list_models(State(st): State<AppState>) -> HttpResult<Response> {
    let repo = st.manager.repository();
    let mut models = Vec::new();
    for name in repo.models() {
        let view = st.manager.model(&name);
        let mut versions = Vec::new();
        for v in repo.versions(&name).map_err(registry_error)? {
            let info = repo.resolve(&ModelRef { name: name.clone(), version: Some(v) }).map_err(registry_error)?;
            let state = view
                .as_ref()
                .and_then(|m| m.versions.iter().find(|x| x.version == v))
                .map(|x| (x.state.name(), x.reason.clone()));
            versions.push(json!({
                "version": v,
                "created_at": info.manifest.created_at,
                "accuracy": info.manifest.metrics().and_then(|m| m.accuracy),
                "macro_f1": info.manifest.metrics().and_then(|m| m.macro_f1),
                "r2": info.manifest.metrics().and_then(|m| m.r2),
                "state": state.as_ref().map_or("UNKNOWN", |s| s.0),
                "reason": state.map(|s| s.1).unwrap_or_default(),
                "job": info.manifest.job(),
            }));
        }
        models.push(json!({
            "name": name,
            "versions": versions,
            "labels": repo.labels(&name).map_err(registry_error)?,
            "traffic": repo.traffic(&name).map_err(registry_error)?,
        }));
    }
    Ok(json_ok(&json!({ "models": models })).into_response())
}
