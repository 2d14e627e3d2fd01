//! TF Serving REST request decoding (row `instances`, columnar `inputs`, tf.Example-style
//! classify) and response encoding. Pure functions over bytes, fuzzable on their own.

use lathe_types::{ApiError, DType, Signature, Tensor, TensorSignature};
use serde_json::{Map, Value};

use crate::tensors::{is_b64, leaves_to_data, nested_shape, NestedJson};

/// Name of the only signature Lathe models have.
pub const DEFAULT_SIGNATURE: &str = "serving_default";

/// A decoded predict request.
#[derive(Debug)]
pub struct PredictRequest {
    /// Row (`instances`) or columnar (`inputs`) format.
    pub row_format: bool,
    /// Input tensors.
    pub inputs: Vec<Tensor>,
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&crate::tensors::with_number_tokens(body)) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("malformed request: expected a JSON object")),
        Err(e) => Err(ApiError::invalid(format!("malformed JSON request: {e}"))),
    }
}

fn check_signature(m: &Map<String, Value>) -> Result<(), ApiError> {
    match m.get("signature_name") {
        None => Ok(()),
        Some(Value::String(s)) if s.is_empty() || s == DEFAULT_SIGNATURE => Ok(()),
        Some(Value::String(s)) => Err(ApiError::invalid(format!(
            "signature_name {s:?} not found; the model's signature is {DEFAULT_SIGNATURE:?}"
        ))),
        Some(_) => Err(ApiError::invalid("signature_name: expected a string")),
    }
}

fn tensor_from(v: &Value, s: &TensorSignature, path: &str) -> Result<Tensor, ApiError> {
    let mut leaves = Vec::new();
    let shape = nested_shape(v, path, &mut leaves)?;
    if s.datatype != DType::Bytes && leaves.iter().any(|l| is_b64(l)) {
        return Err(ApiError::invalid(format!(
            "{path}: b64 values need a DT_STRING input, {:?} is {}",
            s.name,
            s.datatype.tf_name()
        )));
    }
    let dtype = if s.datatype == DType::Bytes { DType::Bytes } else { number_dtype(s.datatype) };
    let data = leaves_to_data(&leaves, dtype, path)?;
    Ok(Tensor { name: s.name.clone(), shape, data })
}

/// JSON numbers are read in the model's type when it is numeric (FP32 models read FP32).
fn number_dtype(d: DType) -> DType {
    match d {
        DType::F16 => DType::F32,
        other => other,
    }
}

/// A JSON object body without `key`, re-serialised for [`decode_predict`], and `key`'s value:
/// how `:explain` (`parameters`) and `/debug` (`full_tensors`) carry what `:predict` does not
/// take.
pub fn take_key(body: &[u8], key: &str) -> Result<(Vec<u8>, Option<Value>), ApiError> {
    let mut m = parse_object(body)?;
    let value = m.remove(key);
    Ok((serde_json::to_vec(&m).expect("a JSON object serialises"), value))
}

/// Decodes a `:predict` body.
pub fn decode_predict(body: &[u8], sig: &Signature) -> Result<PredictRequest, ApiError> {
    let m = parse_object(body)?;
    check_signature(&m)?;
    for k in m.keys() {
        if !matches!(k.as_str(), "signature_name" | "instances" | "inputs") {
            return Err(ApiError::invalid(format!(
                "unknown key {k:?}; expected signature_name and instances or inputs"
            )));
        }
    }
    match (m.get("instances"), m.get("inputs")) {
        (Some(_), Some(_)) => {
            Err(ApiError::invalid("give either instances (row format) or inputs (columnar format), not both"))
        }
        (None, None) => Err(ApiError::invalid("missing instances (row format) or inputs (columnar format)")),
        (Some(inst), None) => Ok(PredictRequest { row_format: true, inputs: decode_instances(inst, sig)? }),
        (None, Some(inputs)) => Ok(PredictRequest { row_format: false, inputs: decode_columnar(inputs, sig)? }),
    }
}

