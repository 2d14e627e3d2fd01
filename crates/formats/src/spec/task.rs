//! What a model predicts (`task`), its target columns, and the `auto` sizes that the data
//! fills in: the input shape and the last dense layer's units.

use serde::{Serialize, Serializer};
use serde_json::Value;

use super::reader::{describe, err};
use super::{LayerSpec, LossKind, Spec, SpecError};

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// One class per sample, from class labels.
    Classification,
    /// One or more real values per sample, from numeric target columns.
    Regression,
}

impl Task {
    /// Parses `classification` or `regression`.
    pub fn parse(text: &str) -> Option<Task> {
        match text {
            "classification" => Some(Task::Classification),
            "regression" => Some(Task::Regression),
            _ => None,
        }
    }

    /// The name as written in specs and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::Regression => "regression",
        }
    }
}

impl std::fmt::Display for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Losses that fit each task.
impl LossKind {
    /// Whether this loss trains regressors (`mse`, `mae`, `huber`); the others need classes.
    pub fn is_regression(self) -> bool {
        matches!(self, LossKind::Mse | LossKind::Mae | LossKind::Huber)
    }

    /// Whether this loss can train a model for `task` (`mse` and `mae` also train
    /// classifiers against one-hot targets).
    pub fn fits(self, task: Task) -> bool {
        match task {
            Task::Classification => self != LossKind::Huber,
            Task::Regression => self.is_regression(),
        }
    }
}

/// The error of a loss that cannot train a model for `task`.
pub(crate) fn loss_mismatch(loss: LossKind, task: Task) -> SpecError {
    let loss = serde_json::to_value(loss).unwrap_or_default();
    let expected = match task {
        Task::Regression => "mse, mae or huber",
        Task::Classification => "a cross-entropy, mse or mae",
    };
    err("compile.loss", format!("{loss} does not fit {task}; expected {expected}"))
}

/// Writes an empty shape as `"auto"`.
pub(crate) fn serialize_shape<S: Serializer>(shape: &[usize], s: S) -> Result<S::Ok, S::Error> {
    if shape.is_empty() {
        s.serialize_str("auto")
    } else {
        shape.serialize(s)
    }
}

/// Writes 0 units as `"auto"`.
pub(crate) fn serialize_units<S: Serializer>(units: &usize, s: S) -> Result<S::Ok, S::Error> {
    if *units == AUTO_UNITS {
        s.serialize_str("auto")
    } else {
        s.serialize_u64(*units as u64)
    }
}

/// `units` of a dense layer written `auto` (filled in from the data's classes or targets).
pub const AUTO_UNITS: usize = 0;

/// Parses the top-level `task`.
pub(crate) fn parse_task(v: Option<&Value>) -> Result<Option<Task>, SpecError> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Task::parse(s)
            .map(Some)
            .ok_or_else(|| err("task", format!("expected classification or regression, got {s:?}"))),
        Some(other) => Err(err("task", format!("expected classification or regression, got {}", describe(other)))),
    }
}

/// Parses the top-level `targets`: a column name or a list of them.
pub(crate) fn parse_targets(v: Option<&Value>) -> Result<Vec<String>, SpecError> {
    let name = |v: &Value, path: &str| match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        other => Err(err(path, format!("expected a column name, got {}", describe(other)))),
    };
    match v {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) if !items.is_empty() => {
            items.iter().enumerate().map(|(i, v)| name(v, &format!("targets[{i}]"))).collect()
        }
        Some(Value::Array(_)) => Err(err("targets", "expected at least one column name")),
        Some(other) => Ok(vec![name(other, "targets")?]),
    }
}

/// Checks that `auto` units appear only on the last dense layer.
pub(crate) fn check_auto_units(layers: &[LayerSpec]) -> Result<(), SpecError> {
    let last_dense = layers.iter().rposition(|l| matches!(l, LayerSpec::Dense { .. }));
    for (i, layer) in layers.iter().enumerate() {
        if matches!(layer, LayerSpec::Dense { units: AUTO_UNITS, .. }) && Some(i) != last_dense {
            return Err(err(&format!("layers[{i}].units"), "auto is only allowed on the last dense layer"));
        }
    }
    Ok(())
}

impl Spec {
    /// Whether the input shape and every layer's size are known (no `auto` left).
    pub fn is_resolved(&self) -> bool {
        !self.input.shape.is_empty()
            && !self.layers.iter().any(|l| matches!(l, LayerSpec::Dense { units: AUTO_UNITS, .. }))
    }

    /// The task, `classification` when the spec leaves it to the data and nobody decided.
    pub fn task(&self) -> Task {
        self.task.unwrap_or(Task::Classification)
    }

    /// Fills in what the data decides: the task, the target columns, an `auto` input shape
    /// (`sample_shape`) and `auto` units of the last dense layer (`outputs`: classes or
    /// targets), then checks shapes as parsing does for a complete spec.
    ///
    /// # Errors
    /// A [`SpecError`] naming the layer whose shape cannot work, or the loss that does not
    /// fit the task.
    pub fn resolve(
        &self,
        task: Task,
        targets: &[String],
        sample_shape: &[usize],
        outputs: usize,
    ) -> Result<Spec, SpecError> {
        let mut spec = self.clone();
        spec.task = Some(task);
        spec.targets = targets.to_vec();
        if spec.input.shape.is_empty() {
            spec.input.shape = sample_shape.to_vec();
        }
        for layer in &mut spec.layers {
            if let LayerSpec::Dense { units, .. } = layer {
                if *units == AUTO_UNITS {
                    *units = outputs;
                }
            }
        }
        if !spec.compile.loss.fits(task) {
            return Err(loss_mismatch(spec.compile.loss, task));
        }
        if task == Task::Regression && spec.fit.early_stopping.as_ref().is_some_and(|e| e.monitor.is_accuracy()) {
            return Err(err("fit.early_stopping.monitor", "a regressor has no accuracy; monitor loss or val_loss"));
        }
        spec.validate()?;
        Ok(spec)
    }
}
