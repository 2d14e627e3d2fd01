//! CSV tables with a header: numeric feature columns and one label column.

use std::path::Path;

use lathe_formats::columns::MISSING_CELLS;

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

/// What a raw feature column of a table holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnKind {
    /// Numbers (a missing cell is NaN in the samples).
    Numeric,
    /// Texts: the samples hold an index into `values` (sorted), NaN for a missing cell.
    Categorical {
        /// Every distinct present text of the column, sorted.
        values: Vec<String>,
    },
}

/// A raw feature column of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawColumn {
    /// Header name.
    pub name: String,
    /// What it holds.
    pub kind: ColumnKind,
}

/// A CSV table read for training or evaluation.
#[derive(Debug, Clone)]
pub struct CsvTable {
    /// Feature columns, in file order.
    pub columns: Vec<RawColumn>,
    /// Label column names, in the order asked for.
    pub label_names: Vec<String>,
    /// Samples: numbers, category indices or NaN per feature column; label cells as written.
    pub samples: Samples,
    /// The error of the first missing feature cell, for when missing values are not imputed.
    pub missing_cell: Option<String>,
}

/// The cells of a CSV file.
struct Rows {
    /// The file's name for messages.
    file: String,
    /// Column names.
    header: Vec<String>,
    /// Every row, as wide as the header.
    rows: Vec<Vec<String>>,
}

/// Reads every row of a CSV file with a header.
fn read_rows(path: &Path) -> Result<Rows, TrainError> {
    let (file, mut reader, header) = open(path)?;
    let mut rows = Vec::new();
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
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(Rows { file, header, rows })
}

