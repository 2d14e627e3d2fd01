//! JSON values ↔ tensors: natural nested arrays (TF Serving), nested or flat data with an
//! explicit shape (Open Inference Protocol), `{"b64": …}` strings, and the reverse encoders.

use base64::Engine as _;
use lathe_types::{ApiError, DType, TensorData};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Most elements one tensor may hold (guards allocations driven by client-sent shapes).
pub const MAX_ELEMENTS: usize = 1 << 26;

/// Shape and leaves of a natural nested JSON array; errors when it is ragged.
pub fn nested_shape<'a>(v: &'a Value, path: &str, leaves: &mut Vec<&'a Value>) -> Result<Vec<usize>, ApiError> {
    match v {
        Value::Array(items) if items.first().is_some_and(|f| !f.is_array()) => {
            // The innermost level: a run of scalars (the common case, kept allocation-free).
            if let Some(i) = items.iter().position(Value::is_array) {
                return Err(ApiError::invalid(format!(
                    "{path}: ragged nested list: element {i} is a list, element 0 is not"
                )));
            }
            if leaves.len() + items.len() > MAX_ELEMENTS {
                return Err(ApiError::invalid(format!("{path}: more than {MAX_ELEMENTS} elements")));
            }
            leaves.extend(items.iter());
            Ok(vec![items.len()])
        }
        Value::Array(items) => {
            let mut inner: Option<Vec<usize>> = None;
            for (i, item) in items.iter().enumerate() {
                let s = nested_shape(item, path, leaves)?;
                match &inner {
                    None => inner = Some(s),
                    Some(prev) if *prev != s => {
                        return Err(ApiError::invalid(format!(
                            "{path}: ragged nested list: element {i} has shape {s:?}, element 0 has {prev:?}"
                        )))
                    }
                    Some(_) => {}
                }
                if leaves.len() > MAX_ELEMENTS {
                    return Err(ApiError::invalid(format!("{path}: more than {MAX_ELEMENTS} elements")));
                }
            }
            let mut shape = vec![items.len()];
            shape.extend(inner.unwrap_or_default());
            Ok(shape)
        }
        other => {
            leaves.push(other);
            Ok(Vec::new())
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Converts JSON leaves to typed data of `dtype`; `path` names the tensor in errors.
pub fn leaves_to_data(leaves: &[&Value], dtype: DType, path: &str) -> Result<TensorData, ApiError> {
    let bad =
        |i: usize, v: &Value, want: &str| ApiError::invalid(format!("{path}[{i}]: expected {want}, got {}", kind(v)));
    macro_rules! ints {
        ($variant:ident, $t:ty) => {{
            let mut out = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                let x = v
                    .as_i64()
                    .and_then(|x| <$t>::try_from(x).ok())
                    .or_else(|| v.as_u64().and_then(|x| <$t>::try_from(x).ok()))
                    .ok_or_else(|| bad(i, v, concat!("an integer in the range of ", stringify!($t))))?;
                out.push(x);
            }
            TensorData::$variant(out)
        }};
    }
    Ok(match dtype {
        DType::F32 => {
            let mut out = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                let x = v.as_f64().or_else(|| number_token(v)).ok_or_else(|| bad(i, v, "a number"))?;
                out.push(x as f32);
            }
            TensorData::F32(out)
        }
        DType::F64 => {
            let mut out = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                out.push(v.as_f64().or_else(|| number_token(v)).ok_or_else(|| bad(i, v, "a number"))?);
            }
            TensorData::F64(out)
        }
        DType::F16 => {
            return Err(ApiError::invalid(format!(
                "{path}: FP16 has no JSON form; send it with the binary data extension"
            )))
        }
        DType::Bool => {
            let mut out = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                out.push(v.as_bool().ok_or_else(|| bad(i, v, "true or false"))?);
            }
            TensorData::Bool(out)
        }
        DType::U8 => ints!(U8, u8),
        DType::U16 => ints!(U16, u16),
        DType::U32 => ints!(U32, u32),
        DType::U64 => ints!(U64, u64),
        DType::I8 => ints!(I8, i8),
        DType::I16 => ints!(I16, i16),
        DType::I32 => ints!(I32, i32),
        DType::I64 => ints!(I64, i64),
        DType::Bytes => {
            let mut out = Vec::with_capacity(leaves.len());
            for (i, v) in leaves.iter().enumerate() {
                if is_b64(v) {
                    out.push(b64_bytes(v).map_err(|e| ApiError::invalid(format!("{path}[{i}]: {e}")))?);
                    continue;
                }
                let text = bytes_value(v).filter(|_| number_token(v).is_none());
                out.push(text.ok_or_else(|| bad(i, v, "a string or {\"b64\": \"...\"}"))?);
            }
            TensorData::Bytes(out)
        }
    })
}

