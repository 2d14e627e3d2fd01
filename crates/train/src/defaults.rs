//! The networks `lathe train` uses when no spec is given: one per task for tables (the
//! regressor is the classifier with a linear output and the squared error), one for images.
//! docs/spec.md shows them.

use lathe_formats::spec::{Activation, LayerSpec, LossKind, Task};
use lathe_formats::Spec;

/// Tables, classification: two hidden layers of 64 ReLU units on standardised features.
pub const TABLE_CLASSIFIER: &str = "\
task: classification
input: {shape: auto, preprocessing: standardize}
layers:
  - {type: dense, units: 64, activation: relu}
  - {type: dense, units: 64, activation: relu}
  - {type: dense, units: auto, activation: softmax}
compile: {optimizer: {type: adam, lr: 0.001}, loss: sparse_categorical_crossentropy}
fit:
  epochs: 200
  batch_size: 32
  validation_split: 0.1
  early_stopping: {monitor: val_loss, patience: 10, restore_best: true}
";

/// Images (IDX): a one-hidden-layer perceptron on pixels scaled to [0, 1].
pub const IMAGE_CLASSIFIER: &str = "\
task: classification
input: {shape: auto, preprocessing: {kind: rescale, divisor: 255}}
layers:
  - {type: flatten}
  - {type: dense, units: 128, activation: relu}
  - {type: dropout, rate: 0.2}
  - {type: dense, units: auto, activation: softmax}
compile: {optimizer: {type: adam, lr: 0.001}, loss: sparse_categorical_crossentropy}
fit:
  epochs: 10
  batch_size: 32
  validation_split: 0.1
  early_stopping: {monitor: val_loss, patience: 2, restore_best: true}
";

/// The default spec for data of `format` (`csv` or `idx`) and `task`, and its name.
pub fn default_spec(format: &str, task: Task) -> (Spec, &'static str) {
    let parse = |text: &str| Spec::from_yaml_str(text).expect("the default specs parse");
    match (format, task) {
        ("idx", Task::Classification) => (parse(IMAGE_CLASSIFIER), "the default image classifier"),
        (_, Task::Classification) => (parse(TABLE_CLASSIFIER), "the default table classifier"),
        (_, Task::Regression) => (table_regressor(parse(TABLE_CLASSIFIER)), "the default table regressor"),
    }
}

/// The table classifier as a regressor: a linear last layer and the squared error on
/// standardised targets.
fn table_regressor(mut spec: Spec) -> Spec {
    spec.task = Some(Task::Regression);
    spec.compile.loss = LossKind::Mse;
    if let Some(LayerSpec::Dense { activation, .. }) = spec.layers.last_mut() {
        *activation = Activation::Linear;
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_with_its_task() {
        for (format, task) in [("csv", Task::Classification), ("csv", Task::Regression), ("idx", Task::Classification)]
        {
            let (spec, _) = default_spec(format, task);
            assert_eq!(spec.task, Some(task));
            assert!(!spec.is_resolved());
        }
        let (regressor, _) = default_spec("csv", Task::Regression);
        assert_eq!(regressor.compile.loss, LossKind::Mse);
        let last = regressor.layers.last().unwrap();
        assert_eq!(last, &LayerSpec::Dense { units: lathe_formats::spec::AUTO_UNITS, activation: Activation::Linear });
    }
}
