//! The lifecycle API: datasets (streamed, size-limited, checksummed uploads), training jobs
//! (submit, status, cancel, server-sent events) and the audit log. Admin scope only.

use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use http_body_util::BodyExt;
use lathe_jobs::{JobRequest, JobRunner};
use lathe_store::{DatasetFile, DatasetRecord, JobState, MetadataStore};
use lathe_types::{ApiError, ErrorKind, ModelRef};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::Actor;
use crate::body::{json_ok, json_with_status, read_body};
use crate::error::HttpResult;
use crate::state::AppState;

/// Files a dataset folder may hold.
pub const DATASET_FILES: [&str; 9] = [
    "train-images-idx3-ubyte",
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte",
    "t10k-labels-idx1-ubyte.gz",
    "data.csv",
];

/// What the lifecycle API works with.
pub struct Admin {
    /// Metadata store.
    pub store: Arc<dyn MetadataStore>,
    /// Training jobs.
    pub jobs: Arc<JobRunner>,
    /// One folder per dataset.
    pub datasets_root: PathBuf,
    /// Largest accepted dataset file.
    pub max_upload_bytes: u64,
    /// Imports uploaded model files (`PUT /v1/admin/models/{name}/onnx`); `None`: refused.
    pub importer: Option<Arc<dyn lathe_engine::Importer>>,
    /// Largest accepted model file.
    pub max_model_upload_bytes: u64,
    /// Where uploaded model files wait while they are checked.
    pub uploads_root: PathBuf,
}

pub(crate) fn admin(st: &AppState) -> Result<&Admin, ApiError> {
    st.admin
        .as_deref()
        .ok_or_else(|| ApiError::new(ErrorKind::Unimplemented, "the lifecycle API is not enabled on this server"))
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

pub(crate) fn audit(a: &Admin, actor: &Actor, action: &str, target: &str, detail: Value) {
    let _ = a.store.audit(&lathe_train::rfc3339_now(), &actor.0, action, target, &detail.to_string());
}

fn check_dataset_name(name: &str) -> Result<(), ApiError> {
    ModelRef::validate_name(name).map_err(|e| ApiError::invalid(format!("dataset name: {e}")))
}

/// `GET /v1/datasets`.
#[utoipa::path(
    get,
    path = "/v1/datasets",
    tag = "datasets",
    summary = "List datasets",
    responses(
        (status = 200, description = "`{datasets: [...]}`"),
    ),
)]
pub async fn list_datasets(State(st): State<AppState>) -> HttpResult<Response> {
    let a = admin(&st)?;
    Ok(json_ok(&json!({ "datasets": a.store.datasets().map_err(internal)? })))
}

/// Streams `body` into `part` (created or truncated), refusing it past `limit` bytes (the
/// partial file is removed, 413 naming `what`); returns its size and hex sha256.
pub(crate) async fn stream_to_file(
    mut body: Body,
    part: &std::path::Path,
    limit: u64,
    what: &str,
) -> Result<(u64, String), ApiError> {
    let mut out = std::fs::File::create(part).map_err(internal)?;
    let mut hasher = Sha256::new();
    let mut bytes: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("upload interrupted: {e}")))?;
        let Ok(chunk) = frame.into_data() else { continue };
        bytes += chunk.len() as u64;
        if bytes > limit {
            drop(out);
            let _ = std::fs::remove_file(part);
            return Err(ApiError::new(
                ErrorKind::PayloadTooLarge,
                format!("{what} is larger than the upload limit of {limit} bytes"),
            ));
        }
        hasher.update(&chunk);
        out.write_all(&chunk).map_err(internal)?;
    }
    out.sync_all().map_err(internal)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// `PUT /v1/datasets/{name}/files/{file}`: streams the body to disk under the size limit,
