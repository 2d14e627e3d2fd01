//! Turns a decoded data set into what the fit loop eats: the task and the spec's `auto`
//! sizes decided, class indices or standardised targets, validation and test splits, and
//! preprocessed values with the statistics stored for prediction.

use lathe_formats::spec::{Activation, LayerSpec, LossKind, MissingPolicy, Scaling, Task};
use lathe_formats::statistics::OutputStatistics;
use lathe_formats::{encoded_width, ColumnEncoding, Preprocessing, Spec, SpecError, TargetScaling, TrainingStatistics};

use crate::columns::{encode_samples, fit_columns};
use crate::data::{choose_task, class_names_of, encode_labels, parse_targets, ColumnKind, Dataset, RawColumn, Samples};
use crate::error::{data_err, TrainError};
use crate::metrics::Truths;

/// Preprocessed splits ready for training.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The spec with the task, targets and every `auto` size filled in from the data.
    pub spec: Spec,
    /// The task, and why when the data decided it (`None` when the spec or caller did).
    pub task: Task,
    /// Why the data decided the task, when it did.
    pub task_reason: Option<String>,
    /// Class names, indexed by output unit (classifiers).
    pub class_names: Vec<String>,
    /// Target columns and their standardisation, in output order (regressors).
    pub targets: Vec<TargetScaling>,
    /// How a table's raw columns became the features (empty: the raw numbers are the features).
    pub columns: Vec<ColumnEncoding>,
    /// Fitted preprocessing (already applied to every split here).
    pub preprocessing: Preprocessing,
    /// Training split.
    pub train: Split,
    /// Validation split (may be empty).
    pub validation: Split,
    /// Test split the published metrics are measured on.
    pub test: Split,
    /// Fingerprint of the raw data.
    pub fingerprint: String,
    /// Statistics of the training part's features (before scaling) and outputs, which drift
    /// is measured against.
    pub statistics: TrainingStatistics,
}

impl Prepared {
    /// What the model's outputs are, for scoring them.
    pub fn truths(&self) -> Truths<'_> {
        match self.task {
            Task::Classification => Truths::Classes(&self.class_names),
            Task::Regression => Truths::Targets(&self.targets),
        }
    }
}

/// Preprocessed samples with what the model should output for them.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// `n · features` values.
    pub x: Vec<f32>,
    /// `n · width` truths: a class index per sample (width 1), or standardised targets.
    pub y: Vec<f32>,
    /// Truth values per sample.
    pub width: usize,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len() / self.width.max(1)
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// What the model outputs: classes or standardised targets.
enum Outputs {
    Classes(Vec<String>),
    Targets(Vec<TargetScaling>),
}

