//! Evaluating a published version on a labelled data set.

use lathe_formats::spec::{Activation, Task};
use lathe_formats::Evaluation;
use lathe_sequential::SequentialModel;

use crate::columns::encode_samples;
use crate::data::{encode_labels, ColumnKind, Dataset};
use crate::error::{data_err, TrainError};
use crate::metrics::{evaluate, Truths};
use crate::prepare::standardized_targets;
use crate::Loss;

/// The label columns to read for evaluating `model`: `given` when not empty, else the columns
/// the model was trained on (its targets, or its label column).
pub fn label_columns_for(model: &SequentialModel, given: &[String]) -> Vec<String> {
    if given.is_empty() {
        model.spec.targets.clone()
    } else {
        given.to_vec()
    }
}

/// Scores `model` on `data`: its test split when it has one (IDX folders), else every row.
/// Labels must be among the model's classes, targets numbers; the version's own
/// preprocessing is applied.
pub fn evaluate_version(model: &SequentialModel, data: Dataset) -> Result<Evaluation, TrainError> {
    if model.columns().is_empty() && data.features() != model.input_len() {
        return Err(data_err(format!(
            "samples have {} values ({:?}), the model expects {}",
            data.features(),
            data.sample_shape,
            model.input_len()
        )));
    }
    if model.columns().is_empty() {
        if let Some(cell) = &data.missing_cell {
            return Err(data_err(format!("{cell}; this model does not impute missing values")));
        }
        if let Some(c) = data.columns.iter().find(|c| matches!(c.kind, ColumnKind::Categorical { .. })) {
            return Err(data_err(format!("column {:?} holds text; this model takes numbers only", c.name)));
        }
    }
    let names = data.label_names.clone();
    let split = data.test.unwrap_or(data.train);
    let task = model.spec.task();
    let targets = &model.section().targets;
    check_labels(model, &names, split.width())?;
    let y = match task {
        Task::Classification => {
            encode_labels(&split.labels, model.class_names())?.into_iter().map(|c| c as f32).collect()
        }
        Task::Regression => standardized_targets(&split, &names, targets)?,
    };
    let mut x =
        if model.columns().is_empty() { split.x } else { encode_samples(&data.columns, model.columns(), &split.x)? };
    model.preprocessing().apply(&mut x, model.input_len());
    let final_activation = model.network().final_activation().unwrap_or(Activation::Linear);
    let loss = Loss::for_task(model.spec.compile.loss, final_activation, task);
    let truths = match task {
        Task::Classification => Truths::Classes(model.class_names()),
        Task::Regression => Truths::Targets(targets),
    };
    Ok(evaluate(model.network(), &x, &y, &loss, truths))
}

/// The data's label columns must be what the model predicts: one class column, or the
/// model's targets by name and in order.
fn check_labels(model: &SequentialModel, names: &[String], width: usize) -> Result<(), TrainError> {
    let targets: Vec<&str> = model.section().targets.iter().map(|t| t.name.as_str()).collect();
    let fits = match model.spec.task() {
        Task::Classification => width == 1,
        Task::Regression => names.iter().map(String::as_str).eq(targets.iter().copied()),
    };
    if fits {
        return Ok(());
    }
    let wanted = match model.spec.task() {
        Task::Classification => "one class label column".to_string(),
        Task::Regression => format!("its target columns {targets:?}"),
    };
    Err(data_err(format!("the model needs {wanted}; the data's label columns are {names:?}")))
}
