//! Inputs for offline prediction: JSON instances, CSV rows and PNG/JPEG images, converted to
//! raw samples of the model's input shape (preprocessing is the model's job).

use std::path::Path;

use serde_json::Value;

use super::csv_table::read_csv_columns;
use crate::error::{data_err, TrainError};

/// Reads prediction inputs from `path` for a model with input `shape` and, for tabular
/// models, `feature_names`. Returns raw values and the number of samples.
pub fn read_inputs(path: &Path, shape: &[usize], feature_names: &[String]) -> Result<(Vec<f32>, usize), TrainError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let len: usize = shape.iter().product();
    match ext.as_str() {
        "png" | "jpg" | "jpeg" => Ok((read_image(path, shape)?, 1)),
        "csv" => {
            if feature_names.is_empty() {
                return Err(data_err(format!(
                    "{}: CSV input needs a tabular model; this model takes {shape:?} inputs",
                    path.display()
                )));
            }
            let x = read_csv_columns(path, feature_names)?;
            Ok((x.clone(), x.len() / len))
        }
        "json" => {
            let text =
                std::fs::read_to_string(path).map_err(|e| data_err(format!("{}: cannot read: {e}", path.display())))?;
            let v: Value =
                serde_json::from_str(&text).map_err(|e| data_err(format!("{}: invalid JSON: {e}", path.display())))?;
            json_instances(&v, len, feature_names).map_err(|e| data_err(format!("{}: {e}", path.display())))
        }
        _ => Err(data_err(format!("{}: unsupported input; expected .json, .csv, .png, .jpg or .jpeg", path.display()))),
    }
}

/// Reads the raw cells of table rows for a model whose columns are encoded: the named
/// `columns` of a CSV file, or JSON instances as objects keyed by column (numbers, texts,
/// `null` or an absent key for a missing cell). Every cell is returned as text; missing cells
/// as `""`.
pub fn read_cells(path: &Path, columns: &[String]) -> Result<Vec<Vec<String>>, TrainError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "csv" => super::csv_table::read_csv_cells(path, columns),
        "json" => {
            let text =
                std::fs::read_to_string(path).map_err(|e| data_err(format!("{}: cannot read: {e}", path.display())))?;
            let v: Value =
                serde_json::from_str(&text).map_err(|e| data_err(format!("{}: invalid JSON: {e}", path.display())))?;
            json_cells(&v, columns).map_err(|e| data_err(format!("{}: {e}", path.display())))
        }
        _ => Err(data_err(format!("{}: unsupported input for a table model; expected .json or .csv", path.display()))),
    }
}

fn json_cells(v: &Value, columns: &[String]) -> Result<Vec<Vec<String>>, String> {
    let list = match v {
        Value::Object(m) => {
            m.get("instances").or_else(|| m.get("inputs")).ok_or("expected an object with \"instances\"")?
        }
        other => other,
    };
    let Value::Array(items) = list else {
        return Err("instances: expected a list of objects keyed by column".into());
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(m) = item else {
                return Err(format!("instances[{i}]: expected an object keyed by column {columns:?}"));
            };
            columns
                .iter()
                .map(|c| match m.get(c) {
                    None | Some(Value::Null) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.clone()),
                    Some(Value::Number(n)) => Ok(n.to_string()),
                    Some(Value::Bool(b)) => Ok(b.to_string()),
                    Some(_) => Err(format!("instances[{i}].{c}: expected a number, a text or null")),
                })
                .collect()
        })
        .collect()
}

/// Decodes `{"instances": [...]}`, `{"inputs": [...]}` or a bare list into raw samples.
pub fn json_instances(v: &Value, len: usize, feature_names: &[String]) -> Result<(Vec<f32>, usize), String> {
    let list = match v {
        Value::Object(m) => m
            .get("instances")
            .or_else(|| m.get("inputs"))
            .ok_or("expected a list of instances or an object with \"instances\"")?,
        other => other,
    };
    let Value::Array(items) = list else {
        return Err("instances: expected a list".into());
    };
    let mut flat = Vec::new();
    flatten_numbers(list, &mut flat);
    if flat.len() == len && items.iter().all(Value::is_number) {
        return Ok((flat, 1));
    }
    let mut out = Vec::with_capacity(items.len() * len);
    for (i, item) in items.iter().enumerate() {
        let before = out.len();
        match item {
            Value::Object(m) if !feature_names.is_empty() => {
                for name in feature_names {
                    let x = m
                        .get(name)
                        .and_then(Value::as_f64)
                        .ok_or_else(|| format!("instances[{i}].{name}: expected a number"))?;
                    out.push(x as f32);
                }
            }
            other => {
                if !flatten_numbers(other, &mut out) {
                    return Err(format!("instances[{i}]: expected numbers only"));
                }
            }
        }
        if out.len() - before != len {
            return Err(format!("instances[{i}]: expected {len} values, got {}", out.len() - before));
        }
    }
    Ok((out, items.len()))
}

fn flatten_numbers(v: &Value, out: &mut Vec<f32>) -> bool {
    match v {
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            true
        }
        Value::Array(items) => items.iter().all(|i| flatten_numbers(i, out)),
        _ => false,
    }
}

/// Reads a PNG or JPEG image and converts it to the model's input: grayscale for one channel
/// (or a 2-D shape), RGB for three, resized to height × width, values 0–255.
pub fn read_image(path: &Path, shape: &[usize]) -> Result<Vec<f32>, TrainError> {
    let (h, w, c) = match shape {
        [h, w] => (*h, *w, 1),
        [h, w, c] if *c == 1 || *c == 3 => (*h, *w, *c),
        _ => {
            return Err(data_err(format!(
                "{}: images need a model input of [h, w], [h, w, 1] or [h, w, 3], this model takes {shape:?}",
                path.display()
            )))
        }
    };
    let img = image::open(path).map_err(|e| data_err(format!("{}: cannot decode image: {e}", path.display())))?;
    let resized = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
    Ok(if c == 1 {
        resized.to_luma8().into_raw().into_iter().map(f32::from).collect()
    } else {
        resized.to_rgb8().into_raw().into_iter().map(f32::from).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_instances_nested_flat_and_named() {
        let (x, n) = json_instances(&json!({"instances": [[[1, 2], [3, 4]], [5, 6, 7, 8]]}), 4, &[]).unwrap();
        assert_eq!((x, n), (vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], 2));
        let (x, n) = json_instances(&json!([1, 2]), 2, &[]).unwrap();
        assert_eq!((x, n), (vec![1.0, 2.0], 1));
        let names = vec!["a".to_string(), "b".to_string()];
        let (x, _) = json_instances(&json!({"instances": [{"b": 2, "a": 1}]}), 2, &names).unwrap();
        assert_eq!(x, vec![1.0, 2.0]);
    }

    #[test]
    fn wrong_lengths_name_the_instance() {
        let e = json_instances(&json!({"instances": [[1, 2], [3]]}), 2, &[]).unwrap_err();
        assert_eq!(e, "instances[1]: expected 2 values, got 1");
    }
}
