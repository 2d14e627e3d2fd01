//! TF Serving REST (and KServe V1, its subset) routes under `/v1/models`.
//!
//! Paths are matched like TF Serving does: `/v1/models/{name}[/versions/{v}|/labels/{l}]`
//! followed by `[/metadata]` (GET) or `:{predict|classify|regress|explain}` (POST).
//! `GET /v1/models/{name}` answers TF Serving's status and KServe V1's readiness at once:
//! `{"model_version_status": […], "name", "ready"}`, 200 when ready and 503 when not.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use lathe_runtime::{LoadState, Selector};
use lathe_types::ApiError;
use serde_json::{json, Value};

use crate::auth::Actor;
use crate::body::{json_ok, json_response, json_with_status, parse_version, read_body};
use crate::error::{HttpError, HttpResult};
use crate::metrics::RequestLabels;
use crate::preprocessing_metadata::{onnx_parameters, tf_serving_entry};
use crate::state::AppState;
use crate::tfs_codec::{
    decode_classify, decode_predict, encode_classify, encode_predict, encode_regress, DEFAULT_SIGNATURE,
};

/// A parsed `/v1/models/…` path.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// Model name.
    pub name: String,
    /// Version or label.
    pub selector: Selector,
    /// The trailing `/metadata` (GET) or `:verb` (POST).
    pub tail: Option<String>,
}

/// Parses the part after `/v1/models/`; `verb` says whether a `:verb` suffix is expected.
pub fn parse_target(rest: &str, verb: bool) -> Result<Target, ApiError> {
    let malformed = || ApiError::invalid(format!("malformed request path /v1/models/{rest}"));
    let (path, tail) = if verb {
        let (p, v) = rest.rsplit_once(':').ok_or_else(|| {
            ApiError::invalid(format!(
                "malformed request path /v1/models/{rest}: expected :predict, :classify, :regress or :explain"
            ))
        })?;
        (p, Some(v.to_string()))
    } else {
        let tail = ["metadata", "monitoring", "manifest"].into_iter().find(|t| rest.ends_with(&format!("/{t}")));
        match tail {
            Some(t) => (&rest[..rest.len() - t.len() - 1], Some(t.to_string())),
            None => (rest, None),
        }
    };
    let segs: Vec<&str> = path.split('/').collect();
    let (name, selector) = match segs.as_slice() {
        [name] => (*name, Selector::Default),
        [name, "versions", v] => (*name, Selector::Version(parse_version(v)?)),
        [name, "labels", l] => {
            lathe_registry_label_check(l)?;
            (*name, Selector::Label(l.to_string()))
        }
        _ => return Err(malformed()),
    };
    if name.is_empty() || name.contains(':') {
        return Err(malformed());
    }
    Ok(Target { name: name.to_string(), selector, tail })
}

fn lathe_registry_label_check(l: &str) -> Result<(), ApiError> {
    if !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("invalid label {l:?}: expected [A-Za-z0-9_]+")))
    }
}

/// `GET /v1/models`: KServe V1's model list.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "tfserving",
    summary = "KServe V1 model list",
    responses(
        (status = 200, description = "`{models: [names]}`"),
    ),
)]
pub async fn list(State(st): State<AppState>) -> Response {
    let names: Vec<String> =
        st.manager.models().into_iter().filter(|m| !m.versions.is_empty()).map(|m| m.name).collect();
    // One body for both kinds of clients: KServe V1 reads `models`, OpenAI clients `data`
    // (language models add their context length as vLLM's `max_model_len`).
    let data: Vec<Value> = names
        .iter()
        .map(|n| {
            let mut entry = json!({ "id": n, "object": "model", "created": 0, "owned_by": "lathe" });
            let loaded = st.manager.resolve(n, &Selector::Default).ok();
            if let Some(g) = loaded.as_ref().and_then(|l| l.generation.as_ref()) {
                entry["max_model_len"] = json!(g.generator().facts().context_length);
            }
            entry
        })
        .collect();
    json_ok(&json!({ "models": names, "object": "list", "data": data }))
}

fn tfs_state(s: LoadState) -> &'static str {
    match s {
        LoadState::Loading => "LOADING",
        LoadState::Ready => "AVAILABLE",
        LoadState::Unloading => "UNLOADING",
        LoadState::Unavailable => "END",
    }
}

