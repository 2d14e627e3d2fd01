//! What a client submits.

use lathe_formats::Spec;
use lathe_types::{ApiError, ModelRef};
use serde::{Deserialize, Serialize};

/// Move a label to the new version when its metric is at least the labelled version's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoPromote {
    /// Label to move (e.g. `stable`).
    pub label: String,
    /// Metric compared: `accuracy` (default) or `macro_f1`.
    #[serde(default = "default_metric")]
    pub metric: String,
}

fn default_metric() -> String {
    "accuracy".into()
}

/// A training job request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Model name the version is published under.
    pub name: String,
    /// The model spec (same document as a spec file, as JSON).
    pub spec: serde_json::Value,
    /// Name of an uploaded dataset.
    pub dataset: String,
    /// Seed; overrides the spec's.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Optional label promotion after training.
    #[serde(default)]
    pub auto_promote: Option<AutoPromote>,
    /// CSV label column.
    #[serde(default)]
    pub label_column: Option<String>,
}

impl JobRequest {
    /// Validates names, the spec and the promotion rule; returns the parsed spec.
    pub fn validate(&self) -> Result<Spec, ApiError> {
        ModelRef::validate_name(&self.name).map_err(|e| ApiError::invalid(format!("name: {e}")))?;
        ModelRef::validate_name(&self.dataset).map_err(|e| ApiError::invalid(format!("dataset: {e}")))?;
        let mut spec = Spec::from_value(&self.spec).map_err(|e| ApiError::invalid(format!("spec.{e}")))?;
        if let Some(seed) = self.seed {
            spec.fit.seed = seed;
        }
        if let Some(p) = &self.auto_promote {
            lathe_registry::validate_label(&p.label)
                .map_err(|e| ApiError::invalid(format!("auto_promote.label: {e}")))?;
            if !matches!(p.metric.as_str(), "accuracy" | "macro_f1") {
                return Err(ApiError::invalid(format!(
                    "auto_promote.metric: expected accuracy or macro_f1, got {:?}",
                    p.metric
                )));
            }
        }
        Ok(spec)
    }
}