/// Reads a CSV file for training: numeric and text feature columns (missing cells allowed
/// here, see [`CsvTable::missing_cell`]) and the label columns `label_columns`, else a column
/// named `label`, else the last column.
pub fn read_csv(path: &Path, label_columns: &[String]) -> Result<CsvTable, TrainError> {
    let Rows { file, header, rows } = read_rows(path)?;
    let label_idx = label_positions(&file, &header, label_columns)?;
    if header.len() <= label_idx.len() {
        return Err(data_err(format!("{file}: expected a header with at least one feature column and a label column")));
    }
    if rows.is_empty() {
        return Err(data_err(format!("{file}: no data rows after the header")));
    }
    let feature_idx: Vec<usize> = (0..header.len()).filter(|i| !label_idx.contains(i)).collect();
    let columns = feature_idx
        .iter()
        .map(|&i| column_kind(&file, &header[i], &rows, i).map(|kind| RawColumn { name: header[i].clone(), kind }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut samples = Samples { label_width: label_idx.len(), ..Samples::default() };
    let mut missing_cell = None;
    for (row, cells) in rows.iter().enumerate() {
        let line = row + 2;
        for &i in &label_idx {
            if cells[i].is_empty() {
                return Err(data_err(format!("{file}: line {line}: the label column {:?} is empty", header[i])));
            }
            samples.labels.push(cells[i].clone());
        }
        for (&i, column) in feature_idx.iter().zip(&columns) {
            let cell = cells[i].as_str();
            let value = raw_value(&column.kind, cell);
            if value.is_nan() && missing_cell.is_none() {
                missing_cell = Some(missing_message(&file, line, &column.name, cell));
            }
            samples.x.push(value);
        }
    }
    let label_names = label_idx.iter().map(|&i| header[i].clone()).collect();
    Ok(CsvTable { columns, label_names, samples, missing_cell })
}

/// A feature cell as the samples hold it: the number, the category's index, or NaN.
fn raw_value(kind: &ColumnKind, cell: &str) -> f32 {
    if MISSING_CELLS.contains(&cell) {
        return f32::NAN;
    }
    match kind {
        ColumnKind::Numeric => cell.parse().unwrap_or(f32::NAN),
        ColumnKind::Categorical { values } => {
            values.binary_search_by(|v| v.as_str().cmp(cell)).map_or(f32::NAN, |i| i as f32)
        }
    }
}

fn missing_message(file: &str, line: usize, column: &str, cell: &str) -> String {
    format!(
        "{file}: line {line}: column {column:?}: expected a number, got {cell:?} (a missing value; \
            input.preprocessing.missing: impute fills it)"
    )
}

/// Numeric when every present cell is a finite number; categorical when most of them are texts;
/// otherwise (stray texts among numbers) an error naming the first text.
fn column_kind(file: &str, name: &str, rows: &[Vec<String>], i: usize) -> Result<ColumnKind, TrainError> {
    let present: Vec<(usize, &str)> = rows
        .iter()
        .enumerate()
        .map(|(r, cells)| (r, cells[i].as_str()))
        .filter(|(_, c)| !MISSING_CELLS.contains(c))
        .collect();
    let is_number = |c: &str| c.parse::<f32>().is_ok_and(f32::is_finite);
    let texts = present.iter().filter(|(_, c)| !is_number(c)).count();
    if texts == 0 {
        return Ok(ColumnKind::Numeric);
    }
    if 2 * texts > present.len() {
        let mut values: Vec<String> = present.iter().map(|(_, c)| c.to_string()).collect();
        values.sort_unstable();
        values.dedup();
        return Ok(ColumnKind::Categorical { values });
    }
    let (row, cell) = present.iter().find(|(_, c)| !is_number(c)).expect("texts > 0");
    Err(data_err(format!("{file}: line {}: column {name:?}: expected a number, got {cell:?}", row + 2)))
}

/// Reads the named columns of a CSV file (in the given order) as cells, one row each; other
/// columns (a label, an id) are ignored.
pub fn read_csv_cells(path: &Path, columns: &[String]) -> Result<Vec<Vec<String>>, TrainError> {
    let Rows { file, header, rows } = read_rows(path)?;
    let idx = feature_positions(&file, &header, columns)?;
    Ok(rows.into_iter().map(|cells| idx.iter().map(|&i| cells[i].clone()).collect()).collect())
}

/// Positions of the model's feature `columns` in `header`.
fn feature_positions(file: &str, header: &[String], columns: &[String]) -> Result<Vec<usize>, TrainError> {
    columns
        .iter()
        .map(|c| {
            header
                .iter()
                .position(|h| h == c)
                .ok_or_else(|| data_err(format!("{file}: missing feature column {c:?}; the model needs {columns:?}")))
        })
        .collect()
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
    let idx = feature_positions(&file, &header, columns)?;
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
        let t = read_csv(f.path(), &["species".to_string()]).unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!((names, t.label_names), (vec!["a", "b"], vec!["species".to_string()]));
        let s = t.samples;
        assert_eq!(s.x, vec![1.5, 2.0, 3.0, -40.0]);
        assert_eq!(s.labels, vec!["setosa", "virginica"]);
    }

    #[test]
    fn several_label_columns_in_the_order_named() {
        let f = write("y2,a,y1\n1,2,3\n4,5,6\n");
        let t = read_csv(f.path(), &["y1".to_string(), "y2".to_string()]).unwrap();
        assert_eq!((t.columns[0].name.as_str(), t.label_names), ("a", vec!["y1".to_string(), "y2".to_string()]));
        let s = t.samples;
        assert_eq!(
            (s.len(), s.labels.clone(), s.x),
            (2, ["3", "1", "6", "4"].iter().map(|v| v.to_string()).collect(), vec![2.0, 5.0])
        );
        let e = read_csv(f.path(), &["y1".to_string(), "y1".to_string()]).unwrap_err().to_string();
        assert!(e.ends_with("label column \"y1\" is named twice"), "{e}");
    }

    #[test]
    fn text_columns_are_categories_and_missing_cells_are_nan() {
        let f = write("size,colour,label\n1,red,a\nNA,blue,b\n3,,a\n");
        let t = read_csv(f.path(), &[]).unwrap();
        let values = vec!["blue".to_string(), "red".to_string()];
        assert_eq!(t.columns[1].kind, ColumnKind::Categorical { values });
        let x = &t.samples.x;
        assert_eq!((x[0], x[1], x[3], x[4]), (1.0, 1.0, 0.0, 3.0));
        assert!(x[2].is_nan() && x[5].is_nan());
        let e = t.missing_cell.unwrap();
        assert!(e.contains("line 3: column \"size\": expected a number, got \"NA\" (a missing value"), "{e}");
    }

    #[test]
    fn non_numeric_feature_names_line_and_column() {
        let f = write("x1,x2,label\n1,2,a\n1,oops,b\n");
        let e = read_csv(f.path(), &[]).unwrap_err().to_string();
        assert!(e.ends_with("line 3: column \"x2\": expected a number, got \"oops\""), "{e}");
    }
}