fn decode_instances(inst: &Value, sig: &Signature) -> Result<Vec<Tensor>, ApiError> {
    let Value::Array(rows) = inst else {
        return Err(ApiError::invalid("instances: expected a list with one element per row"));
    };
    if rows.is_empty() {
        return Err(ApiError::invalid("instances: the list is empty"));
    }
    let single = sig.inputs.len() == 1;
    let named = |row: &Value| matches!(row, Value::Object(_)) && !(single && is_b64(row));
    if let Some(i) = rows.iter().position(|row| named(row) != named(&rows[0])) {
        return Err(ApiError::invalid(format!(
            "instances[{i}]: every instance must have the same form; instances[0] is {} and instances[{i}] is {}",
            if named(&rows[0]) { "an object of named inputs" } else { "a bare value" },
            if named(&rows[i]) { "an object of named inputs" } else { "a bare value" },
        )));
    }
    let mut out = Vec::with_capacity(sig.inputs.len());
    for s in &sig.inputs {
        let mut stacked: Vec<&Value> = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let v = match row {
                Value::Object(obj) if !(single && is_b64(row)) => obj
                    .get(&s.name)
                    .ok_or_else(|| ApiError::invalid(format!("instances[{i}]: missing input {:?}", s.name)))?,
                other if single => other,
                _ => return Err(ApiError::invalid(format!("instances[{i}]: expected an object of named inputs"))),
            };
            if let Value::Object(obj) = row {
                if let Some(extra) = obj.keys().find(|k| !sig.inputs.iter().any(|s| &s.name == *k)) {
                    if !(single && is_b64(row)) {
                        return Err(ApiError::invalid(format!("instances[{i}]: unknown input {extra:?}")));
                    }
                }
            }
            stacked.push(v);
        }
        let list = Value::Array(stacked.into_iter().cloned().collect());
        out.push(tensor_from(&list, s, "instances")?);
    }
    Ok(out)
}

fn decode_columnar(inputs: &Value, sig: &Signature) -> Result<Vec<Tensor>, ApiError> {
    let named = match inputs {
        Value::Object(m) if !is_b64(inputs) => Some(m),
        _ => None,
    };
    match named {
        Some(m) => {
            if let Some(extra) = m.keys().find(|k| !sig.inputs.iter().any(|s| &s.name == *k)) {
                return Err(ApiError::invalid(format!("inputs: unknown input {extra:?}")));
            }
            sig.inputs
                .iter()
                .map(|s| {
                    let v = m
                        .get(&s.name)
                        .ok_or_else(|| ApiError::invalid(format!("inputs: missing input {:?}", s.name)))?;
                    tensor_from(v, s, &format!("inputs.{}", s.name))
                })
                .collect()
        }
        None if sig.inputs.len() == 1 => Ok(vec![tensor_from(inputs, &sig.inputs[0], "inputs")?]),
        None => Err(ApiError::invalid("inputs: the model has several inputs; send an object of named tensors")),
    }
}

/// Encodes a predict response; BYTES outputs whose name ends in `_bytes` are written as b64.
pub fn encode_predict(row_format: bool, outputs: &[Tensor]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + outputs.iter().map(|t| t.data.len() * 12).sum::<usize>());
    let b64 = |t: &Tensor| t.name.ends_with("_bytes");
    if row_format {
        body.extend_from_slice(b"{\"predictions\":[");
        let rows = outputs.first().map_or(0, |t| t.rows());
        for r in 0..rows {
            if r > 0 {
                body.push(b',');
            }
            write_outputs(&mut body, outputs, |b, t| write_row(b, t, r, b64(t)));
        }
        body.extend_from_slice(b"]}");
    } else {
        body.extend_from_slice(b"{\"outputs\":");
        write_outputs(&mut body, outputs, |b, t| {
            serde_json::to_writer(b, &NestedJson { data: &t.data, shape: &t.shape, lo: 0, b64: b64(t) }).expect("write")
        });
        body.push(b'}');
    }
    body
}

/// Writes one output's value alone, or an object of every output's value by name.
fn write_outputs(body: &mut Vec<u8>, outputs: &[Tensor], mut value: impl FnMut(&mut Vec<u8>, &Tensor)) {
    if let [only] = outputs {
        value(body, only);
        return;
    }
    body.push(b'{');
    for (i, t) in outputs.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        serde_json::to_writer(&mut *body, &t.name).expect("write");
        body.push(b':');
        value(body, t);
    }
    body.push(b'}');
}