/// `GET /v1/models/{…}`: status, metadata, drift, manifest or traffic.
#[utoipa::path(
    get,
    path = "/v1/models/{rest}",
    tag = "tfserving",
    summary = "TF Serving status (with KServe V1 readiness), metadata (`/metadata`), drift (`/monitoring`), the \
        stored manifest with history and confusion matrix (`/manifest`) or traffic policy (`/traffic`)",
    params(
        ("rest" = String, Path, description = "`{m}[/versions/{v}|/labels/{l}]` with a `/metadata`, `/monitoring`, \
            `/manifest` or `/traffic` tail (GET) or a `:predict|:classify|:regress|:explain` tail (POST)"),
    ),
    responses(
        (status = 200, description = "Status, metadata or traffic"),
        (status = 404, description = "Unknown model, version or label"),
        (status = 503, description = "Not ready"),
    ),
)]
pub async fn get(State(st): State<AppState>, Path(rest): Path<String>) -> HttpResult<Response> {
    if let Some(name) = rest.strip_suffix("/traffic") {
        return crate::manage::get_traffic(&st, name);
    }
    let t = parse_target(&rest, false)?;
    match t.tail.as_deref() {
        Some("metadata") => metadata(&st, &t),
        Some("monitoring") => crate::monitoring::monitoring(&st, &t.name, &t.selector).await,
        Some("manifest") => crate::manage::get_manifest(&st, &t.name, &t.selector),
        _ => status(&st, &t),
    }
}

fn status(st: &AppState, t: &Target) -> HttpResult<Response> {
    let model =
        st.manager.model(&t.name).ok_or_else(|| ApiError::not_found(format!("model {:?} not found", t.name)))?;
    let wanted: Option<u64> = match &t.selector {
        Selector::Default => None,
        Selector::Version(v) => Some(*v),
        Selector::Label(l) => Some(
            *model
                .labels
                .get(l)
                .ok_or_else(|| ApiError::not_found(format!("model {:?} has no label {l:?}", t.name)))?,
        ),
    };
    let entries: Vec<Value> = model
        .versions
        .iter()
        .filter(|v| wanted.is_none_or(|w| w == v.version))
        .map(|v| {
            let failed = v.state == LoadState::Unavailable && v.reason.starts_with("failed");
            json!({
                "version": v.version.to_string(),
                "state": tfs_state(v.state),
                "status": {
                    "error_code": if failed { "UNKNOWN" } else { "OK" },
                    "error_message": if failed { v.reason.as_str() } else { "" }
                },
            })
        })
        .collect();
    if let (Some(w), true) = (wanted, entries.is_empty()) {
        return Err(ApiError::not_found(format!("version {w} of model {:?} is not served", t.name)).into());
    }
    let ready = st.manager.resolve(&t.name, &t.selector).is_ok();
    let body = json!({ "model_version_status": entries, "name": t.name, "ready": ready });
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok(json_with_status(code, serde_json::to_vec(&body).expect("serialise")))
}

