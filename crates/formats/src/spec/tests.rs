use super::*;

const MLP: &str = r#"
input:
  shape: [28, 28]
  preprocessing: {kind: rescale, divisor: 255}
layers:
  - {type: flatten}
  - {type: dense, units: 128, activation: relu}
  - {type: dropout, rate: 0.2}
  - {type: dense, units: 10, activation: softmax}
compile:
  optimizer: {type: adam, lr: 1e-3}
  loss: sparse_categorical_crossentropy
fit:
  epochs: 5
  batch_size: 32
"#;

fn error_of(yaml: &str) -> String {
    Spec::from_yaml_str(yaml).unwrap_err().to_string()
}

#[test]
fn parses_the_reference_mlp_with_defaults() {
    let s = Spec::from_yaml_str(MLP).unwrap();
    assert_eq!(s.input.shape, vec![28, 28]);
    assert_eq!(s.layers.len(), 4);
    assert_eq!(s.layers[1], LayerSpec::Dense { units: 128, activation: Activation::Relu });
    assert_eq!(s.compile.optimizer, OptimizerSpec::Adam { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-7 });
    assert_eq!(s.fit.epochs, 5);
    assert!(s.fit.shuffle);
    assert_eq!(s.output_shape(), vec![10]);
}

#[test]
fn canonical_json_parses_back_to_the_same_spec() {
    let yaml = r#"
input: {shape: [28, 28, 1], preprocessing: standardize}
layers:
  - {type: conv2d, filters: 8, kernel: 3, padding: same, activation: {type: leaky_relu, alpha: 0.2}}
  - {type: batch_norm}
  - {type: max_pool2d}
  - {type: avg_pool2d, pool: [2, 1], stride: 1}
  - {type: activation, activation: gelu}
  - {type: flatten}
  - {type: dense, units: 3, activation: sigmoid}
compile:
  optimizer: {type: adamw, weight_decay: 0.01}
  loss: binary_crossentropy
fit:
  epochs: 2
  validation_split: 0.1
  early_stopping: {monitor: val_accuracy, patience: 1}
  lr_schedule: {type: cosine}
"#;
    let s = Spec::from_yaml_str(yaml).unwrap();
    let back = Spec::from_value(&s.to_json()).unwrap();
    assert_eq!(s, back);
    assert_eq!(s.output_shape(), vec![3]);
}

#[test]
fn negative_units_name_the_path() {
    let e = error_of(&MLP.replace("units: 128", "units: -3"));
    assert_eq!(e, "layers[1].units: expected a positive integer or auto, got -3");
}

#[test]
fn unknown_layer_and_unknown_key_are_errors() {
    let e = error_of(&MLP.replace("type: dropout", "type: dropin"));
    assert!(e.starts_with("layers[2].type: unknown layer type \"dropin\""), "{e}");
    let e = error_of(&MLP.replace("rate: 0.2", "rate: 0.2, ratio: 3"));
    assert!(e.starts_with("layers[2].ratio: unknown key"), "{e}");
    let e = error_of(&MLP.replace("epochs: 5", "epoch: 5"));
    assert!(e.starts_with("fit.epoch: unknown key"), "{e}");
}

#[test]
fn impossible_shapes_are_errors() {
    let e = error_of(&MLP.replace("  - {type: flatten}\n", ""));
    assert!(e.starts_with("layers[0]: impossible shape: dense expects a flat input"), "{e}");
    let conv = MLP.replace("- {type: flatten}", "- {type: conv2d, filters: 4, kernel: 30}\n  - {type: flatten}");
    let e = error_of(&conv);
    assert!(e.starts_with("layers[0]: impossible shape"), "{e}");
}

#[test]
fn bad_values_are_errors() {
    let e = error_of(&MLP.replace("rate: 0.2", "rate: 1.5"));
    assert_eq!(e, "layers[2].rate: expected a number in [0, 1), got 1.5");
    let e = error_of(&MLP.replace("activation: relu", "activation: relux"));
    assert!(e.starts_with("layers[1].activation: unknown activation \"relux\""), "{e}");
    let e = error_of(&MLP.replace("lr: 1e-3", "lr: 0"));
    assert_eq!(e, "compile.optimizer.lr: expected a positive number, got 0");
    let e = error_of(&MLP.replace("batch_size: 32", "batch_size: many"));
    assert_eq!(e, "fit.batch_size: expected a positive integer, got \"many\"");
}

#[test]
fn early_stopping_on_validation_needs_a_split() {
    let e = error_of(&MLP.replace("epochs: 5", "epochs: 5\n  early_stopping: {monitor: val_loss}"));
    assert!(e.starts_with("fit.early_stopping.monitor:"), "{e}");
}

#[test]
fn auto_sizes_resolve_from_the_data_and_write_back_as_auto() {
    let yaml = r#"
task: regression
targets: [a, b]
input: {preprocessing: standardize}
layers:
  - {type: dense, units: 16, activation: relu}
  - {type: dense, units: auto}
compile: {optimizer: adam, loss: huber}
"#;
    let s = Spec::from_yaml_str(yaml).unwrap();
    assert!(!s.is_resolved());
    assert_eq!(s.to_json()["input"]["shape"], "auto");
    assert_eq!(s.to_json()["layers"][1]["units"], "auto");
    assert_eq!(Spec::from_value(&s.to_json()).unwrap(), s);
    let r = s.resolve(Task::Regression, &["a".into(), "b".into()], &[5], 2).unwrap();
    assert_eq!((r.input.shape.clone(), r.output_shape()), (vec![5], vec![2]));
    let e = s.resolve(Task::Classification, &[], &[5], 3).unwrap_err().to_string();
    assert_eq!(e, "compile.loss: \"huber\" does not fit classification; expected a cross-entropy, mse or mae");
}

#[test]
fn auto_units_only_on_the_last_dense_layer_and_losses_fit_the_task() {
    let e = error_of(
        "input: {shape: [3]}\nlayers: [{type: dense, units: auto}, {type: dense, units: 2}]\n\
         compile: {optimizer: adam, loss: mse}",
    );
    assert_eq!(e, "layers[0].units: auto is only allowed on the last dense layer");
    let e = error_of(
        "task: regression\ninput: {shape: [3]}\nlayers: [{type: dense, units: 1}]\n\
         compile: {optimizer: adam, loss: binary_crossentropy}",
    );
    assert_eq!(e, "compile.loss: \"binary_crossentropy\" does not fit regression; expected mse, mae or huber");
    let e = error_of(
        "task: ranking\ninput: {shape: [3]}\nlayers: [{type: dense, units: 1}]\ncompile: {optimizer: adam, loss: mse}",
    );
    assert_eq!(e, "task: expected classification or regression, got \"ranking\"");
}