fn write_row(body: &mut Vec<u8>, t: &Tensor, r: usize, b64: bool) {
    let per_row: usize = t.shape[1..].iter().product();
    serde_json::to_writer(body, &NestedJson { data: &t.data, shape: &t.shape[1..], lo: r * per_row, b64 })
        .expect("write");
}

/// Decodes a `:classify` body into one input tensor: each example's features (merged with
/// `context`) are either the model's named feature columns or its input name.
pub fn decode_classify(body: &[u8], sig: &Signature, feature_names: &[String]) -> Result<Vec<Tensor>, ApiError> {
    let m = parse_object(body)?;
    check_signature(&m)?;
    let empty = Map::new();
    let context = match m.get("context") {
        None => &empty,
        Some(Value::Object(c)) => c,
        Some(_) => return Err(ApiError::invalid("context: expected an object of features")),
    };
    let Some(Value::Array(examples)) = m.get("examples") else {
        return Err(ApiError::invalid("examples: expected a list of feature objects"));
    };
    if examples.is_empty() {
        return Err(ApiError::invalid("examples: the list is empty"));
    }
    let [input] = sig.inputs.as_slice() else {
        return sig.inputs.iter().map(|s| example_column(examples, context, s)).collect();
    };
    let mut rows = Vec::with_capacity(examples.len());
    for (i, ex) in examples.iter().enumerate() {
        let Value::Object(features) = ex else {
            return Err(ApiError::invalid(format!("examples[{i}]: expected an object of features")));
        };
        let get = |k: &str| features.get(k).or_else(|| context.get(k));
        let row = if feature_names.is_empty() {
            get(&input.name)
                .cloned()
                .ok_or_else(|| ApiError::invalid(format!("examples[{i}]: missing feature {:?}", input.name)))?
        } else {
            let mut values = Vec::with_capacity(feature_names.len());
            for f in feature_names {
                let v = get(f).ok_or_else(|| ApiError::invalid(format!("examples[{i}]: missing feature {f:?}")))?;
                let x = match v {
                    Value::Array(a) if a.len() == 1 => &a[0],
                    other => other,
                };
                values.push(x.clone());
            }
            Value::Array(values)
        };
        rows.push(row);
    }
    Ok(vec![tensor_from(&Value::Array(rows), input, "examples")?])
}

/// One input of a model of several (a table's raw columns): that feature of every example.
fn example_column(examples: &[Value], context: &Map<String, Value>, s: &TensorSignature) -> Result<Tensor, ApiError> {
    let mut values = Vec::with_capacity(examples.len());
    for (i, ex) in examples.iter().enumerate() {
        let Value::Object(features) = ex else {
            return Err(ApiError::invalid(format!("examples[{i}]: expected an object of features")));
        };
        let v = features
            .get(&s.name)
            .or_else(|| context.get(&s.name))
            .ok_or_else(|| ApiError::invalid(format!("examples[{i}]: missing feature {:?}", s.name)))?;
        values.push(match v {
            Value::Array(a) if a.len() == 1 => a[0].clone(),
            other => other.clone(),
        });
    }
    tensor_from(&Value::Array(values), s, "examples")
}

/// Encodes `:regress` results: `{"results": [v, …]}`, one value per example.
pub fn encode_regress(values: &Tensor) -> Vec<u8> {
    let results: Vec<f32> = values.data.to_f32().unwrap_or_default();
    serde_json::to_vec(&serde_json::json!({ "results": results })).expect("numbers serialise")
}

