//! Model management over HTTP: labels, traffic policies (weights, shadow), rollback, version
//! deletion and a listing with metrics and load states. Admin scope (GETs need `read`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use lathe_registry::{RegistryError, Route, Traffic};
use lathe_runtime::Selector;
use lathe_types::{ApiError, ErrorKind, HasErrorKind, ModelRef};
use serde_json::{json, Value};

use crate::auth::Actor;
use crate::body::{json_ok, parse_version, read_body};
use crate::error::{HttpError, HttpResult};
use crate::promotion;
use crate::state::AppState;

fn registry_error(e: RegistryError) -> ApiError {
    e.to_api_error()
}

/// Why a label or traffic change was refused: a repository error or a stale `If-Match`.
struct Refused(ApiError);

impl From<RegistryError> for Refused {
    fn from(e: RegistryError) -> Self {
        Refused(registry_error(e))
    }
}

impl From<ApiError> for Refused {
    fn from(e: ApiError) -> Self {
        Refused(e)
    }
}

impl From<Refused> for ApiError {
    fn from(r: Refused) -> Self {
        r.0
    }
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

/// `PUT /v1/models/{m}/traffic` and `PUT /v1/models/{m}/labels/{l}` (`{"version": N}`), made
/// conditional by `If-Match` ([`crate::promotion`]).
#[utoipa::path(
    put,
    path = "/v1/models/{rest}",
    tag = "management",
    summary = "Set a traffic policy (`{m}/traffic`) or a label (`{m}/labels/{l}` with `{version: N}`); with \
        `If-Match` (the label's current version, or the policy's `ETag` from `GET {m}/traffic`; `\"none\"` for \
        none) only when the current value still matches, else 409",
    params(
        ("rest" = String, Path, description = "`{m}[/versions/{v}|/labels/{l}]` with a `/metadata`, `/monitoring`, \
            `/manifest` or `/traffic` tail (GET) or a `:predict|:classify|:regress|:explain` tail (POST)"),
    ),
    responses(
        (status = 200, description = "The new policy or labels, with the new value's `ETag`"),
        (status = 400, description = "Invalid"),
        (status = 404, description = "Unknown model"),
        (status = 409, description = "`If-Match` names a value that is no longer current"),
    ),
)]
pub async fn put(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> HttpResult<Response> {
    let segs: Vec<&str> = rest.split('/').collect();
    match segs.as_slice() {
        [name, "traffic"] => {
            check_model(&st, name)?;
            let v = json_body(&st, body).await?;
            let traffic: Traffic =
                serde_json::from_value(v).map_err(|e| ApiError::invalid(format!("invalid traffic policy: {e}")))?;
            let tag = write_traffic(&st, name, Some(&traffic), &headers).await?;
            audit(&st, &actor, "traffic.set", name, serde_json::to_value(&traffic).expect("json"));
            apply(&st).await;
            Ok(with_etag(json_ok(&json!({ "name": name, "traffic": traffic })), &tag))
        }
        [name, "labels", label] => {
            check_model(&st, name)?;
            let v = json_body(&st, body).await?;
            let version = v
                .get("version")
                .and_then(Value::as_u64)
                .ok_or_else(|| ApiError::invalid("expected {\"version\": N}"))?;
            let tag = write_label(&st, name, label, Some(version), &headers).await?;
            audit(&st, &actor, "label.set", name, json!({ "label": label, "version": version }));
            apply(&st).await;
            let labels = st.manager.repository().labels(name).map_err(registry_error)?;
            Ok(with_etag(json_ok(&json!({ "name": name, "labels": labels })), &tag))
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
    summary = "Clear the traffic policy, remove a label (both conditional with `If-Match`, as for `PUT`), or \
        delete a version (`{m}/versions/{v}`; 409 while referenced)",
    params(
        ("rest" = String, Path, description = "`{m}[/versions/{v}|/labels/{l}]` with a `/metadata`, `/monitoring`, \
            `/manifest` or `/traffic` tail (GET) or a `:predict|:classify|:regress|:explain` tail (POST)"),
    ),
    responses(
        (status = 200, description = "Done"),
        (status = 404, description = "Unknown"),
        (status = 409, description = "Still referenced, or `If-Match` no longer current"),
    ),
)]
pub async fn delete(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(rest): Path<String>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let segs: Vec<&str> = rest.split('/').collect();
    let repo = st.manager.repository();
    let out = match segs.as_slice() {
        [name, "traffic"] => {
            check_model(&st, name)?;
            write_traffic(&st, name, None, &headers).await?;
            audit(&st, &actor, "traffic.clear", name, json!({}));
            json!({ "name": name, "traffic": null })
        }
        [name, "labels", label] => {
            check_model(&st, name)?;
            write_label(&st, name, label, None, &headers).await?;
            audit(&st, &actor, "label.delete", name, json!({ "label": label }));
            json!({ "name": name, "labels": repo.labels(name).map_err(registry_error)? })
        }
        [name, "versions", v] => {
            check_model(&st, name)?;
            let version = parse_version(v)?;
            let (repo, model) = (repo.clone(), name.to_string());
            blocking(move || Ok(repo.delete_version(&model, version)?)).await?;
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
pub async fn rollback(
    st: &AppState,
    actor: &Actor,
    name: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    check_model(st, name)?;
    let v = json_body(st, body).await?;
    let to = match v.get("to") {
        None => "stable".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(ApiError::invalid("to: expected a version number or a label").into()),
    };
    let traffic = Traffic { routes: vec![Route { target: to.clone(), weight: 100 }], shadow: None };
    let tag = write_traffic(st, name, Some(&traffic), headers).await?;
    audit(st, actor, "traffic.rollback", name, json!({ "to": to }));
    apply(st).await;
    Ok(with_etag(json_ok(&json!({ "name": name, "traffic": traffic })), &tag))
}

/// Runs a repository change on the blocking pool: with a shared store it waits on Postgres and
/// the object store, which must not hold up the executor.
async fn blocking<T: Send + 'static>(
    change: impl FnOnce() -> Result<T, Refused> + Send + 'static,
) -> Result<T, ApiError> {
    let done = tokio::task::spawn_blocking(change).await;
    Ok(done.map_err(|e| ApiError::new(lathe_types::ErrorKind::Internal, e.to_string()))??)
}

/// Sets (`Some`) or clears the traffic policy when `If-Match` allows; returns the new tag.
async fn write_traffic(
    st: &AppState,
    name: &str,
    traffic: Option<&Traffic>,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let expected = promotion::expected(headers)?;
    let (repo, name, traffic) = (st.manager.repository().clone(), name.to_string(), traffic.cloned());
    let tag = promotion::traffic_tag(traffic.as_ref());
    blocking(move || {
        let what = format!("the traffic policy of model {name:?}");
        repo.update_traffic(&name, |current| {
            promotion::check(&expected, &promotion::traffic_tag(current.as_ref()), &what)?;
            current.clone_from(&traffic);
            Ok::<(), Refused>(())
        })
    })
    .await?;
    Ok(tag)
}

/// Points (`Some`) or removes a label when `If-Match` allows; returns the new tag.
async fn write_label(
    st: &AppState,
    name: &str,
    label: &str,
    version: Option<u64>,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let expected = promotion::expected(headers)?;
    let (repo, name, label) = (st.manager.repository().clone(), name.to_string(), label.to_string());
    blocking(move || {
        let what = format!("label {label:?} of model {name:?}");
        repo.update_labels(&name, |labels| {
            promotion::check(&expected, &promotion::label_tag(labels.get(&label).copied()), &what)?;
            match version {
                Some(v) => {
                    repo.check_label(&name, &label, v)?;
                    labels.insert(label.clone(), v);
                }
                None if labels.remove(&label).is_none() => {
                    return Err(Refused(ApiError::not_found(format!("model {name:?} has no label {label:?}"))));
                }
                None => {}
            }
            Ok::<(), Refused>(())
        })
    })
    .await?;
    Ok(promotion::label_tag(version))
}

fn with_etag(mut response: Response, tag: &str) -> Response {
    response.headers_mut().insert(axum::http::header::ETAG, promotion::etag(tag));
    response
}

/// `GET /v1/models/{m}/traffic`.
pub fn get_traffic(st: &AppState, name: &str) -> HttpResult<Response> {
    check_model(st, name)?;
    let t = st.manager.repository().traffic(name).map_err(registry_error)?;
    let tag = promotion::traffic_tag(t.as_ref());
    Ok(with_etag(json_ok(&json!({ "name": name, "traffic": t })), &tag))
}

/// The stored manifest of the version a target names (served or not): metrics, per-epoch
/// history, confusion matrix, lineage, files, plus `version`. A target without a version is the
/// version requests without one are routed to (the `default` label, else the newest ready
/// one), or the newest stored version when none is served. Paths of the server's files
/// (`data.source`, `spec.source`) are reduced to their last component.
pub(crate) fn get_manifest(st: &AppState, name: &str, selector: &Selector) -> HttpResult<Response> {
    let repo = st.manager.repository();
    let version = match selector {
        Selector::Default => st.manager.resolve(name, selector).ok().map(|l| l.version),
        Selector::Version(v) => Some(*v),
        Selector::Label(l) => {
            let labels = repo.labels(name).map_err(registry_error)?;
            let v = labels.get(l).ok_or_else(|| ApiError::not_found(format!("model {name:?} has no label {l:?}")))?;
            Some(*v)
        }
    };
    let info = repo.resolve(&ModelRef { name: name.to_string(), version }).map_err(registry_error)?;
    let mut body =
        serde_json::to_value(&info.manifest).map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    for section in ["data", "spec"] {
        if let Some(source) = body.pointer_mut(&format!("/{section}/source")) {
            if let Some(last) = source.as_str().and_then(|p| p.trim_end_matches('/').rsplit('/').next()) {
                *source = Value::String(last.to_string());
            }
        }
    }
    body["version"] = json!(info.version);
    Ok(json_ok(&body))
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
                "kind": info.manifest.kind(),
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