/// What [`with_number_tokens`] turns the bare tokens `NaN`, `Infinity` and `-Infinity` into:
/// strings no client sends (they start with NUL), read back as numbers by numeric inputs.
const TOKENS: [(&str, &str, f64); 3] = [
    ("NaN", "\"\\u0000NaN\"", f64::NAN),
    ("Infinity", "\"\\u0000Infinity\"", f64::INFINITY),
    ("-Infinity", "\"\\u0000-Infinity\"", f64::NEG_INFINITY),
];

/// The number a token placeholder stands for (`NaN`, `±Infinity`).
fn number_token(v: &Value) -> Option<f64> {
    let s = v.as_str()?.strip_prefix('\u{0}')?;
    TOKENS.iter().find(|(token, _, _)| *token == s).map(|(_, _, x)| *x)
}

/// TF Serving's JSON: the bare tokens `NaN`, `Infinity` and `-Infinity` (which TF Serving reads,
/// and Python's `json.dumps` writes by default) replaced, outside strings, by placeholders that
/// strict JSON parses; numeric inputs read them back as those numbers. Bodies without such a
/// token are returned as they are.
pub fn with_number_tokens(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let has = |t: &[u8]| body.windows(t.len()).any(|w| w == t);
    if !has(b"NaN") && !has(b"Infinity") {
        return std::borrow::Cow::Borrowed(body);
    }
    let mut out = Vec::with_capacity(body.len() + 64);
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < body.len() {
        let b = body[i];
        if in_string {
            in_string = escaped || b != b'"';
            escaped = !escaped && b == b'\\';
        } else if b == b'"' {
            in_string = true;
        } else if let Some((token, placeholder, _)) =
            TOKENS.iter().find(|(t, _, _)| body[i..].starts_with(t.as_bytes()))
        {
            out.extend_from_slice(placeholder.as_bytes());
            i += token.len();
            continue;
        }
        out.push(b);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

/// The bytes of `{"b64": "<standard padded base64>"}`, or what is wrong with it.
fn b64_bytes(v: &Value) -> Result<Vec<u8>, String> {
    let Some(text) = v.get("b64").and_then(Value::as_str) else {
        return Err("expected {\"b64\": \"<base64 text>\"}".into());
    };
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("the b64 value is not valid standard padded base64 (RFC 4648 §4): {e}"))
}

/// A string, or the decoded bytes of `{"b64": "<base64>"}`.
pub fn bytes_value(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Object(m) if m.len() == 1 => {
            let s = m.get("b64")?.as_str()?;
            base64::engine::general_purpose::STANDARD.decode(s).ok()
        }
        _ => None,
    }
}

/// The numeric leaf of a `{"b64": …}` object when a numeric input is sent as base64 — TF
/// Serving accepts b64 for any input, meaning raw bytes; here that is only valid for BYTES.
pub fn is_b64(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.len() == 1 && m.contains_key("b64"))
}

/// Serialises tensor data as a flat JSON list.
pub struct FlatJson<'a> {
    /// The values.
    pub data: &'a TensorData,
    /// BYTES as `{"b64": …}` (else as UTF-8 strings, lossy).
    pub b64: bool,
}

/// Serialises `data[lo..hi]` as nested lists following `shape` (the shape of that range).
pub struct NestedJson<'a> {
    /// The values.
    pub data: &'a TensorData,
    /// Shape of the range.
    pub shape: &'a [usize],
    /// First element.
    pub lo: usize,
    /// BYTES as `{"b64": …}`.
    pub b64: bool,
}

struct Elem<'a>(&'a TensorData, usize, bool);

