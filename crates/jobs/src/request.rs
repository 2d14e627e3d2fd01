//! What a client submits.

use lathe_formats::Spec;
use lathe_train::data::parse_column_list;
use lathe_types::{ApiError, ModelRef};
use serde::{Deserialize, Serialize};

/// Move a label to the new version when its metric is at least the labelled version's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoPromote {
    /// Label to move (e.g. `stable`).
    pub label: String,
    /// Metric compared (higher is better): `accuracy`, `macro_f1` or `roc_auc` for
    /// classifiers, `r2` for regressors; default `accuracy` for classifiers and `r2` for
    /// regressors. A version whose evaluation lacks the metric is not promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
}

impl AutoPromote {
    /// The rule's metric of an evaluation, when it has it.
    pub fn metric_of(&self, e: &lathe_formats::Evaluation) -> Option<f64> {
        match &self.metric {
            Some(name) => e.metric(name),
            None => e.accuracy.or(e.r2),
        }
    }
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
    /// CSV label column, or several regression targets separated by commas (`a,b`); default:
    /// the spec's `targets`, else `label`, else the last column.
    #[serde(default)]
    pub label_column: Option<String>,
}

/// Metrics an auto-promotion rule may compare.
const PROMOTION_METRICS: [&str; 4] = ["accuracy", "macro_f1", "roc_auc", "r2"];

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
            if let Some(metric) = p.metric.as_deref().filter(|m| !PROMOTION_METRICS.contains(m)) {
                return Err(ApiError::invalid(format!(
                    "auto_promote.metric: expected one of {}, got {metric:?}",
                    PROMOTION_METRICS.join(", "),
                )));
            }
        }
        if let Some(text) = &self.label_column {
            parse_column_list(text).map_err(|e| ApiError::invalid(format!("label_column: {e}")))?;
        }
        Ok(spec)
    }

    /// The label columns named by `label_column` (empty when it is absent; checked by
    /// [`JobRequest::validate`]).
    pub fn label_columns(&self) -> Vec<String> {
        self.label_column.as_deref().and_then(|c| parse_column_list(c).ok()).unwrap_or_default()
    }
}