/// computing its sha256; the file replaces an earlier one of the same name atomically.
#[utoipa::path(
    put,
    path = "/v1/datasets/{name}/files/{file}",
    tag = "datasets",
    summary = "Upload one dataset file (IDX file or `data.csv`), streamed and checksummed",
    params(
        ("name" = String, Path, description = "Dataset name"),
        ("file" = String, Path, description = "File name"),
    ),
    responses(
        (status = 201, description = "`{dataset, file, bytes, sha256}`"),
        (status = 400, description = "Bad name"),
        (status = 409, description = "Used by a job"),
        (status = 413, description = "Over the upload limit"),
    ),
)]
pub async fn upload(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path((name, file)): Path<(String, String)>,
    body: Body,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    check_dataset_name(&name)?;
    if !DATASET_FILES.contains(&file.as_str()) {
        return Err(ApiError::invalid(format!(
            "file name {file:?} is not a dataset file; expected one of {DATASET_FILES:?}"
        ))
        .into());
    }
    if a.jobs.dataset_in_use(&name) {
        return Err(
            ApiError::new(ErrorKind::Conflict, format!("dataset {name:?} is used by a queued or running job")).into()
        );
    }
    let dir = a.datasets_root.join(&name);
    std::fs::create_dir_all(&dir).map_err(internal)?;
    let part = dir.join(format!(".part-{file}"));
    let (bytes, sha256) = stream_to_file(body, &part, a.max_upload_bytes, &file).await?;
    std::fs::rename(&part, dir.join(&file)).map_err(internal)?;
    store_remotely(&st, &name, Some(&file)).await?;
    let now = lathe_train::rfc3339_now();
    let mut record = a.store.dataset(&name).map_err(internal)?.unwrap_or(DatasetRecord {
        name: name.clone(),
        files: Vec::new(),
        summary: None,
        created_at: now.clone(),
        updated_at: now.clone(),
    });
    record.files.retain(|f| f.name != file);
    record.files.push(DatasetFile { name: file.clone(), bytes, sha256: sha256.clone() });
    record.files.sort_by(|x, y| x.name.cmp(&y.name));
    record.summary = None;
    record.updated_at = now;
    a.store.put_dataset(&record).map_err(internal)?;
    audit(a, &actor, "dataset.upload", &name, json!({ "file": file, "bytes": bytes, "sha256": sha256 }));
    Ok(json_with_status(
        StatusCode::CREATED,
        serde_json::to_vec(&json!({ "dataset": name, "file": file, "bytes": bytes, "sha256": sha256 })).expect("json"),
    ))
}

/// With an object-store repository, copies a dataset's uploaded `file` there (workers on
/// other machines train on it), or removes the dataset's copies (`None`).
async fn store_remotely(st: &AppState, name: &str, file: Option<&str>) -> Result<(), ApiError> {
    let repo = st.manager.repository().clone();
    let Some(a) = st.admin.as_ref() else { return Ok(()) };
    if repo.remote().is_none() {
        return Ok(());
    }
    let (name, file, dir) = (name.to_string(), file.map(str::to_string), a.datasets_root.join(name));
    let stored = tokio::task::spawn_blocking(move || {
        let remote = repo.remote().expect("checked above");
        match &file {
            Some(f) => remote.put_file(lathe_jobs::DATASET_AREA, &name, f, &dir.join(f)),
            None => remote.delete_folder(lathe_jobs::DATASET_AREA, &name),
        }
    });
    stored.await.map_err(internal)?.map_err(|e| lathe_types::HasErrorKind::to_api_error(&e))
}

