//! The encoding of a table's raw columns into the features a network sees, fitted on the
//! training split and stored in the version: numbers as they are (missing cells imputed with
//! the training mean), categories one-hot over the training vocabulary (missing cells imputed
//! with the most frequent category; an `other` slot when the vocabulary was capped).

use serde::{Deserialize, Serialize};

/// Cell texts that mean "no value" in tables and in string inputs: empty, `NA` and `NaN`.
pub const MISSING_CELLS: [&str; 3] = ["", "NA", "NaN"];

/// One raw cell of a table row. Texts are compared without surrounding whitespace, as table
/// cells are read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// A number (NaN counts as missing).
    Number(f32),
    /// A text (a category; [`MISSING_CELLS`] count as missing).
    Text(&'a str),
    /// No value.
    Missing,
}

impl Cell<'_> {
    fn is_missing(&self) -> bool {
        match self {
            Cell::Number(x) => x.is_nan(),
            Cell::Text(t) => MISSING_CELLS.contains(&t.trim()),
            Cell::Missing => true,
        }
    }
}

/// What to do with a category that is not in the vocabulary (and no `other` slot takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unseen {
    /// Refuse the row, naming the column and the category (prediction requests).
    Refuse,
    /// Encode it as all zeros (evaluation and the validation and test splits).
    Zeros,
}

/// How one raw column becomes features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnEncoding {
    /// One feature: the number.
    Numeric {
        /// Column name (the request's input name).
        name: String,
        /// Value of a missing cell (the training split's mean) when missing values are imputed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<f32>,
    },
    /// One feature per category (one-hot), plus one for `other` when the vocabulary was capped.
    Categorical {
        /// Column name (the request's input name).
        name: String,
        /// The vocabulary, most frequent first.
        categories: Vec<String>,
        /// Whether a last slot takes every category outside `categories`.
        other: bool,
        /// Category of a missing cell (the most frequent) when missing values are imputed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fill: Option<String>,
    },
}

impl ColumnEncoding {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            ColumnEncoding::Numeric { name, .. } | ColumnEncoding::Categorical { name, .. } => name,
        }
    }

    /// The names of the features the column encodes to: its name for a number, `name=category`
    /// per one-hot slot (`name=(other)` for the last slot of a capped vocabulary).
    pub fn feature_names(&self) -> Vec<String> {
        match self {
            ColumnEncoding::Numeric { name, .. } => vec![name.clone()],
            ColumnEncoding::Categorical { name, categories, other, .. } => categories
                .iter()
                .map(|c| format!("{name}={c}"))
                .chain(other.then(|| format!("{name}=(other)")))
                .collect(),
        }
    }

    /// Features this column becomes.
    pub fn width(&self) -> usize {
        match self {
            ColumnEncoding::Numeric { .. } => 1,
            ColumnEncoding::Categorical { categories, other, .. } => categories.len() + *other as usize,
        }
    }

    /// Writes the features of `cell` into `out` (`width()` values).
    ///
    /// # Errors
    /// A message naming the column: a missing cell without imputation, a text in a numeric
    /// column, or an unseen category under [`Unseen::Refuse`].
    pub fn encode(&self, cell: Cell, unseen: Unseen, out: &mut [f32]) -> Result<(), String> {
        match self {
            ColumnEncoding::Numeric { name, fill } => {
                out[0] = match (cell, fill) {
                    (c, Some(f)) if c.is_missing() => *f,
                    (c, None) if c.is_missing() => return Err(missing(name)),
                    (Cell::Number(x), _) => x,
                    (Cell::Text(t), _) => t
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .ok_or_else(|| format!("input {name:?}: expected a number, got {t:?}"))?,
                    (Cell::Missing, _) => unreachable!("missing cells are handled above"),
                };
                Ok(())
            }
            ColumnEncoding::Categorical { name, categories, other, fill } => {
                out.fill(0.0);
                let number_text;
                let text = match (cell, fill) {
                    (c, Some(f)) if c.is_missing() => f.as_str(),
                    (c, None) if c.is_missing() => return Err(missing(name)),
                    (Cell::Text(t), _) => t.trim(),
                    (Cell::Number(x), _) => {
                        number_text = x.to_string();
                        number_text.as_str()
                    }
                    (Cell::Missing, _) => unreachable!("missing cells are handled above"),
                };
                match categories.iter().position(|c| c == text) {
                    Some(i) => out[i] = 1.0,
                    None if *other => out[categories.len()] = 1.0,
                    None if unseen == Unseen::Zeros => {}
                    None => {
                        return Err(format!(
                            "input {name:?}: category {text:?} was not seen in training; expected one of {}",
                            preview(categories)
                        ))
                    }
                }
                Ok(())
            }
        }
    }
}

