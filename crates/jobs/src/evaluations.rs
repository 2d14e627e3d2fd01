//! Evaluations of published versions on uploaded datasets, stored in the metadata store.

use std::path::Path;

use lathe_registry::Repository;
use lathe_sequential::SequentialModel;
use lathe_store::{EvaluationRecord, MetadataStore};
use lathe_train::data::{Dataset, LoadOptions};
use lathe_types::{ApiError, ErrorKind, ModelRef};

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, e.to_string())
}

/// sha256 over a dataset's file digests (name order): identifies its content.
pub fn dataset_digest(store: &dyn MetadataStore, dataset: &str) -> Result<String, ApiError> {
    let record = store
        .dataset(dataset)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("dataset {dataset:?} not found")))?;
    let digests: String = record.files.iter().map(|f| format!("{}:{}\n", f.name, f.sha256)).collect();
    Ok(lathe_formats::atomic::sha256_hex(digests.as_bytes()))
}

/// Evaluates `model` (latest version when `version` is `None`) on `dataset`, reusing a stored
/// result for the same version and dataset content; stores new results. Blocking.
pub fn evaluate(
    store: &dyn MetadataStore,
    repo: &Repository,
    datasets_root: &Path,
    model: &str,
    version: Option<u64>,
    dataset: &str,
) -> Result<EvaluationRecord, ApiError> {
    let info =
        repo.resolve(&ModelRef { name: model.to_string(), version }).map_err(|e| ApiError::not_found(e.to_string()))?;
    let sha = dataset_digest(store, dataset)?;
    if let Some(hit) = store
        .evaluations(Some(model), Some(info.version))
        .map_err(internal)?
        .into_iter()
        .find(|e| e.dataset == dataset && e.dataset_sha256 == sha)
    {
        return Ok(hit);
    }
    let loaded = SequentialModel::load(&info.path)
        .map_err(|e| ApiError::new(ErrorKind::Internal, format!("loading {model}:{}: {e}", info.version)))?;
    let dir = datasets_root.join(dataset);
    let path = lathe_train::data::dataset_path(&dir);
    let label_columns = lathe_train::label_columns_for(&loaded, &[]);
    let data = Dataset::load(&path, &LoadOptions { label_columns })
        .map_err(|e| ApiError::invalid(format!("dataset {dataset:?}: {e}")))?;
    let metrics = lathe_train::evaluate_version(&loaded, data)
        .map_err(|e| ApiError::invalid(format!("dataset {dataset:?}: {e}")))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let record = EvaluationRecord {
        id: format!("eval-{nanos:x}"),
        model: model.to_string(),
        version: info.version,
        dataset: dataset.to_string(),
        dataset_sha256: sha,
        metrics: serde_json::to_value(&metrics).expect("metrics serialise"),
        created_at: lathe_train::rfc3339_now(),
    };
    store.put_evaluation(&record).map_err(internal)?;
    Ok(record)
}
