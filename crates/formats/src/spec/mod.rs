//! The model spec: a Keras-like sequential model, how to compile it and how to fit it.
//!
//! Specs are written by people, so parsing is strict and every error names the path of the
//! offending value (`layers[2].units: expected a positive integer, got -3`). Defaults are
//! filled in at parse time, and the canonical JSON form (`Spec::to_json`) parses back to the
//! same spec, which is how a version's manifest stores it.

mod layers;
mod reader;
mod shape;
mod task;
mod training;

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

pub use layers::{Activation, LayerSpec, Padding};
pub use shape::{as_image, infer_shapes, same_pad_before, window_output, Shape};
pub use task::{Task, AUTO_UNITS};
pub use training::{CompileSpec, EarlyStoppingSpec, FitSpec, LossKind, LrSchedule, Monitor, OptimizerSpec};

use reader::{err, positive, Fields};

/// An error in a spec, with the path of the value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct SpecError {
    /// Where in the spec, e.g. `layers[2].units`; empty for the document itself.
    pub path: String,
    /// What was expected and what arrived.
    pub message: String,
}

/// How raw input values are scaled before the first layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scaling {
    /// Values are used as they are.
    None,
    /// Every value is divided by `divisor` (255 maps bytes to [0, 1]).
    Rescale {
        /// The divisor.
        divisor: f64,
    },
    /// Each feature is standardised with the mean and standard deviation of the training split.
    Standardize,
}

/// What happens to missing cells of a table (empty, `NA`, `NaN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// A missing cell is an error naming its row and column.
    Error,
    /// Missing cells take the training split's mean (numbers) or most frequent value
    /// (categories), in training and prediction alike.
    Impute,
}

/// Categories per column one-hot encoded when no spec says otherwise.
pub const DEFAULT_MAX_CATEGORIES: usize = 20;

/// How raw inputs become what the first layer sees: the scaling, missing cells, and the cap on
/// categories per text column of a table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreprocessingSpec {
    /// Scaling of the (encoded) features.
    #[serde(flatten)]
    pub scaling: Scaling,
    /// Missing cells of a table.
    pub missing: MissingPolicy,
    /// Most one-hot features per text column: beyond it, the most frequent `max_categories − 1`
    /// categories keep their own feature and the rest share an `other` one.
    pub max_categories: usize,
}

impl Default for PreprocessingSpec {
    fn default() -> Self {
        PreprocessingSpec {
            scaling: Scaling::None,
            missing: MissingPolicy::Error,
            max_categories: DEFAULT_MAX_CATEGORIES,
        }
    }
}

/// Shape of one sample and its preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// Shape of one sample, channels last (`[28, 28]`, `[28, 28, 1]`, `[4]`); empty when
    /// written `auto` (or left out), until [`Spec::resolve`] takes it from the data.
    #[serde(serialize_with = "task::serialize_shape")]
    pub shape: Vec<usize>,
    /// Preprocessing applied before the first layer, in training and in prediction alike.
    pub preprocessing: PreprocessingSpec,
}

/// A complete model spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Optional free-text description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What the model predicts; `None` until the data decides (see [`Spec::resolve`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    /// Target columns of a table: one label column, or one or more regression targets; empty
    /// for the data's default label column.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// Input shape and preprocessing.
    pub input: InputSpec,
    /// The layers, applied in order.
    pub layers: Vec<LayerSpec>,
    /// Optimizer and loss.
    pub compile: CompileSpec,
    /// Epochs, batches, validation, schedules.
    pub fit: FitSpec,
}

impl Spec {
    /// Reads a spec file; `.json` files are read as JSON, everything else as YAML.
    pub fn from_file(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read spec file {}: {e}", path.display())))?;
        let is_json = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json"));
        if is_json {
            Self::from_json_str(&text)
        } else {
            Self::from_yaml_str(&text)
        }
    }