impl Serialize for Elem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let i = self.1;
        match self.0 {
            TensorData::Bool(v) => s.serialize_bool(v[i]),
            TensorData::U8(v) => s.serialize_u8(v[i]),
            TensorData::U16(v) => s.serialize_u16(v[i]),
            TensorData::U32(v) => s.serialize_u32(v[i]),
            TensorData::U64(v) => s.serialize_u64(v[i]),
            TensorData::I8(v) => s.serialize_i8(v[i]),
            TensorData::I16(v) => s.serialize_i16(v[i]),
            TensorData::I32(v) => s.serialize_i32(v[i]),
            TensorData::I64(v) => s.serialize_i64(v[i]),
            TensorData::F16(v) => s.serialize_u16(v[i]),
            TensorData::F32(v) => finite_f32(v[i], s),
            TensorData::F64(v) => {
                if v[i].is_finite() {
                    s.serialize_f64(v[i])
                } else {
                    s.serialize_none()
                }
            }
            TensorData::Bytes(v) if self.2 => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("b64", &base64::engine::general_purpose::STANDARD.encode(&v[i]))?;
                m.end()
            }
            TensorData::Bytes(v) => s.serialize_str(&String::from_utf8_lossy(&v[i])),
        }
    }
}

/// JSON has no NaN or infinity; such values are written as null.
fn finite_f32<S: Serializer>(x: f32, s: S) -> Result<S::Ok, S::Error> {
    if x.is_finite() {
        s.serialize_f32(x)
    } else {
        s.serialize_none()
    }
}

impl Serialize for FlatJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let n = self.data.len();
        let mut seq = s.serialize_seq(Some(n))?;
        for i in 0..n {
            seq.serialize_element(&Elem(self.data, i, self.b64))?;
        }
        seq.end()
    }
}

impl Serialize for NestedJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.shape {
            [] => Elem(self.data, self.lo, self.b64).serialize(s),
            [n, rest @ ..] => {
                let stride: usize = rest.iter().product();
                let mut seq = s.serialize_seq(Some(*n))?;
                for i in 0..*n {
                    seq.serialize_element(&NestedJson {
                        data: self.data,
                        shape: rest,
                        lo: self.lo + i * stride,
                        b64: self.b64,
                    })?;
                }
                seq.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_lists_give_shapes_and_reject_ragged_ones() {
        let v = json!([[1, 2, 3], [4, 5, 6]]);
        let mut leaves = Vec::new();
        assert_eq!(nested_shape(&v, "x", &mut leaves).unwrap(), vec![2, 3]);
        let data = leaves_to_data(&leaves, DType::F32, "x").unwrap();
        assert_eq!(data, TensorData::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        let mut leaves = Vec::new();
        let e = nested_shape(&json!([[1, 2], [3]]), "x", &mut leaves).unwrap_err();
        assert!(e.message.contains("ragged"), "{}", e.message);
    }

    #[test]
    fn typed_leaves_check_types_and_ranges() {
        let v = json!([1, 300]);
        let leaves: Vec<&Value> = v.as_array().unwrap().iter().collect();
        let e = leaves_to_data(&leaves, DType::U8, "in").unwrap_err();
        assert_eq!(e.message, "in[1]: expected an integer in the range of u8, got a number");
        let v = json!(["a", {"b64": "AAE="}]);
        let leaves: Vec<&Value> = v.as_array().unwrap().iter().collect();
        assert_eq!(
            leaves_to_data(&leaves, DType::Bytes, "s").unwrap(),
            TensorData::Bytes(vec![b"a".to_vec(), vec![0, 1]])
        );
    }

    #[test]
    fn encoders_write_flat_and_nested_json() {
        let d = TensorData::F32(vec![1.0, 2.5, 3.0, 4.0]);
        assert_eq!(serde_json::to_string(&FlatJson { data: &d, b64: false }).unwrap(), "[1.0,2.5,3.0,4.0]");
        let nested = NestedJson { data: &d, shape: &[2, 1], lo: 2, b64: false };
        assert_eq!(serde_json::to_string(&nested).unwrap(), "[[3.0],[4.0]]");
        let b = TensorData::Bytes(vec![vec![0xff]]);
        assert_eq!(serde_json::to_string(&FlatJson { data: &b, b64: true }).unwrap(), r#"[{"b64":"/w=="}]"#);
    }
}