fn metadata(st: &AppState, t: &Target) -> HttpResult<Response> {
    let loaded = st.manager.resolve(&t.name, &t.selector)?;
    let sig = loaded.servable.signature();
    let tensors = |list: &[lathe_types::TensorSignature]| -> Value {
        list.iter()
            .map(|s| {
                let dims: Vec<Value> = s.shape.iter().map(|d| json!({ "size": d.to_string(), "name": "" })).collect();
                (
                    s.name.clone(),
                    json!({
                        "dtype": s.datatype.tf_name(),
                        "tensor_shape": { "dim": dims, "unknown_rank": false },
                        "name": format!("{}:0", s.name)
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let method = "tensorflow/serving/predict";
    let mut metadata = json!({ "signature_def": { "signature_def": {
        DEFAULT_SIGNATURE: {
            "inputs": tensors(&sig.inputs),
            "outputs": tensors(&sig.outputs),
            "method_name": method,
            "defaults": {}
        }
    } } });
    if let Some(section) = loaded.manifest.sequential() {
        metadata["preprocessing"] = tf_serving_entry(section);
    } else if let Some(spec) = loaded.manifest.onnx() {
        metadata["preprocessing"] = Value::Object(onnx_parameters(spec));
    }
    Ok(json_ok(&json!({
        "model_spec": { "name": t.name, "signature_name": "", "version": loaded.version.to_string() },
        "metadata": metadata
    })))
}

/// `POST /v1/models/{…}:{verb}`.
#[utoipa::path(
    post,
    path = "/v1/models/{rest}",
    tag = "tfserving",
    summary = "TF Serving `:predict` (row `instances` or columnar `inputs`), `:classify`, `:regress`, KServe \
        `:explain` (`parameters`: method, steps, target, window); `/rollback` and `/debug` (admin)",
    params(
        ("rest" = String, Path, description = "`{m}[/versions/{v}|/labels/{l}]` with a `/metadata`, `/monitoring`, \
            `/manifest` or `/traffic` tail (GET) or a `:predict|:classify|:regress|:explain` tail (POST)"),
    ),
    responses(
        (status = 200, description = "`{predictions}`, `{outputs}` or `{results}`"),
        (status = 400, description = "Invalid request"),
        (status = 404, description = "Unknown model, version or label"),
        (status = 429, description = "Queue full"),
        (status = 501, description = "Not implemented"),
        (status = 504, description = "Timed out"),
    ),
)]
pub async fn post(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(name) = rest.strip_suffix("/rollback") {
        return match crate::manage::rollback(&st, &actor, name, &headers, body).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
    }
    if let Some(target) = rest.strip_suffix("/debug") {
        let result = async {
            let t = parse_target(target, false)?;
            crate::debug::debug(&st, &t.name, &t.selector, body).await
        };
        return result.await.unwrap_or_else(|e| HttpError(e).into_response());
    }
    let started = Instant::now();
    let mut labels =
        RequestLabels { model: String::new(), version: String::new(), protocol: "tfserving", api: "predict", code: 0 };
    let result = async {
        let t = parse_target(&rest, true)?;
        labels.api = match t.tail.as_deref() {
            Some("predict") => "predict",
            Some("classify") => "classify",
            Some("regress") => "regress",
            Some("explain") => "explain",
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "unknown method :{other}; expected :predict, :classify, :regress or :explain"
                )))
            }
            None => unreachable!("verb paths always have a tail"),
        };
        let (loaded, shadow) = match &t.selector {
            Selector::Default if labels.api != "explain" => {
                let key = headers.get("x-request-id").and_then(|v| v.to_str().ok());
                let routed = st.manager.route(&t.name, key)?;
                (routed.primary, routed.shadow)
            }
            other => (st.manager.resolve(&t.name, other)?, None),
        };
        labels.model = t.name.clone();
        labels.version = loaded.version.to_string();
        let bytes = read_body(body, st.limits.max_body_bytes).await?;
        match labels.api {
            "predict" => {
                let req = decode_predict(&bytes, loaded.servable.signature())?;
                crate::infer::mirror(&st, shadow, &req.inputs, "tfserving");
                let outputs = crate::infer::run(&st, &loaded, req.inputs).await?;
                Ok(encode_predict(req.row_format, &outputs))
            }
            "classify" => {
                if loaded.servable.class_names().is_empty() {
                    return Err(ApiError::invalid(format!("model {:?} is not a classifier", t.name)));
                }
                let inputs = decode_classify(&bytes, loaded.servable.signature(), loaded.manifest.feature_names())?;
                crate::infer::mirror(&st, shadow, &inputs, "tfserving");
                let outputs = crate::infer::run(&st, &loaded, inputs).await?;
                let names = loaded.servable.class_names();
                let scores = loaded.servable.signature().scores_output(Some(names.len())).unwrap_or(0);
                Ok(encode_classify(&outputs[scores], names))
            }
            "regress" => {
                let outputs = &loaded.servable.signature().outputs;
                let is_regressor = loaded.manifest.sequential().is_some_and(|s| !s.targets.is_empty());
                if !is_regressor {
                    return Err(ApiError::invalid(format!(
                        "model {:?} has no regression signature (it is a classifier: use :classify or :predict)",
                        t.name
                    )));
                }
                if outputs.len() != 1 {
                    let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
                    return Err(ApiError::invalid(format!(
                        "model {:?} predicts {} targets {names:?}; :regress answers one value per example, use \
                            :predict for several",
                        t.name,
                        names.len()
                    )));
                }
                let inputs = decode_classify(&bytes, loaded.servable.signature(), loaded.manifest.feature_names())?;
                crate::infer::mirror(&st, shadow, &inputs, "tfserving");
                let outputs = crate::infer::run(&st, &loaded, inputs).await?;
                Ok(encode_regress(&outputs[0]))
            }
            _ => {
                let (rest, parameters) = crate::explain::split_parameters(&bytes)?;
                let req = decode_predict(&rest, loaded.servable.signature())?;
                let options = crate::explain::options(&parameters)?;
                let explanations = crate::explain::run(&st, &loaded, req.inputs, options).await?;
                Ok(serde_json::to_vec(&crate::explain::v1_body(&explanations)).expect("serialise"))
            }
        }
    }
    .await;
    let response = match result {
        Ok(body) => json_response(body),
        Err(e) => HttpError(e).into_response(),
    };
    labels.code = response.status().as_u16();
    st.metrics.record(labels, started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_tf_serving() {
        let t = parse_target("mnist/versions/3:predict", true).unwrap();
        assert_eq!((t.name.as_str(), t.selector, t.tail.as_deref()), ("mnist", Selector::Version(3), Some("predict")));
        let t = parse_target("mnist/labels/stable/metadata", false).unwrap();
        assert_eq!((t.selector, t.tail.as_deref()), (Selector::Label("stable".into()), Some("metadata")));
        assert_eq!(parse_target("mnist", false).unwrap().selector, Selector::Default);
        assert!(parse_target("mnist/versions/x:predict", true).unwrap_err().message.contains("invalid version"));
        assert!(parse_target("mnist/versions/1/labels/a:predict", true).is_err());
        assert!(parse_target("mnist:predict/x", false).is_err());
        assert!(parse_target("mnist", true).is_err());
    }
}