    /// Parses a spec from YAML text.
    pub fn from_yaml_str(text: &str) -> Result<Spec, SpecError> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| err("", format!("invalid YAML: {e}")))?;
        Self::from_value(&value)
    }

    /// Parses a spec from JSON text.
    pub fn from_json_str(text: &str) -> Result<Spec, SpecError> {
        let value: Value = serde_json::from_str(text).map_err(|e| err("", format!("invalid JSON: {e}")))?;
        Self::from_value(&value)
    }

    /// Parses and validates a spec document, shapes included.
    pub fn from_value(value: &Value) -> Result<Spec, SpecError> {
        let mut top = Fields::new(value, "")?;
        let description = top.opt_str("description")?.map(str::to_string);
        let task = task::parse_task(top.get("task"))?;
        let targets = task::parse_targets(top.get("targets"))?;
        let input = parse_input(top.req("input")?)?;
        let layers_value = top.req("layers")?;
        let Value::Array(items) = layers_value else {
            return Err(err("layers", "expected a list of layers"));
        };
        if items.is_empty() {
            return Err(err("layers", "expected at least one layer"));
        }
        let layers = items
            .iter()
            .enumerate()
            .map(|(i, v)| LayerSpec::parse(v, &format!("layers[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        task::check_auto_units(&layers)?;
        let compile = CompileSpec::parse(top.req("compile")?, "compile")?;
        let fit = match top.get("fit") {
            Some(v) => FitSpec::parse(v, "fit")?,
            None => FitSpec::default(),
        };
        top.finish()?;
        let spec = Spec { description, task, targets, input, layers, compile, fit };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks what needs the whole spec: shapes (once no `auto` is left), and that the loss
    /// fits the output.
    fn validate(&self) -> Result<(), SpecError> {
        if let Some(task) = self.task.filter(|t| !self.compile.loss.fits(*t)) {
            return Err(task::loss_mismatch(self.compile.loss, task));
        }
        if self.is_resolved() {
            self.check_shapes()?;
        }
        if self.fit.early_stopping.as_ref().is_some_and(|e| e.monitor.needs_validation())
            && self.fit.validation_split <= 0.0
        {
            return Err(err(
                "fit.early_stopping.monitor",
                "monitoring a validation metric needs fit.validation_split > 0",
            ));
        }
        Ok(())
    }

    fn check_shapes(&self) -> Result<(), SpecError> {
        let shapes = infer_shapes(&self.input.shape, &self.layers)?;
        let out = shapes.last().expect("at least one layer");
        if out.len() != 1 {
            return Err(err(
                &format!("layers[{}]", self.layers.len() - 1),
                format!(
                    "the model must end with a flat output (units per class), got shape {out:?}; add flatten and \
                        dense layers"
                ),
            ));
        }
        Ok(())
    }

    /// Number of values in one sample (0 while the shape is `auto`).
    pub fn input_len(&self) -> usize {
        self.input.shape.iter().product()
    }

    /// Shape of the model's output for one sample.
    pub fn output_shape(&self) -> Shape {
        infer_shapes(&self.input.shape, &self.layers)
            .expect("validated at parse time")
            .pop()
            .expect("at least one layer")
    }

    /// FLOPs of one training step per sample in the GEMM layers (dense, conv2d): forward,
    /// weight gradient, and input gradient for every such layer but the first.
    pub fn train_flops_per_sample(&self) -> f64 {
        let shapes = infer_shapes(&self.input.shape, &self.layers).expect("validated at parse time");
        let mut input: &[usize] = &self.input.shape;
        let mut total = 0.0;
        let mut passes = 2.0;
        for (layer, out) in self.layers.iter().zip(&shapes) {
            let in_len: usize = input.iter().product();
            let forward = match layer {
                LayerSpec::Dense { units, .. } => 2.0 * in_len as f64 * *units as f64,
                LayerSpec::Conv2d { filters, kernel, .. } => {
                    let channels = as_image(input).map_or(1, |[_, _, c]| c);
                    2.0 * (out[0] * out[1]) as f64 * (kernel[0] * kernel[1] * channels) as f64 * *filters as f64
                }
                _ => 0.0,
            };
            if forward > 0.0 {
                total += forward * passes;
                passes = 3.0;
            }
            input = out;
        }
        total
    }

    /// The canonical JSON form, with every default spelled out; parses back to `self`.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("spec serialises")
    }
}

fn parse_input(v: &Value) -> Result<InputSpec, SpecError> {
    let mut f = Fields::new(v, "input")?;
    let shape_path = f.key_path("shape");
    let shape = match f.get("shape") {
        None => Vec::new(),
        Some(Value::String(s)) if s == "auto" => Vec::new(),
        Some(Value::Array(dims)) if !dims.is_empty() && dims.len() <= 3 => dims
            .iter()
            .enumerate()
            .map(|(i, d)| positive(d, &format!("{shape_path}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(err(
                &shape_path,
                "expected auto or a list of 1 to 3 positive integers (one sample, channels last)",
            ))
        }
    };
    let preprocessing = match f.get("preprocessing") {
        None => PreprocessingSpec::default(),
        Some(v) => parse_preprocessing(v, &f.key_path("preprocessing"))?,
    };
    f.finish()?;
    Ok(InputSpec { shape, preprocessing })
}

fn parse_preprocessing(v: &Value, path: &str) -> Result<PreprocessingSpec, SpecError> {
    if let Value::String(s) = v {
        let scaling = match s.as_str() {
            "none" => Scaling::None,
            "standardize" => Scaling::Standardize,
            other => {
                return Err(err(
                    path,
                    format!("expected none, standardize or {{kind: rescale, divisor: N}}, got {other:?}"),
                ))
            }
        };
        return Ok(PreprocessingSpec { scaling, ..PreprocessingSpec::default() });
    }
    let mut f = Fields::new(v, path)?;
    let kind_path = f.key_path("kind");
    let scaling = match f.opt_str("kind")?.unwrap_or("none") {
        "none" => Scaling::None,
        "standardize" => Scaling::Standardize,
        "rescale" => Scaling::Rescale {
            divisor: f
                .opt_positive_f64("divisor")?
                .ok_or_else(|| err(&f.key_path("divisor"), "missing required key"))?,
        },
        other => return Err(err(&kind_path, format!("expected one of none, rescale, standardize, got {other:?}"))),
    };
    let missing = match f.opt_str("missing")? {
        None | Some("error") => MissingPolicy::Error,
        Some("impute") => MissingPolicy::Impute,
        Some(other) => return Err(err(&f.key_path("missing"), format!("expected error or impute, got {other:?}"))),
    };
    let max_categories = match f.opt_positive("max_categories")? {
        Some(1) => return Err(err(&f.key_path("max_categories"), "expected at least 2, got 1")),
        other => other.unwrap_or(DEFAULT_MAX_CATEGORIES),
    };
    f.finish()?;
    Ok(PreprocessingSpec { scaling, missing, max_categories })
}

#[cfg(test)]
mod tests;
