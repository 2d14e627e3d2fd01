//! Turns a decoded data set into what the fit loop eats: class indices, validation and test
//! splits, and preprocessed values with the statistics stored for prediction.

use lathe_formats::spec::{LossKind, PreprocessingSpec};
use lathe_formats::{Preprocessing, Spec, SpecError};

use crate::data::{class_names_of, encode_labels, Dataset, Samples};
use crate::error::{data_err, TrainError};

/// Preprocessed splits ready for training.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Class names, indexed by output unit.
    pub class_names: Vec<String>,
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
}

/// Preprocessed samples with class indices.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// `n · features` values.
    pub x: Vec<f32>,
    /// Class index per sample.
    pub y: Vec<u32>,
}

impl Split {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// Whether the split is empty.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
}

/// Checks the spec against the data, splits, fits and applies preprocessing. When the data has
/// no test split, `test_fraction` of it is held out (seeded).
pub fn prepare(spec: &Spec, data: Dataset, test_fraction: f64, seed: u64) -> Result<Prepared, TrainError> {
    let features = data.features();
    if spec.input_len() != features {
        return Err(SpecError {
            path: "input.shape".into(),
            message: format!(
                "{:?} holds {} values per sample, but the data's samples are {:?} ({features} values)",
                spec.input.shape,
                spec.input_len(),
                data.sample_shape
            ),
        }
        .into());
    }
    let fingerprint = data.fingerprint();
    let (train_raw, test_raw) = match data.test {
        Some(test) => (data.train, test),
        None if test_fraction > 0.0 => data.train.split_random(test_fraction, seed, features),
        None => return Err(data_err("the data has no test split; give a test fraction above 0")),
    };
    let class_names = class_names_of(&train_raw.labels);
    check_output(spec, &class_names)?;
    let n = train_raw.len();
    let n_val = ((n as f64) * spec.fit.validation_split).round() as usize;
    if n - n_val == 0 {
        return Err(data_err(format!(
            "no training samples left: {n} samples, validation_split {}",
            spec.fit.validation_split
        )));
    }
    let (fit_part, val_part) = split_tail(train_raw, n_val, features);
    let preprocessing = match spec.input.preprocessing {
        PreprocessingSpec::None => Preprocessing::None,
        PreprocessingSpec::Rescale { divisor } => Preprocessing::Rescale { divisor: divisor as f32 },
        PreprocessingSpec::Standardize => Preprocessing::fit_standardize(&fit_part.x, features),
    };
    let encode = |s: Samples| -> Result<Split, TrainError> {
        let y = encode_labels(&s.labels, &class_names)?;
        let mut x = s.x;
        preprocessing.apply(&mut x, features);
        Ok(Split { x, y })
    };
    Ok(Prepared {
        train: encode(fit_part)?,
        validation: encode(val_part)?,
        test: encode(test_raw).map_err(|e| data_err(format!("test split: {e}")))?,
        class_names,
        preprocessing,
        fingerprint,
    })
}

/// Keras' validation split: the last `n_val` samples, before any shuffling.
fn split_tail(s: Samples, n_val: usize, features: usize) -> (Samples, Samples) {
    let keep = s.len() - n_val;
    let mut x = s.x;
    let mut labels = s.labels;
    let val = Samples { x: x.split_off(keep * features), labels: labels.split_off(keep) };
    (Samples { x, labels }, val)
}

fn check_output(spec: &Spec, classes: &[String]) -> Result<(), TrainError> {
    let units = spec.output_shape()[0];
    let k = classes.len();
    let binary_unit = units == 1 && k == 2 && spec.compile.loss == LossKind::BinaryCrossentropy;
    if k < 2 {
        return Err(data_err(format!(
            "the training data has {k} class(es) {classes:?}; classification needs at least 2"
        )));
    }
    if units != k && !binary_unit {
        return Err(SpecError {
            path: format!("layers[{}]", spec.layers.len() - 1),
            message: format!("the model outputs {units} values but the data has {k} classes {}", preview(classes)),
        }
        .into());
    }
    Ok(())
}

fn preview(classes: &[String]) -> String {
    if classes.len() <= 12 {
        format!("{classes:?}")
    } else {
        format!("{:?}…", &classes[..12])
    }
}
