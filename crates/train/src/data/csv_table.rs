//! CSV tables with a header: numeric feature columns and one label column.

use std::path::Path;

use super::Samples;
use crate::error::{data_err, TrainError};

/// Opens a CSV file with a header; returns its display name, the reader and the header.
fn open(path: &Path) -> Result<(String, csv::Reader<std::fs::File>, Vec<String>), TrainError> {
    let file = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| data_err(format!("{file}: cannot read: {e}")))?;
    let header = reader
        .headers()
        .map_err(|e| data_err(format!("{file}: cannot read the header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    Ok((file, reader, header))
}

/// Parses a numeric cell, naming the file, line and column when it is not a finite number.
fn number(file: &str, line: usize, column: &str, cell: &str) -> Result<f32, TrainError> {
    cell.parse()
        .ok()
        .filter(|v: &f32| v.is_finite())
        .ok_or_else(|| data_err(format!("{file}: line {line}: column {column:?}: expected a number, got {cell:?}")))
}

/// Reads a CSV file; returns the feature column names, the label column names and the
/// samples. The label columns are `label_columns`, else a column named `label`, else the
/// last column.
pub fn read_csv(path: &Path, label_columns: &[String]) -> Result<(Vec<String>, Vec<String>, Samples), TrainError> {
    let (file, mut reader, header) = open(path)?;
    let label_idx = label_positions(&file, &header, label_columns)?;
    if header.len() <= label_idx.len() {
        return Err(data_err(format!("{file}: expected a header with at least one feature column and a label column")));
    }
    let features: Vec<String> =
        header.iter().enumerate().filter(|(i, _)| !label_idx.contains(i)).map(|(_, h)| h.clone()).collect();
    let mut samples = Samples { label_width: label_idx.len(), ..Samples::default() };
    let mut labels = vec![String::new(); label_idx.len()];
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| data_err(format!("{file}: line {line}: {e}")))?;
        if record.len() != header.len() {
            return Err(data_err(format!(
                "{file}: line {line}: expected {} fields, got {}",
                header.len(),
                record.len()
            )));
        }
        for (i, cell) in record.iter().enumerate() {
            if let Some(j) = label_idx.iter().position(|&l| l == i) {
                if cell.is_empty() {
                    return Err(data_err(format!("{file}: line {line}: the label column {:?} is empty", header[i])));
                }
                labels[j] = cell.to_string();
            } else {
                samples.x.push(number(&file, line, &header[i], cell)?);
            }
        }
        samples.labels.extend_from_slice(&labels);
    }
    if samples.is_empty() {
        return Err(data_err(format!("{file}: no data rows after the header")));
    }
    let label_names = label_idx.iter().map(|&i| header[i].clone()).collect();
    Ok((features, label_names, samples))
}

/// Positions of the label columns: the named ones (each once), else `label`, else the last.
fn label_positions(file: &str, header: &[String], names: &[String]) -> Result<Vec<usize>, TrainError> {
    if header.len() < 2 {
        return Err(data_err(format!("{file}: expected a header with at least one feature column and a label column")));
    }
    if names.is_empty() {
        return Ok(vec![header.iter().position(|h| h == "label").unwrap_or(header.len() - 1)]);
    }
    let mut positions = Vec::with_capacity(names.len());
    for name in names {
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| data_err(format!("{file}: no column named {name:?}; columns are {header:?}")))?;
        if positions.contains(&i) {
            return Err(data_err(format!("{file}: label column {name:?} is named twice")));
        }
        positions.push(i);
    }
    Ok(positions)
}

/// Reads the named columns of a CSV file (in the given order) as raw samples; other columns
/// (a label, an id) are ignored.
pub fn read_csv_columns(path: &Path, columns: &[String]) -> Result<Vec<f32>, TrainError> {
    let (file, mut reader, header) = open(path)?;
    let idx = columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| data_err(format!("{file}: missing feature column {c:?}; the model needs {columns:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = record.map_err(|e| data_err(format!("{file}: line {line}: {e}")))?;
        for (&i, name) in idx.iter().zip(columns) {
            let cell = record.get(i).unwrap_or("");
            out.push(number(&file, line, name, cell)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn reads_features_and_string_labels() {
        let f = write("a,species,b\n1.5,setosa,2\n3,virginica,-4e1\n");
        let (names, labels, s) = read_csv(f.path(), &["species".to_string()]).unwrap();
        assert_eq!((names, labels), (vec!["a".to_string(), "b".to_string()], vec!["species".to_string()]));
        assert_eq!(s.x, vec![1.5, 2.0, 3.0, -40.0]);
        assert_eq!(s.labels, vec!["setosa", "virginica"]);
    }

    #[test]
    fn several_label_columns_in_the_order_named() {
        let f = write("y2,a,y1\n1,2,3\n4,5,6\n");
        let (names, labels, s) = read_csv(f.path(), &["y1".to_string(), "y2".to_string()]).unwrap();
        assert_eq!((names, labels), (vec!["a".to_string()], vec!["y1".to_string(), "y2".to_string()]));
        assert_eq!(
            (s.len(), s.labels.clone(), s.x),
            (2, ["3", "1", "6", "4"].iter().map(|v| v.to_string()).collect(), vec![2.0, 5.0])
        );
        let e = read_csv(f.path(), &["y1".to_string(), "y1".to_string()]).unwrap_err().to_string();
        assert!(e.ends_with("label column \"y1\" is named twice"), "{e}");
    }

    #[test]
    fn non_numeric_feature_names_line_and_column() {
        let f = write("x1,x2,label\n1,2,a\n1,oops,b\n");
        let e = read_csv(f.path(), &[]).unwrap_err().to_string();
        assert!(e.ends_with("line 3: column \"x2\": expected a number, got \"oops\""), "{e}");
    }
}
