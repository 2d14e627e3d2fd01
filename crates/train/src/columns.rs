//! Fitting the encoding of a table's raw columns on the training part (vocabularies, fill
//! values), and applying it to raw samples.

use lathe_formats::spec::{MissingPolicy, PreprocessingSpec};
use lathe_formats::{encode_rows, Cell, ColumnEncoding, Unseen};

use crate::data::{ColumnKind, RawColumn};
use crate::error::{data_err, TrainError};

/// Fits one [`ColumnEncoding`] per raw column on `x` (the training part's raw samples: numbers,
/// category indices, NaN for missing cells): vocabularies ordered by frequency (ties by name)
/// and capped at `max_categories` (the rest share `other`), and, when missing cells are
/// imputed, the mean or the most frequent category.
pub fn fit_columns(columns: &[RawColumn], x: &[f32], preprocessing: &PreprocessingSpec) -> Vec<ColumnEncoding> {
    let impute = preprocessing.missing == MissingPolicy::Impute;
    let width = columns.len();
    columns
        .iter()
        .enumerate()
        .map(|(j, column)| {
            let present: Vec<f32> = x.iter().skip(j).step_by(width).copied().filter(|v| !v.is_nan()).collect();
            match &column.kind {
                ColumnKind::Numeric => {
                    let mean = present.iter().map(|&v| v as f64).sum::<f64>() / present.len().max(1) as f64;
                    ColumnEncoding::Numeric { name: column.name.clone(), fill: impute.then_some(mean as f32) }
                }
                ColumnKind::Categorical { values } => {
                    categorical(&column.name, values, &present, preprocessing.max_categories, impute)
                }
            }
        })
        .collect()
}

fn categorical(name: &str, values: &[String], present: &[f32], max: usize, impute: bool) -> ColumnEncoding {
    let mut counts = vec![0u64; values.len()];
    present.iter().for_each(|&i| counts[i as usize] += 1);
    let mut order: Vec<usize> = (0..values.len()).filter(|&i| counts[i] > 0).collect();
    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then_with(|| values[a].cmp(&values[b])));
    let other = order.len() > max;
    if other {
        order.truncate(max - 1);
    }
    ColumnEncoding::Categorical {
        name: name.to_string(),
        categories: order.iter().map(|&i| values[i].clone()).collect(),
        other,
        fill: if impute { order.first().map(|&i| values[i].clone()) } else { None },
    }
}

/// Encodes raw samples of `raw` columns with `encoding`, matching columns by name; categories
/// outside the vocabulary (seen only in validation, test or evaluation data) become all zeros.
///
/// # Errors
/// A column of the encoding the data lacks, or a missing cell that is not imputed.
pub fn encode_samples(raw: &[RawColumn], encoding: &[ColumnEncoding], x: &[f32]) -> Result<Vec<f32>, TrainError> {
    let positions = encoding
        .iter()
        .map(|c| {
            raw.iter().position(|r| r.name == c.name()).ok_or_else(|| {
                let have: Vec<&str> = raw.iter().map(|r| r.name.as_str()).collect();
                data_err(format!("the model needs column {:?}; the data has {have:?}", c.name()))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let width = raw.len();
    let rows = x.len() / width.max(1);
    encode_rows(encoding, rows, Unseen::Zeros, |r, c| {
        let j = positions[c];
        let v = x[r * width + j];
        match &raw[j].kind {
            _ if v.is_nan() => Cell::Missing,
            ColumnKind::Numeric => Cell::Number(v),
            ColumnKind::Categorical { values } => Cell::Text(&values[v as usize]),
        }
    })
    .map_err(|e| data_err(format!("sample {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_are_capped_by_frequency_and_missing_cells_imputed() {
        let raw = vec![
            RawColumn { name: "n".into(), kind: ColumnKind::Numeric },
            RawColumn {
                name: "c".into(),
                kind: ColumnKind::Categorical { values: vec!["a".into(), "b".into(), "c".into()] },
            },
        ];
        let nan = f32::NAN;
        let x = [1.0, 2.0, 3.0, 2.0, nan, 0.0, 5.0, 1.0, 3.0, nan];
        let spec = PreprocessingSpec { missing: MissingPolicy::Impute, max_categories: 2, ..Default::default() };
        let enc = fit_columns(&raw, &x, &spec);
        assert_eq!(enc[0], ColumnEncoding::Numeric { name: "n".into(), fill: Some(3.0) });
        let want = ColumnEncoding::Categorical {
            name: "c".into(),
            categories: vec!["c".into()],
            other: true,
            fill: Some("c".into()),
        };
        assert_eq!(enc[1], want, "c twice, a and b once: c keeps its feature, the rest share other");
        let encoded = encode_samples(&raw, &enc, &x).unwrap();
        assert_eq!(&encoded[..6], &[1.0, 1.0, 0.0, 3.0, 1.0, 0.0]);
        assert_eq!(&encoded[12..], &[3.0, 1.0, 0.0], "a missing category takes the most frequent");
    }
}