fn missing(name: &str) -> String {
    format!("input {name:?}: missing value, and the model does not impute (input.preprocessing.missing: error)")
}

fn preview(categories: &[String]) -> String {
    if categories.len() <= 10 {
        format!("{categories:?}")
    } else {
        format!("{:?} and {} more", &categories[..10], categories.len() - 10)
    }
}

/// Features per row of a table encoded by `columns`.
pub fn encoded_width(columns: &[ColumnEncoding]) -> usize {
    columns.iter().map(ColumnEncoding::width).sum()
}

/// Encodes `rows` rows whose cells `cell(row, column)` gives, into `rows · encoded_width`
/// features.
///
/// # Errors
/// The first cell that cannot be encoded, as `row {r}: input "…": …`.
pub fn encode_rows<'a>(
    columns: &[ColumnEncoding],
    rows: usize,
    unseen: Unseen,
    mut cell: impl FnMut(usize, usize) -> Cell<'a>,
) -> Result<Vec<f32>, String> {
    let width = encoded_width(columns);
    let mut out = vec![0f32; rows * width];
    for (r, row) in out.chunks_exact_mut(width.max(1)).enumerate().take(rows) {
        let mut at = 0;
        for (c, column) in columns.iter().enumerate() {
            let w = column.width();
            column.encode(cell(r, c), unseen, &mut row[at..at + w]).map_err(|e| format!("row {r}: {e}"))?;
            at += w;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colour(other: bool, fill: Option<&str>) -> ColumnEncoding {
        ColumnEncoding::Categorical {
            name: "colour".into(),
            categories: vec!["red".into(), "blue".into()],
            other,
            fill: fill.map(str::to_string),
        }
    }

    #[test]
    fn one_hot_with_other_and_imputation() {
        let mut out = [9.0; 3];
        colour(true, Some("blue")).encode(Cell::Text("green"), Unseen::Refuse, &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0, 1.0], "outside the vocabulary: other");
        colour(true, Some("blue")).encode(Cell::Text("NA"), Unseen::Refuse, &mut out).unwrap();
        assert_eq!(out, [0.0, 1.0, 0.0], "missing: the most frequent");
        let age = ColumnEncoding::Numeric { name: "age".into(), fill: Some(41.5) };
        let mut one = [0.0];
        age.encode(Cell::Number(f32::NAN), Unseen::Refuse, &mut one).unwrap();
        assert_eq!(one, [41.5]);
    }

    #[test]
    fn unseen_categories_are_refused_or_zero_and_missing_needs_imputation() {
        let mut out = [9.0; 2];
        let e = colour(false, None).encode(Cell::Text("green"), Unseen::Refuse, &mut out).unwrap_err();
        assert_eq!(
            e,
            "input \"colour\": category \"green\" was not seen in training; expected one of [\"red\", \"blue\"]"
        );
        colour(false, None).encode(Cell::Text("green"), Unseen::Zeros, &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0]);
        let e = colour(false, None).encode(Cell::Missing, Unseen::Zeros, &mut out).unwrap_err();
        assert!(e.starts_with("input \"colour\": missing value"), "{e}");
        let columns = [ColumnEncoding::Numeric { name: "x".into(), fill: None }, colour(false, None)];
        let cells = [[Cell::Number(1.0), Cell::Text("blue")], [Cell::Text("oops"), Cell::Text("red")]];
        let e = encode_rows(&columns, 2, Unseen::Refuse, |r, c| cells[r][c]).unwrap_err();
        assert_eq!(e, "row 1: input \"x\": expected a number, got \"oops\"");
        let x = encode_rows(&columns, 1, Unseen::Refuse, |r, c| cells[r][c]).unwrap();
        assert_eq!(x, [1.0, 0.0, 1.0]);
    }
}