/// `GET /v1/datasets/{name}`: the record and a description read from the data (rows,
/// sample shape, columns, class balance), computed once per upload.
#[utoipa::path(
    get,
    path = "/v1/datasets/{name}",
    tag = "datasets",
    summary = "Describe a dataset: files, rows, columns (type, missing cells, min, max, mean), class balance",
    params(
        ("name" = String, Path, description = "Dataset name"),
        ("label_column" = Option<String>, Query, description = "CSV label column(s), `a,b`; default `label`, \
            else the last column"),
    ),
    responses(
        (status = 200, description = "The record with its summary"),
        (status = 400, description = "Unreadable data"),
        (status = 404, description = "Unknown dataset"),
    ),
)]
pub async fn describe(
    State(st): State<AppState>,
    Path(name): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    check_dataset_name(&name)?;
    let mut record = a
        .store
        .dataset(&name)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("dataset {name:?} not found")))?;
    let label_columns = match q.get("label_column") {
        None => Vec::new(),
        Some(text) => {
            lathe_train::data::parse_column_list(text).map_err(|e| ApiError::invalid(format!("label_column: {e}")))?
        }
    };
    // The summary under the default label column is kept with the record; others are computed.
    if record.summary.is_none() || !label_columns.is_empty() {
        let dir = a.datasets_root.join(&name);
        let keep = label_columns.is_empty();
        let summary = tokio::task::spawn_blocking(move || summarise(&dir, label_columns)).await.map_err(internal)??;
        record.summary = Some(summary);
        if keep {
            a.store.put_dataset(&record).map_err(internal)?;
        }
    }
    Ok(json_ok(&record))
}

fn summarise(dir: &std::path::Path, label_columns: Vec<String>) -> Result<Value, ApiError> {
    let path = lathe_train::data::dataset_path(dir);
    let options = lathe_train::data::LoadOptions { label_columns };
    let data = lathe_train::data::Dataset::load(&path, &options)
        .map_err(|e| ApiError::invalid(format!("the dataset cannot be read: {e}")))?;
    let column_types = if data.format == "csv" {
        lathe_train::data::describe_csv(&path)
            .map_err(|e| ApiError::invalid(format!("the dataset cannot be read: {e}")))?
    } else {
        Vec::new()
    };
    let names = data.label_columns_or_default();
    let task = lathe_train::data::infer_task(&data.train, &names);
    let balance = |labels: &[String]| {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        labels.iter().for_each(|l| *counts.entry(l.clone()).or_default() += 1);
        counts
    };
    let classification = task.task == lathe_formats::spec::Task::Classification;
    Ok(json!({
        "task": task.task,
        "task_reason": task.reason,
        "format": data.format,
        "sample_shape": data.sample_shape,
        "columns": data.feature_names,
        "label_columns": data.label_names,
        "column_types": column_types,
        "train_rows": data.train.len(),
        "test_rows": data.test.as_ref().map(|t| t.len()),
        "class_balance": classification.then(|| balance(&data.train.labels)),
        "fingerprint": data.fingerprint(),
    }))
}

/// `DELETE /v1/datasets/{name}`: 409 while a queued or running job uses it.
#[utoipa::path(
    delete,
    path = "/v1/datasets/{name}",
    tag = "datasets",
    summary = "Delete a dataset",
    params(
        ("name" = String, Path, description = "Dataset name"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 404, description = "Unknown"),
        (status = 409, description = "Used by a job"),
    ),
)]
pub async fn delete_dataset(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    check_dataset_name(&name)?;
    if a.store.dataset(&name).map_err(internal)?.is_none() {
        return Err(ApiError::not_found(format!("dataset {name:?} not found")).into());
    }
    if a.jobs.dataset_in_use(&name) {
        return Err(
            ApiError::new(ErrorKind::Conflict, format!("dataset {name:?} is used by a queued or running job")).into()
        );
    }
    a.store.delete_dataset(&name).map_err(internal)?;
    let _ = std::fs::remove_dir_all(a.datasets_root.join(&name));
    store_remotely(&st, &name, None).await?;
    audit(a, &actor, "dataset.delete", &name, json!({}));
    Ok(json_ok(&json!({ "deleted": name })))
}

