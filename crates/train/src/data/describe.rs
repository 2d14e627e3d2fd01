//! Per-column descriptions of a CSV table: type, missing cells, range and mean.

use std::path::Path;

use serde::Serialize;

use crate::error::{data_err, TrainError};

pub use lathe_formats::columns::MISSING_CELLS;

/// What one column of a table holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSummary {
    /// Column name from the header.
    pub name: String,
    /// `numeric` when every present cell is a number, else `categorical`.
    pub kind: &'static str,
    /// Missing cells ([`MISSING_CELLS`]).
    pub missing: u64,
    /// Smallest value (numeric columns with a value).
    pub min: Option<f64>,
    /// Largest value (numeric columns with a value).
    pub max: Option<f64>,
    /// Mean of the present values (numeric columns with a value).
    pub mean: Option<f64>,
    /// Distinct present values (categorical columns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distinct: Option<u64>,
}

/// Running figures of one column.
#[derive(Default)]
struct Column {
    missing: u64,
    numbers: u64,
    sum: f64,
    min: f64,
    max: f64,
    text: std::collections::BTreeSet<String>,
}

impl Column {
    fn add(&mut self, cell: &str) {
        if MISSING_CELLS.contains(&cell) {
            self.missing += 1;
            return;
        }
        self.text.insert(cell.to_string());
        if let Some(x) = cell.parse::<f64>().ok().filter(|x| x.is_finite()) {
            if self.numbers == 0 || x < self.min {
                self.min = x;
            }
            if self.numbers == 0 || x > self.max {
                self.max = x;
            }
            self.numbers += 1;
            self.sum += x;
        }
    }

    fn summary(self, name: &str) -> ColumnSummary {
        let present = self.text.len() as u64;
        let numeric = self.numbers > 0 && self.text.iter().all(|c| c.parse::<f64>().is_ok_and(f64::is_finite));
        let (min, max, mean) = if numeric {
            (Some(self.min), Some(self.max), Some(self.sum / self.numbers as f64))
        } else {
            (None, None, None)
        };
        ColumnSummary {
            name: name.to_string(),
            kind: if numeric || present == 0 { "numeric" } else { "categorical" },
            missing: self.missing,
            min,
            max,
            mean,
            distinct: (!numeric && present > 0).then_some(present),
        }
    }
}

/// Describes every column of a CSV file with a header.
pub fn describe_csv(path: &Path) -> Result<Vec<ColumnSummary>, TrainError> {
    let file = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| data_err(format!("{file}: cannot read: {e}")))?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| data_err(format!("{file}: cannot read the header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut columns: Vec<Column> = header.iter().map(|_| Column::default()).collect();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| data_err(format!("{file}: line {}: {e}", row + 2)))?;
        for (column, cell) in columns.iter_mut().zip(record.iter()) {
            column.add(cell);
        }
    }
    Ok(columns.into_iter().zip(&header).map(|(c, name)| c.summary(name)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_categorical_columns_with_missing_cells() {
        let f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::fs::write(f.path(), "x,colour,y\n1,red,NA\n3,,2.5\nNaN,blue,0.5\n2,red,1\n").unwrap();
        let c = describe_csv(f.path()).unwrap();
        assert_eq!(
            (c[0].kind, c[0].missing, c[0].min, c[0].max, c[0].mean),
            ("numeric", 1, Some(1.0), Some(3.0), Some(2.0))
        );
        assert_eq!((c[1].kind, c[1].missing, c[1].distinct, c[1].mean), ("categorical", 1, Some(2), None));
        assert_eq!((c[2].missing, c[2].mean), (1, Some(4.0 / 3.0)));
    }
}
