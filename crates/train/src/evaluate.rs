//! Evaluating a published version on a labelled data set.

use lathe_formats::spec::{Activation, Task};
use lathe_formats::Evaluation;
use lathe_sequential::SequentialModel;

use crate::data::{encode_labels, Dataset};
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
    if data.features() != model.input_len() {
        return Err(data_err(format!(
            "samples have {} values ({:?}), the model expects {}",
            data.features(),
            data.sample_shape,
            model.input_len()
        )));
    }
    let features = data.features();
    let names = data.label_names.clone();
    let split = data.test.unwrap_or(data.train);
    let task = model.spec.task();
    let targets = &model.section().targets;
    let y = match task {
        Task::Classification => {
            encode_labels(&split.labels, model.class_names())?.into_iter().map(|c| c as f32).collect()
        }
        Task::Regression => {
            if split.width() != targets.len() {
                return Err(data_err(format!(
                    "the model predicts {} targets {:?}, the data has {} label columns {names:?}",
                    targets.len(),
                    targets.iter().map(|t| &t.name).collect::<Vec<_>>(),
                    split.width()
                )));
            }
            standardized_targets(&split, &names, targets)?
        }
    };
    let mut x = split.x;
    model.preprocessing().apply(&mut x, features);
    let final_activation = model.network().final_activation().unwrap_or(Activation::Linear);
    let loss = Loss::for_task(model.spec.compile.loss, final_activation, task);
    let truths = match task {
        Task::Classification => Truths::Classes(model.class_names()),
        Task::Regression => Truths::Targets(targets),
    };
    Ok(evaluate(model.network(), &x, &y, &loss, truths))
}