/// `POST /v1/jobs`.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    summary = "Queue a training job `{name, spec, dataset, seed?, auto_promote?, label_column?}`",
    responses(
        (status = 201, description = "The job"),
        (status = 400, description = "Invalid request or spec"),
        (status = 404, description = "Unknown dataset"),
        (status = 429, description = "Too many queued jobs"),
    ),
)]
pub async fn submit_job(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Body,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    let req: JobRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid job request: {e}")))?;
    let job = a.jobs.submit(req)?;
    audit(a, &actor, "job.submit", &job.id, job.request.clone());
    Ok(json_with_status(StatusCode::CREATED, serde_json::to_vec(&job).expect("json")))
}

/// `GET /v1/jobs`.
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    summary = "List jobs, newest first",
    responses(
        (status = 200, description = "`{jobs: [...]}`"),
    ),
)]
pub async fn list_jobs(State(st): State<AppState>) -> HttpResult<Response> {
    Ok(json_ok(&json!({ "jobs": admin(&st)?.jobs.list()? })))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    summary = "One job",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The job"),
        (status = 404, description = "Unknown job"),
    ),
)]
pub async fn get_job(State(st): State<AppState>, Path(id): Path<String>) -> HttpResult<Response> {
    Ok(json_ok(&admin(&st)?.jobs.get(&id)?))
}

/// `POST /v1/jobs/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/cancel",
    tag = "jobs",
    summary = "Cancel a queued or running job",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "The job"),
        (status = 404, description = "Unknown job"),
        (status = 409, description = "Already finished"),
    ),
)]
pub async fn cancel_job(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    let job = a.jobs.cancel(&id)?;
    audit(a, &actor, "job.cancel", &id, json!({}));
    Ok(json_ok(&job))
}