/// Encodes `:classify` results: per example, `[label, score]` for every class in model order.
pub fn encode_classify(scores: &Tensor, class_names: &[String]) -> Vec<u8> {
    let values = scores.data.to_f32().unwrap_or_default();
    let width = values.len() / scores.rows().max(1);
    let results: Vec<Vec<(String, f32)>> = values
        .chunks(width.max(1))
        .map(|row| {
            let probs: Vec<f32> = if row.len() == 1 { vec![1.0 - row[0], row[0]] } else { row.to_vec() };
            probs
                .iter()
                .enumerate()
                .map(|(i, p)| (class_names.get(i).cloned().unwrap_or_else(|| i.to_string()), *p))
                .collect()
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "results": results })).expect("serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lathe_types::TensorData;

    fn sig() -> Signature {
        Signature {
            inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 2] }],
            outputs: vec![TensorSignature { name: "probabilities".into(), datatype: DType::F32, shape: vec![-1, 2] }],
        }
    }

    #[test]
    fn row_and_columnar_requests() {
        let r = decode_predict(br#"{"instances": [[1, 2], [3, 4]]}"#, &sig()).unwrap();
        assert!(r.row_format);
        assert_eq!(
            (r.inputs[0].shape.clone(), r.inputs[0].data.clone()),
            (vec![2, 2], TensorData::F32(vec![1., 2., 3., 4.]))
        );
        let r =
            decode_predict(br#"{"signature_name": "serving_default", "inputs": {"input": [[1, 2]]}}"#, &sig()).unwrap();
        assert!(!r.row_format);
        assert_eq!(r.inputs[0].shape, vec![1, 2]);
        let r = decode_predict(br#"{"instances": [{"input": [5, 6]}]}"#, &sig()).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::F32(vec![5., 6.]));
    }

    #[test]
    fn bad_predict_requests() {
        let e = |b: &[u8]| decode_predict(b, &sig()).unwrap_err().message;
        assert!(e(br#"{"instances": [[1, 2]], "inputs": [[1, 2]]}"#).contains("not both"));
        assert!(
            e(br#"{"signature_name": "other", "instances": [[1,2]]}"#).contains("signature_name \"other\" not found")
        );
        assert!(e(br#"{"instances": [{"b64": "AA=="}]}"#).contains("b64 values need a DT_STRING input"));
        assert!(e(br#"{"instances": [{"x": [1, 2]}]}"#).contains("missing input \"input\""));
        assert!(e(br#"{"instances": [[1, "a"]]}"#).contains("expected a number, got a string"));
        assert!(e(b"[1,2]").contains("expected a JSON object"));
    }

    #[test]
    fn several_outputs_are_named_per_row_and_per_tensor() {
        let a = Tensor { name: "a".into(), shape: vec![2, 1], data: TensorData::F32(vec![1.0, 2.0]) };
        let b =
            Tensor { name: "b_bytes".into(), shape: vec![2], data: TensorData::Bytes(vec![vec![0xff], b"x".to_vec()]) };
        let rows = String::from_utf8(encode_predict(true, &[a.clone(), b.clone()])).unwrap();
        assert_eq!(
            rows,
            r#"{"predictions":[{"a":[1.0],"b_bytes":{"b64":"/w=="}},{"a":[2.0],"b_bytes":{"b64":"eA=="}}]}"#
        );
        let cols = String::from_utf8(encode_predict(false, &[a, b])).unwrap();
        assert_eq!(cols, r#"{"outputs":{"a":[[1.0],[2.0]],"b_bytes":[{"b64":"/w=="},{"b64":"eA=="}]}}"#);
    }

    #[test]
    fn responses_follow_the_request_format() {
        let t = Tensor {
            name: "probabilities".into(),
            shape: vec![2, 2],
            data: TensorData::F32(vec![0.25, 0.75, 1.0, 0.0]),
        };
        assert_eq!(
            String::from_utf8(encode_predict(true, std::slice::from_ref(&t))).unwrap(),
            r#"{"predictions":[[0.25,0.75],[1.0,0.0]]}"#
        );
        assert_eq!(
            String::from_utf8(encode_predict(false, std::slice::from_ref(&t))).unwrap(),
            r#"{"outputs":[[0.25,0.75],[1.0,0.0]]}"#
        );
        let names = vec!["no".to_string(), "yes".to_string()];
        assert_eq!(
            String::from_utf8(encode_classify(&t, &names)).unwrap(),
            r#"{"results":[[["no",0.25],["yes",0.75]],[["no",1.0],["yes",0.0]]]}"#
        );
    }
}
