//! A strict reader over a parsed JSON/YAML document that names the path of every problem.

use serde_json::{Map, Value};

use super::SpecError;

/// The keys of one mapping in the spec, read one by one; `finish` rejects the keys nobody read.
pub(crate) struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

/// Joins a parent path and a key the way the errors print it (`fit.epochs`, `layers[2].units`).
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Describes a value briefly for "got …" in error messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

pub(crate) fn err(path: &str, message: impl Into<String>) -> SpecError {
    SpecError { path: path.to_string(), message: message.into() }
}

impl<'a> Fields<'a> {
    /// Opens `value` as a mapping at `path`.
    pub fn new(value: &'a Value, path: &str) -> Result<Self, SpecError> {
        match value {
            Value::Object(map) => Ok(Fields { path: path.to_string(), map, known: Vec::new() }),
            other => Err(err(path, format!("expected a mapping, got {}", describe(other)))),
        }
    }

    /// Path of a key of this mapping.
    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value under `key`, if present and not null; marks the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.known.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required value.
    pub fn req(&mut self, key: &'static str) -> Result<&'a Value, SpecError> {
        let path = self.key_path(key);
        self.get(key).ok_or_else(|| err(&path, "missing required key"))
    }

    /// An optional positive integer.
    pub fn opt_positive(&mut self, key: &'static str) -> Result<Option<usize>, SpecError> {
        let path = self.key_path(key);
        self.get(key).map(|v| positive(v, &path)).transpose()
    }

    /// A required positive integer.
    pub fn req_positive(&mut self, key: &'static str) -> Result<usize, SpecError> {
        let path = self.key_path(key);
        positive(self.req(key)?, &path)
    }

    /// An optional number.
    pub fn opt_f64(&mut self, key: &'static str) -> Result<Option<f64>, SpecError> {
        let path = self.key_path(key);
        self.get(key).map(|v| number(v, &path)).transpose()
    }

    /// An optional number that must lie in `[lo, hi]` (`hi_open` excludes `hi`).
    pub fn opt_in_range(
        &mut self,
        key: &'static str,
        lo: f64,
        hi: f64,
        hi_open: bool,
    ) -> Result<Option<f64>, SpecError> {
        let path = self.key_path(key);
        let Some(x) = self.opt_f64(key)? else {
            return Ok(None);
        };
        let above = if hi_open { x >= hi } else { x > hi };
        if x < lo || above {
            let close = if hi_open { ")" } else { "]" };
            return Err(err(&path, format!("expected a number in [{lo}, {hi}{close}, got {x}")));
        }
        Ok(Some(x))
    }

    /// An optional strictly positive number.
    pub fn opt_positive_f64(&mut self, key: &'static str) -> Result<Option<f64>, SpecError> {
        let path = self.key_path(key);
        match self.opt_f64(key)? {
            Some(x) if x <= 0.0 || !x.is_finite() => Err(err(&path, format!("expected a positive number, got {x}"))),
            other => Ok(other),
        }
    }

    /// An optional boolean.
    pub fn opt_bool(&mut self, key: &'static str) -> Result<Option<bool>, SpecError> {
        let path = self.key_path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(err(&path, format!("expected true or false, got {}", describe(other)))),
        }
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<&'a str>, SpecError> {
        let path = self.key_path(key);
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => Err(err(&path, format!("expected a string, got {}", describe(other)))),
        }
    }

    /// Rejects keys that were never read, listing the ones that are allowed.
    pub fn finish(self) -> Result<(), SpecError> {
        for key in self.map.keys() {
            if !self.known.contains(&key.as_str()) {
                let mut allowed = self.known.clone();
                allowed.sort_unstable();
                allowed.dedup();
                return Err(err(
                    &join(&self.path, key),
                    format!("unknown key; expected one of: {}", allowed.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// Reads a number.
pub(crate) fn number(v: &Value, path: &str) -> Result<f64, SpecError> {
    v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| err(path, format!("expected a number, got {}", describe(v))))
}

/// Reads a positive integer.
pub(crate) fn positive(v: &Value, path: &str) -> Result<usize, SpecError> {
    match v.as_u64() {
        Some(n) if n > 0 && n <= u32::MAX as u64 => Ok(n as usize),
        _ => Err(err(path, format!("expected a positive integer, got {}", describe(v)))),
    }
}

/// Reads a pair of positive integers given as `3` or `[3, 3]`.
pub(crate) fn pair(v: &Value, path: &str) -> Result<[usize; 2], SpecError> {
    match v {
        Value::Array(items) if items.len() == 2 => {
            Ok([positive(&items[0], &format!("{path}[0]"))?, positive(&items[1], &format!("{path}[1]"))?])
        }
        Value::Array(items) => Err(err(path, format!("expected 2 positive integers, got a list of {}", items.len()))),
        other => {
            let n = positive(other, path)?;
            Ok([n, n])
        }
    }
}
