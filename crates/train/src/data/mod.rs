//! Data sets: MNIST-style IDX folders and CSV tables, decoded to raw f32 samples with string
//! labels, then encoded against a list of class names.

mod csv_table;
mod describe;
mod idx;
mod inputs;
mod task;

use std::path::Path;

use lathe_sequential::Rng;
use sha2::{Digest, Sha256};

pub use csv_table::{read_csv, read_csv_cells, ColumnKind, CsvTable, RawColumn};
pub use describe::{describe_csv, ColumnSummary, MISSING_CELLS};
pub use idx::{parse_idx, read_idx, read_maybe_gz};
pub use inputs::{read_cells, read_image, read_inputs};
pub use task::{choose_task, infer_task, parse_targets, TaskChoice};

use crate::error::{data_err, TrainError};

/// Labelled samples: `x` holds `n · features` raw values, `labels` the `n · label_width`
/// cells of the label columns as written (a class name, or a regression target's number).
#[derive(Debug, Clone, Default)]
pub struct Samples {
    /// Raw feature values, row-major.
    pub x: Vec<f32>,
    /// Label cells, row-major.
    pub labels: Vec<String>,
    /// Label columns per sample (0 counts as 1).
    pub label_width: usize,
}

impl Samples {
    /// Feature values and one label column per sample.
    pub fn new(x: Vec<f32>, labels: Vec<String>) -> Samples {
        Samples { x, labels, label_width: 1 }
    }

    /// Label columns per sample.
    pub fn width(&self) -> usize {
        self.label_width.max(1)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len() / self.width()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `rows` (in that order).
    pub fn pick(&self, rows: &[usize], features: usize) -> Samples {
        let w = self.width();
        Samples {
            x: rows.iter().flat_map(|&i| self.x[i * features..(i + 1) * features].iter().copied()).collect(),
            labels: rows.iter().flat_map(|&i| self.labels[i * w..(i + 1) * w].iter().cloned()).collect(),
            label_width: w,
        }
    }

    /// Splits off `fraction` of the samples, chosen by a seeded shuffle, as a second set.
    pub fn split_random(self, fraction: f64, seed: u64, features: usize) -> (Samples, Samples) {
        let n = self.len();
        let held = ((n as f64) * fraction).round() as usize;
        let mut order: Vec<usize> = (0..n).collect();
        Rng::derived(seed, 0x7e57, 0).shuffle(&mut order);
        let (test_idx, train_idx) = order.split_at(held);
        let pick = |idx: &[usize]| {
            let mut idx = idx.to_vec();
            idx.sort_unstable();
            self.pick(&idx, features)
        };
        (pick(train_idx), pick(test_idx))
    }
}

/// A decoded data set: a training split and, when the source has one, a test split.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `idx` or `csv`.
    pub format: &'static str,
    /// Shape of one sample (`[28, 28]` for MNIST, `[features]` for tables).
    pub sample_shape: Vec<usize>,
    /// Column names of tabular features (empty for images).
    pub feature_names: Vec<String>,
    /// Label columns of a table (one for classes, one or more regression targets); empty
    /// for images.
    pub label_names: Vec<String>,
    /// The raw feature columns of a table (empty for images): numbers or categories, whose
    /// samples hold the number, the category's index or NaN for a missing cell.
    pub columns: Vec<RawColumn>,
    /// The error of the first missing feature cell, when there is one.
    pub missing_cell: Option<String>,
    /// Training samples.
    pub train: Samples,
    /// Test samples, if the source provides them.
    pub test: Option<Samples>,
}

/// Options for reading a data set.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// CSV label columns (several for multi-target regression); default `label`, else the
    /// last column.
    pub label_columns: Vec<String>,
}

impl Dataset {
    /// The label column names, `["label"]` when the data names none (IDX files).
    pub fn label_columns_or_default(&self) -> Vec<String> {
        if self.label_names.is_empty() {
            vec!["label".to_string()]
        } else {
            self.label_names.clone()
        }
    }

    /// Whether a table has text columns (then its features are encoded before training).
    pub fn has_categories(&self) -> bool {
        self.columns.iter().any(|c| matches!(c.kind, ColumnKind::Categorical { .. }))
    }

    /// Raw values per sample (before any encoding of a table's columns).
    pub fn features(&self) -> usize {
        self.sample_shape.iter().product()
    }

