//! `PUT /v1/admin/models/{name}/onnx`: a model file made elsewhere, uploaded and published as
//! the next version of `name`, checked completely first (the same checks as
//! `lathe import onnx`). The body streams to disk under its own size limit.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use lathe_engine::{ImportOptions, Importer};
use lathe_formats::Manifest;
use lathe_registry::{FileSource, Published, Publishing, Repository};
use lathe_types::{ApiError, ErrorKind, ModelRef};
use serde_json::json;

use crate::admin::{admin, audit, internal, stream_to_file};
use crate::auth::Actor;
use crate::body::json_with_status;
use crate::error::HttpResult;
use crate::state::AppState;

/// `PUT /v1/admin/models/{name}/onnx`.
#[utoipa::path(
    put,
    path = "/v1/admin/models/{name}/onnx",
    tag = "models",
    summary = "Upload an ONNX graph and publish it as the next version (checked first, as `lathe import onnx`)",
    params(
        ("name" = String, Path, description = "Model name"),
        ("class_names" = Option<String>, Query, description = "Class names in output order, `a,b,c`"),
        ("batching" = Option<String>, Query, description = "`auto` (default), `on` or `off`"),
    ),
    responses(
        (status = 201, description = "`{name, version, kind, signature}`"),
        (status = 400, description = "Not ONNX, unsupported operators or opset, bad options (the message says which)"),
        (status = 413, description = "Over the model upload limit"),
        (status = 501, description = "Lifecycle API or importer not enabled"),
    ),
)]
pub async fn upload_onnx(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Body,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    let importer = a
        .importer
        .clone()
        .ok_or_else(|| ApiError::new(ErrorKind::Unimplemented, "this server imports no model files"))?;
    ModelRef::validate_name(&name).map_err(|e| ApiError::invalid(format!("model name: {e}")))?;
    let options = options(&query)?;
    std::fs::create_dir_all(&a.uploads_root).map_err(internal)?;
    static UPLOADS: AtomicU64 = AtomicU64::new(0);
    let part = a.uploads_root.join(format!(".part-{name}-{}.onnx", UPLOADS.fetch_add(1, Ordering::Relaxed)));
    let (bytes, sha256) = stream_to_file(body, &part, a.max_model_upload_bytes, "the model file").await?;
    let repo = st.manager.repository().clone();
    let (n, upload) = (name.clone(), part.clone());
    let published =
        tokio::task::spawn_blocking(move || publish_import(&repo, importer.as_ref(), "onnx", &upload, &n, &options))
            .await
            .map_err(internal);
    let _ = std::fs::remove_file(&part);
    let (published, manifest) = published??;
    let version = published.version;
    audit(a, &actor, "model.import", &name, json!({ "version": version, "bytes": bytes, "sha256": sha256 }));
    let body = json!({ "name": name, "version": version, "kind": manifest.kind(), "signature": manifest.signature });
    Ok(json_with_status(StatusCode::CREATED, serde_json::to_vec(&body).expect("json")))
}

/// `class_names` and `batching` from the query; anything else is refused.
fn options(query: &HashMap<String, String>) -> Result<ImportOptions, ApiError> {
    if let Some(k) = query.keys().find(|k| !matches!(k.as_str(), "class_names" | "batching")) {
        return Err(ApiError::invalid(format!("unknown query parameter {k:?}; expected class_names or batching")));
    }
    let class_names = query
        .get("class_names")
        .map(|s| s.split(',').map(str::trim).filter(|c| !c.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let batching = query.get("batching").map_or(Ok(lathe_engine::Batching::Auto), |b| b.parse());
    Ok(ImportOptions {
        class_names,
        batching: batching.map_err(ApiError::invalid)?,
        created_at: lathe_train::rfc3339_now(),
    })
}

/// Checks `file` in `format` with `importer` and publishes it as the next version of `name`;
/// the copy is checked again before the version appears. `lathe import` and the upload route
/// both publish through it.
///
/// # Errors
/// The importer's error (the file, the options) or the registry's. Returns the new version
/// and its manifest.
pub fn publish_import(
    repo: &Repository,
    importer: &dyn Importer,
    format: &str,
    file: &FsPath,
    name: &str,
    options: &ImportOptions,
) -> Result<(Published, Manifest), ApiError> {
    ModelRef::validate_name(name).map_err(|e| ApiError::invalid(format!("model name: {e}")))?;
    let import = importer.prepare(format, file, name, options)?;
    let manifest = import.manifest.clone();
    let sources: Vec<(&str, FileSource)> =
        import.files.iter().map(|(n, p)| (n.as_str(), FileSource::Copy(p.as_path()))).collect();
    let mut hooks =
        Publishing { progress: Box::new(|_| {}), check: Box::new(|dir: &FsPath| importer.check_copy(dir, &manifest)) };
    let published = repo
        .publish_from(name, &sources, import.manifest, &mut hooks)
        .map_err(|e| ApiError::new(lathe_types::HasErrorKind::error_kind(&e), e.to_string()))?;
    drop(hooks);
    Ok((published, manifest))
}
