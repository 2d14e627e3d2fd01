//! The output unit an explanation attributes: the predicted class by default.

use lathe_engine::Servable;
use lathe_types::{ApiError, DType, ErrorKind, Tensor};

use crate::Target;

/// The attributed unit of one row.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    /// Output tensor name.
    pub(crate) output: String,
    /// Unit index: the column of that output, and the unit the engine's gradients take.
    pub(crate) unit: usize,
    /// The class it stands for.
    pub(crate) class: Option<String>,
    /// Which output tensor (index in the run's outputs) holds it.
    pub(crate) tensor: usize,
    /// Its column in that tensor.
    pub(crate) column: usize,
}

impl Chosen {
    /// The unit's value for each row of a run's outputs.
    pub(crate) fn values(&self, outputs: &[Tensor]) -> Result<Vec<f32>, ApiError> {
        let t = outputs.get(self.tensor).ok_or_else(|| internal("the model returned too few outputs"))?;
        let values = t.data.to_f32().ok_or_else(|| internal("the attributed output is not numeric"))?;
        let width = values.len() / t.rows().max(1);
        Ok(values.iter().skip(self.column).step_by(width.max(1)).copied().collect())
    }
}

pub(crate) fn internal(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Internal, message)
}

/// Runs the model on `features` once and picks each row's unit. A classifier's scores output
/// (`[rows, classes]`) is attributed by class; otherwise each floating-point output is a unit
/// (a regressor's targets, in order).
pub(crate) fn choose(servable: &dyn Servable, features: &[Tensor], target: &Target) -> Result<Vec<Chosen>, ApiError> {
    let outputs = servable.infer(features)?;
    let rows = features.first().map_or(0, Tensor::rows);
    let classes = servable.class_names();
    let sig = servable.signature();
    let scores = sig.scores_output(if classes.is_empty() { None } else { Some(classes.len()) });
    let binary = classes.len() == 2 && sig.scores_output(None).is_none() && outputs.len() == 1;
    match (scores, binary) {
        (Some(i), _) => by_class(&outputs, i, rows, classes, target),
        (None, true) => one_unit_binary(&outputs, classes, rows, target),
        (None, false) => {
            let floats: Vec<usize> = (0..outputs.len()).filter(|&i| is_float(&outputs[i])).collect();
            let pick = match target {
                Target::Predicted => 0,
                Target::Unit(u) => *u,
                Target::Name(n) => floats.iter().position(|&i| &outputs[i].name == n).ok_or_else(|| {
                    let names: Vec<&str> = floats.iter().map(|&i| outputs[i].name.as_str()).collect();
                    ApiError::invalid(format!("parameters.target: expected one of the outputs {names:?}, got {n:?}"))
                })?,
            };
            let &tensor = floats.get(pick).ok_or_else(|| {
                ApiError::invalid(format!("parameters.target: the model has {} numeric outputs", floats.len()))
            })?;
            Ok(one_unit(&outputs, tensor, pick, None, rows))
        }
    }
}

fn is_float(t: &Tensor) -> bool {
    matches!(t.data.dtype(), DType::F16 | DType::F32 | DType::F64)
}

/// Every row attributes column 0 of output `tensor`, as gradient unit `unit` (a regressor's
/// target index).
fn one_unit(outputs: &[Tensor], tensor: usize, unit: usize, class: Option<String>, rows: usize) -> Vec<Chosen> {
    let chosen = Chosen { output: outputs[tensor].name.clone(), unit, class, tensor, column: 0 };
    vec![chosen; rows]
}

/// A one-unit binary classifier: its unit is the probability of the second class.
fn one_unit_binary(
    outputs: &[Tensor],
    classes: &[String],
    rows: usize,
    target: &Target,
) -> Result<Vec<Chosen>, ApiError> {
    let second = |asked: String| {
        if asked == classes[1] {
            return Ok(());
        }
        let message = format!(
            "parameters.target: this model has one unit, the probability of {:?}; attributions for {:?} are \
             the same with the sign flipped (got {asked})",
            classes[1], classes[0]
        );
        Err(ApiError::invalid(message))
    };
    match target {
        Target::Predicted => {}
        Target::Unit(1) => {}
        Target::Unit(u) if *u == 0 => second(classes[0].clone())?,
        Target::Unit(u) => return Err(ApiError::invalid(format!("parameters.target: class index {u} of 2 classes"))),
        Target::Name(n) if classes.contains(n) => second(n.clone())?,
        Target::Name(n) => {
            return Err(ApiError::invalid(format!(
                "parameters.target: unknown class {n:?}; the classes are {classes:?}"
            )))
        }
    }
    Ok(one_unit(outputs, 0, 0, Some(classes[1].clone()), rows))
}

fn by_class(
    outputs: &[Tensor],
    tensor: usize,
    rows: usize,
    classes: &[String],
    target: &Target,
) -> Result<Vec<Chosen>, ApiError> {
    let t = &outputs[tensor];
    let scores = t.data.to_f32().ok_or_else(|| internal("the scores output is not numeric"))?;
    let width = scores.len() / rows.max(1);
    let fixed = match target {
        Target::Predicted => None,
        Target::Unit(u) if *u < width => Some(*u),
        Target::Unit(u) => {
            return Err(ApiError::invalid(format!("parameters.target: class index {u} of {width} classes")))
        }
        Target::Name(n) => Some(classes.iter().position(|c| c == n).ok_or_else(|| {
            ApiError::invalid(format!("parameters.target: unknown class {n:?}; the classes are {classes:?}"))
        })?),
    };
    Ok(scores
        .chunks_exact(width.max(1))
        .map(|row| {
            let unit = fixed.unwrap_or_else(|| argmax(row));
            Chosen { output: t.name.clone(), unit, class: classes.get(unit).cloned(), tensor, column: unit }
        })
        .collect())
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}