    /// Reads a folder of IDX files or a CSV file.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset, TrainError> {
        if !path.exists() {
            return Err(data_err(format!("data path {} does not exist", path.display())));
        }
        if path.is_dir() {
            return load_idx_dir(path);
        }
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        match ext.as_str() {
            "csv" | "tsv" | "txt" => {
                let table = read_csv(path, &opts.label_columns)?;
                Ok(Dataset {
                    format: "csv",
                    sample_shape: vec![table.columns.len()],
                    feature_names: table.columns.iter().map(|c| c.name.clone()).collect(),
                    label_names: table.label_names,
                    columns: table.columns,
                    missing_cell: table.missing_cell,
                    train: table.samples,
                    test: None,
                })
            }
            _ => Err(data_err(format!(
                "{}: unsupported data file; expected a folder of IDX files or a .csv file",
                path.display()
            ))),
        }
    }

    /// sha256 over the shape, samples and labels of every split: identical data, identical print.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for d in &self.sample_shape {
            h.update((*d as u64).to_le_bytes());
        }
        // Single-label tables hash as they did before multi-target regression existed.
        for name in self.label_names.iter().filter(|_| self.label_names.len() > 1) {
            h.update(name.as_bytes());
            h.update([0]);
        }
        for column in &self.columns {
            if let ColumnKind::Categorical { values } = &column.kind {
                values.iter().for_each(|v| h.update([v.as_bytes(), &[0]].concat()));
            }
        }
        for split in std::iter::once(&self.train).chain(self.test.as_ref()) {
            h.update((split.len() as u64).to_le_bytes());
            for v in &split.x {
                h.update(v.to_le_bytes());
            }
            for l in &split.labels {
                h.update(l.as_bytes());
                h.update([0]);
            }
        }
        hex::encode(h.finalize())
    }
}

/// The data inside an uploaded dataset folder: its `data.csv` when it has one, else the
/// folder itself (IDX files).
pub fn dataset_path(dir: &Path) -> std::path::PathBuf {
    let csv = dir.join("data.csv");
    if csv.is_file() {
        csv
    } else {
        dir.to_path_buf()
    }
}

/// Parses a comma-separated list of column names (`a,b`), as `--label-column` and the HTTP
/// `label_column` fields take it.
///
/// # Errors
/// A message when a name is empty (`a,,b`, a trailing comma).
pub fn parse_column_list(text: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = text.split(',').map(|s| s.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        return Err(format!("expected column names separated by commas, got {text:?}"));
    }
    Ok(names)
}

/// Class names found in `labels`, sorted numerically when all are integers, else lexically.
pub fn class_names_of(labels: &[String]) -> Vec<String> {
    let mut names: Vec<String> = labels.to_vec();
    names.sort_unstable();
    names.dedup();
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().expect("checked"));
    }
    names
}

/// Maps labels to class indices; a label outside `classes` is an error naming it.
pub fn encode_labels(labels: &[String], classes: &[String]) -> Result<Vec<u32>, TrainError> {
    let index: std::collections::HashMap<&str, u32> =
        classes.iter().enumerate().map(|(i, c)| (c.as_str(), i as u32)).collect();
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            index.get(l.as_str()).copied().ok_or_else(|| {
                data_err(format!("sample {i}: label {l:?} is not one of the model's classes {classes:?}"))
            })
        })
        .collect()
}

fn find_file(dir: &Path, stem: &str) -> Option<std::path::PathBuf> {
    [stem.to_string(), format!("{stem}.gz")].into_iter().map(|n| dir.join(n)).find(|p| p.is_file())
}

fn load_idx_pair(dir: &Path, prefix: &str) -> Result<Option<(Vec<usize>, Samples)>, TrainError> {
    let images = find_file(dir, &format!("{prefix}-images-idx3-ubyte"));
    let labels = find_file(dir, &format!("{prefix}-labels-idx1-ubyte"));
    let (images, labels) = match (images, labels) {
        (None, None) => return Ok(None),
        (Some(i), Some(l)) => (i, l),
        (Some(_), None) => {
            return Err(data_err(format!("{}: {prefix}-labels-idx1-ubyte[.gz] is missing", dir.display())))
        }
        (None, Some(_)) => {
            return Err(data_err(format!("{}: {prefix}-images-idx3-ubyte[.gz] is missing", dir.display())))
        }
    };
    let img = read_idx(&images, 3)?;
    let lab = read_idx(&labels, 1)?;
    if img.dims[0] != lab.dims[0] {
        return Err(data_err(format!(
            "{}: {} images but {} labels in {}",
            dir.display(),
            img.dims[0],
            lab.dims[0],
            labels.display()
        )));
    }
    let samples =
        Samples::new(img.data.iter().map(|&b| b as f32).collect(), lab.data.iter().map(|l| l.to_string()).collect());
    Ok(Some((img.dims[1..].to_vec(), samples)))
}

fn load_idx_dir(dir: &Path) -> Result<Dataset, TrainError> {
    let (shape, train) = load_idx_pair(dir, "train")?.ok_or_else(|| {
        data_err(format!(
            "{}: no IDX data set here; expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] (and \
                t10k-* for the test split)",
            dir.display()
        ))
    })?;
    let test = match load_idx_pair(dir, "t10k")? {
        Some((test_shape, _)) if test_shape != shape => {
            return Err(data_err(format!(
                "{}: test images are {test_shape:?}, training images {shape:?}",
                dir.display()
            )))
        }
        Some((_, test)) => Some(test),
        None => None,
    };
    Ok(Dataset {
        format: "idx",
        sample_shape: shape,
        feature_names: Vec::new(),
        label_names: Vec::new(),
        columns: Vec::new(),
        missing_cell: None,
        train,
        test,
    })
}