/// Decides the task (the spec's, else from the labels), fills in the spec's `auto` sizes,
/// checks the spec against the data, splits, fits and applies preprocessing and target
/// standardisation. When the data has no test split, `test_fraction` of it is held out
/// (seeded).
///
/// # Errors
/// [`TrainError::Spec`] when the spec does not fit the data (input size, output units, a
/// loss of the other task), [`TrainError::Data`] for labels that do not fit the task.
pub fn prepare(spec: &Spec, data: Dataset, test_fraction: f64, seed: u64) -> Result<Prepared, TrainError> {
    let raw_features = data.features();
    let fingerprint = data.fingerprint();
    let names = data.label_columns_or_default();
    let (train_raw, test_raw) = match data.test {
        Some(test) => (data.train, test),
        None if test_fraction > 0.0 => data.train.split_random(test_fraction, seed, raw_features),
        None => return Err(data_err("the data has no test split; give a test fraction above 0")),
    };
    let (task, task_reason) = choose_task(spec.task, Some(spec.compile.loss), data.format, &train_raw, &names);
    let classes = match task {
        Task::Classification => Some(class_names(&train_raw, &names)?),
        Task::Regression => None,
    };
    let (mut fit_part, mut val_part) = validation_split(spec, train_raw, raw_features)?;
    let mut test_raw = test_raw;
    let parts = [&mut fit_part, &mut val_part, &mut test_raw];
    let columns = encode_columns(spec, &data.columns, data.missing_cell.as_deref(), parts)?;
    let (features, sample_shape) = match encoded_width(&columns) {
        0 => (raw_features, data.sample_shape.clone()),
        width => (width, vec![width]),
    };
    let outputs = classes.as_ref().map_or(names.len(), |k| auto_units(spec, k.len()));
    let spec = spec.resolve(task, &data.label_names, &sample_shape, outputs)?;
    check_input(&spec, features, &sample_shape)?;
    let outputs = match classes {
        Some(classes) => {
            check_classes(&spec, &classes)?;
            Outputs::Classes(classes)
        }
        None => Outputs::Targets(fit_targets(&spec, &fit_part, &names)?),
    };
    let preprocessing = match spec.input.preprocessing.scaling {
        Scaling::None => Preprocessing::None,
        Scaling::Rescale { divisor } => Preprocessing::Rescale { divisor: divisor as f32 },
        Scaling::Standardize => Preprocessing::fit_standardize(&fit_part.x, features),
    };
    let encode = |s: Samples| -> Result<Split, TrainError> {
        let (y, width) = match &outputs {
            Outputs::Classes(classes) => {
                (encode_labels(&s.labels, classes)?.into_iter().map(|c| c as f32).collect(), 1)
            }
            Outputs::Targets(targets) => (standardized_targets(&s, &names, targets)?, targets.len()),
        };
        let mut x = s.x;
        preprocessing.apply(&mut x, features);
        Ok(Split { x, y, width })
    };
    let input_statistics = TrainingStatistics::fit(&fit_part.x, features, empty_outputs());
    let train = encode(fit_part)?;
    let validation = encode(val_part)?;
    let test = encode(test_raw).map_err(|e| data_err(format!("test split: {e}")))?;
    let (class_names, targets) = match outputs {
        Outputs::Classes(c) => (c, Vec::new()),
        Outputs::Targets(t) => (Vec::new(), t),
    };
    let statistics =
        TrainingStatistics { outputs: output_statistics(&train, &class_names, &targets), ..input_statistics };
    Ok(Prepared {
        spec,
        task,
        task_reason,
        class_names,
        targets,
        columns,
        preprocessing,
        train,
        validation,
        test,
        fingerprint,
        statistics,
    })
}

fn empty_outputs() -> OutputStatistics {
    OutputStatistics::Classes { names: Vec::new(), frequencies: Vec::new() }
}

/// Class frequencies of the training labels, or the targets' sketches in their units.
fn output_statistics(train: &Split, classes: &[String], targets: &[TargetScaling]) -> OutputStatistics {
    if targets.is_empty() {
        return TrainingStatistics::class_outputs(classes, train.y.iter().map(|&c| c as usize));
    }
    let width = targets.len();
    let values: Vec<f32> = train
        .y
        .chunks_exact(width)
        .flat_map(|row| row.iter().zip(targets).map(|(&v, t)| (v as f64 * t.std + t.mean) as f32))
        .collect();
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    TrainingStatistics::target_outputs(&names, &values)
}

/// Keras' validation split of the training samples (`fit.validation_split` of them, from the
/// end); at least one sample must stay for training.
fn validation_split(spec: &Spec, train: Samples, features: usize) -> Result<(Samples, Samples), TrainError> {
    let n = train.len();
    let n_val = ((n as f64) * spec.fit.validation_split).round() as usize;
    if n - n_val == 0 {
        return Err(data_err(format!(
            "no training samples left: {n} samples, validation_split {}",
            spec.fit.validation_split
        )));
    }
    Ok(split_tail(train, n_val, features))
}

/// For a table with text columns or imputed missing cells: fits the column encoding on the
/// training part (`parts[0]`) and encodes every part in place. Returns no encoding for other
/// data; a missing cell that is not imputed is an error naming its line and column.
fn encode_columns(
    spec: &Spec,
    raw: &[RawColumn],
    missing_cell: Option<&str>,
    parts: [&mut Samples; 3],
) -> Result<Vec<ColumnEncoding>, TrainError> {
    let impute = spec.input.preprocessing.missing == MissingPolicy::Impute;
    if let (Some(cell), false) = (missing_cell, impute) {
        return Err(data_err(cell));
    }
    let has_categories = raw.iter().any(|c| matches!(c.kind, ColumnKind::Categorical { .. }));
    if raw.is_empty() || !(impute || has_categories) {
        return Ok(Vec::new());
    }
    let columns = fit_columns(raw, &parts[0].x, &spec.input.preprocessing);
    for part in parts {
        part.x = encode_samples(raw, &columns, &part.x)?;
    }
    Ok(columns)
}

