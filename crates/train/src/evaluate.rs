//! Evaluating a published version on a labelled data set.

use lathe_formats::spec::Activation;
use lathe_formats::Evaluation;
use lathe_sequential::SequentialModel;

use crate::data::{encode_labels, Dataset};
use crate::error::{data_err, TrainError};
use crate::metrics::evaluate;
use crate::Loss;

/// Scores `model` on `data`: its test split when it has one (IDX folders), else every row.
/// Labels must be among the model's classes; the version's own preprocessing is applied.
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
    let split = data.test.unwrap_or(data.train);
    let labels = encode_labels(&split.labels, model.class_names())?;
    let mut x = split.x;
    model.preprocessing().apply(&mut x, features);
    let loss = Loss::new(model.spec.compile.loss, model.network().final_activation().unwrap_or(Activation::Linear));
    Ok(evaluate(model.network(), &x, &labels, &loss, model.class_names()))
}