/// `GET /v1/jobs/{id}/events`: server-sent events: the job's current record, then its
/// `state`, `progress`, `epoch` and `log` events until it finishes.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/events",
    tag = "jobs",
    summary = "Server-sent events of a job: `job`, `progress`, `epoch`, `log`, `state`",
    params(
        ("id" = String, Path, description = "Job id"),
    ),
    responses(
        (status = 200, description = "`text/event-stream`"),
        (status = 404, description = "Unknown job"),
    ),
)]
pub async fn job_events(State(st): State<AppState>, Path(id): Path<String>) -> HttpResult<Response> {
    let a = admin(&st)?;
    let rx = a.jobs.subscribe(&id);
    let snapshot = a.jobs.get(&id)?;
    let finished = snapshot.state.is_finished();
    let first = SseEvent::default().event("job").json_data(&snapshot).map_err(internal)?;
    let state = (Some(first), if finished { None } else { Some(rx) });
    let stream = futures_util::stream::unfold(state, |(first, rx)| async move {
        if let Some(ev) = first {
            return Some((Ok::<_, Infallible>(ev), (None, rx)));
        }
        let mut rx = rx?;
        loop {
            match rx.recv().await {
                Ok(ev) => {
                    let done = ev.kind == "state"
                        && ev
                            .data
                            .get("state")
                            .and_then(Value::as_str)
                            .and_then(JobState::parse)
                            .is_some_and(JobState::is_finished);
                    let sse = SseEvent::default().event(ev.kind).json_data(&ev.data).unwrap_or_default();
                    return Some((Ok(sse), (None, if done { None } else { Some(rx) })));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()).into_response())
}

/// `GET /v1/admin/audit`: the latest 500 admin actions.
#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "management",
    summary = "The latest admin actions",
    responses(
        (status = 200, description = "`{audit: [...]}`"),
    ),
)]
pub async fn audit_log(State(st): State<AppState>) -> HttpResult<Response> {
    Ok(json_ok(&json!({ "audit": admin(&st)?.store.audit_log(500).map_err(internal)? })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluationRequest {
    model: String,
    #[serde(default)]
    version: Option<u64>,
    dataset: String,
}

async fn run_evaluation(
    st: &AppState,
    model: String,
    version: Option<u64>,
    dataset: String,
) -> Result<lathe_store::EvaluationRecord, ApiError> {
    let a = admin(st)?;
    ModelRef::validate_name(&model).map_err(|e| ApiError::invalid(format!("model: {e}")))?;
    check_dataset_name(&dataset)?;
    let (store, repo, root) = (a.store.clone(), st.manager.repository().clone(), a.datasets_root.clone());
    tokio::task::spawn_blocking(move || lathe_jobs::evaluate(&*store, &repo, &root, &model, version, &dataset))
        .await
        .map_err(internal)?
}

/// `POST /v1/evaluations` (`{"model", "version"?, "dataset"}`): evaluates a version on a
/// dataset (or returns the stored result for the same content).
#[utoipa::path(
    post,
    path = "/v1/evaluations",
    tag = "evaluations",
    summary = "Evaluate a version on a dataset `{model, version?, dataset}` (stored)",
    responses(
        (status = 200, description = "The evaluation"),
        (status = 400, description = "Invalid"),
        (status = 404, description = "Unknown model or dataset"),
    ),
)]
pub async fn evaluate(
    State(st): State<AppState>,
    Extension(actor): Extension<Actor>,
    body: Body,
) -> HttpResult<Response> {
    admin(&st)?;
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    let req: EvaluationRequest =
        serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid evaluation request: {e}")))?;
    let record = run_evaluation(&st, req.model, req.version, req.dataset).await?;
    audit(
        admin(&st)?,
        &actor,
        "evaluation.run",
        &record.model,
        json!({ "version": record.version, "dataset": record.dataset, "id": record.id }),
    );
    Ok(json_ok(&record))
}

/// `GET /v1/evaluations?model=&version=`: stored evaluations, newest first.
#[utoipa::path(
    get,
    path = "/v1/evaluations",
    tag = "evaluations",
    summary = "Stored evaluations (`?model=&version=`)",
    responses(
        (status = 200, description = "`{evaluations: [...]}`"),
    ),
)]
pub async fn list_evaluations(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> HttpResult<Response> {
    let a = admin(&st)?;
    let version = q.get("version").map(|v| crate::body::parse_version(v)).transpose()?;
    Ok(json_ok(
        &json!({ "evaluations": a.store.evaluations(q.get("model").map(String::as_str), version).map_err(internal)? }),
    ))
}

/// `GET /v1/evaluations/compare?model=m&a=1&b=2&dataset=d`: two versions side by side on one
/// dataset (metrics, confusion matrices, and b − a for the headline figures).
#[utoipa::path(
    get,
    path = "/v1/evaluations/compare",
    tag = "evaluations",
    summary = "Two versions side by side on one dataset (`?model&a&b&dataset`)",
    responses(
        (status = 200, description = "`{a, b, delta}`"),
        (status = 400, description = "Missing parameters"),
        (status = 404, description = "Unknown"),
    ),
)]
pub async fn compare(
    State(st): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> HttpResult<Response> {
    let need = |k: &str| q.get(k).cloned().ok_or_else(|| ApiError::invalid(format!("missing query parameter {k}")));
    let (model, dataset) = (need("model")?, need("dataset")?);
    let a = crate::body::parse_version(&need("a")?)?;
    let b = crate::body::parse_version(&need("b")?)?;
    let ea = run_evaluation(&st, model.clone(), Some(a), dataset.clone()).await?;
    let eb = run_evaluation(&st, model.clone(), Some(b), dataset.clone()).await?;
    let delta = |k: &str| Some(eb.metrics[k].as_f64()? - ea.metrics[k].as_f64()?);
    Ok(json_ok(&json!({
        "model": model,
        "dataset": dataset,
        "a": { "version": a, "metrics": ea.metrics },
        "b": { "version": b, "metrics": eb.metrics },
        "delta": {
            "accuracy": delta("accuracy"),
            "macro_f1": delta("macro_f1"),
            "r2": delta("r2"),
            "rmse": delta("rmse"),
            "loss": delta("loss"),
        },
    })))
}