/// Class names of a single label column; at least two.
fn class_names(samples: &Samples, names: &[String]) -> Result<Vec<String>, TrainError> {
    if samples.width() > 1 {
        return Err(data_err(format!(
            "classification takes one label column, got {names:?}; several columns are regression targets \
                (task: regression)"
        )));
    }
    let classes = class_names_of(&samples.labels);
    if classes.len() < 2 {
        return Err(data_err(format!(
            "the training data has {} class(es) {classes:?}; classification needs at least 2",
            classes.len()
        )));
    }
    Ok(classes)
}

/// Units an `auto` output layer gets for `k` classes: one sigmoid unit for two classes under
/// binary cross-entropy, else one per class.
fn auto_units(spec: &Spec, k: usize) -> usize {
    let last_sigmoid = spec.layers.iter().rev().find_map(|l| match l {
        LayerSpec::Dense { activation, .. } => Some(*activation == Activation::Sigmoid),
        _ => None,
    });
    if k == 2 && spec.compile.loss == LossKind::BinaryCrossentropy && last_sigmoid == Some(true) {
        1
    } else {
        k
    }
}

fn check_input(spec: &Spec, features: usize, sample_shape: &[usize]) -> Result<(), TrainError> {
    if spec.input_len() == features {
        return Ok(());
    }
    Err(SpecError {
        path: "input.shape".into(),
        message: format!(
            "{:?} holds {} values per sample, but the data's samples are {sample_shape:?} ({features} values)",
            spec.input.shape,
            spec.input_len(),
        ),
    }
    .into())
}

/// Means and standard deviations of the targets on the training part (std 1 when constant).
fn fit_targets(spec: &Spec, fit_part: &Samples, names: &[String]) -> Result<Vec<TargetScaling>, TrainError> {
    let units = spec.output_shape()[0];
    if units != names.len() {
        return Err(output_mismatch(spec, format!("{} targets {names:?}", names.len())));
    }
    let values = parse_targets(fit_part, names)?;
    let Preprocessing::Standardize { mean, std } = Preprocessing::fit_standardize(&values, names.len()) else {
        unreachable!("fit_standardize returns standardisation statistics")
    };
    Ok(names
        .iter()
        .zip(mean.iter().zip(&std))
        .map(|(name, (&mean, &std))| TargetScaling { name: name.clone(), mean: mean as f64, std: std as f64 })
        .collect())
}

/// `(y − mean) / std` of every target cell.
pub(crate) fn standardized_targets(
    s: &Samples,
    names: &[String],
    targets: &[TargetScaling],
) -> Result<Vec<f32>, TrainError> {
    let mut values = parse_targets(s, names)?;
    for row in values.chunks_exact_mut(targets.len()) {
        for (v, t) in row.iter_mut().zip(targets) {
            *v = ((*v as f64 - t.mean) / t.std) as f32;
        }
    }
    Ok(values)
}

/// Keras' validation split: the last `n_val` samples, before any shuffling.
fn split_tail(s: Samples, n_val: usize, features: usize) -> (Samples, Samples) {
    let keep = s.len() - n_val;
    let w = s.width();
    let mut x = s.x;
    let mut labels = s.labels;
    let val = Samples { x: x.split_off(keep * features), labels: labels.split_off(keep * w), label_width: w };
    (Samples { x, labels, label_width: w }, val)
}

fn check_classes(spec: &Spec, classes: &[String]) -> Result<(), TrainError> {
    let units = spec.output_shape()[0];
    let k = classes.len();
    let binary_unit = units == 1 && k == 2 && spec.compile.loss == LossKind::BinaryCrossentropy;
    if units != k && !binary_unit {
        return Err(output_mismatch(spec, format!("{k} classes {}", preview(classes))));
    }
    Ok(())
}

fn output_mismatch(spec: &Spec, data: String) -> TrainError {
    let units = spec.output_shape()[0];
    SpecError {
        path: format!("layers[{}]", spec.layers.len() - 1),
        message: format!("the model outputs {units} values but the data has {data}"),
    }
    .into()
}

fn preview(classes: &[String]) -> String {
    if classes.len() <= 12 {
        format!("{classes:?}")
    } else {
        format!("{:?}…", &classes[..12])
    }
}
