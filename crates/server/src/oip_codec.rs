//! Decoding Open Inference Protocol requests (JSON, with the binary tensor data extension)
//! and encoding responses. Pure functions over bytes, so they can be fuzzed on their own.

use std::collections::HashMap;

use lathe_types::{ApiError, DType, Signature, Tensor, TensorData};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::tensors::{leaves_to_data, nested_shape, FlatJson, MAX_ELEMENTS};

/// One requested output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    /// Output name.
    pub name: String,
    /// `binary_data`, `classification`.
    #[serde(default)]
    pub parameters: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputJson {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    data: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestJson {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputJson>,
    outputs: Option<Vec<RequestedOutput>>,
}

/// A decoded inference request.
#[derive(Debug)]
pub struct InferRequest {
    /// Request id to echo.
    pub id: Option<String>,
    /// Request parameters.
    pub parameters: Map<String, Value>,
    /// Input tensors.
    pub inputs: Vec<Tensor>,
    /// Requested outputs (`None`: all).
    pub outputs: Option<Vec<RequestedOutput>>,
    /// Every output in binary form (raw requests, `binary_data_output`).
    pub all_binary: bool,
}

fn check_parameters(p: &Map<String, Value>, path: &str) -> Result<(), ApiError> {
    for (k, v) in p {
        if !(v.is_string() || v.is_number() || v.is_boolean()) {
            return Err(ApiError::invalid(format!(
                "{path}.{k}: parameter values must be strings, numbers or booleans"
            )));
        }
    }
    Ok(())
}

/// Decodes a request body. `header_len` is `Inference-Header-Content-Length` when present;
/// `Some(0)` means a raw binary body for a one-input model (batch 1).
pub fn decode_request(body: &[u8], header_len: Option<usize>, sig: &Signature) -> Result<InferRequest, ApiError> {
    if header_len == Some(0) {
        return decode_raw(body, sig);
    }
    let (json, mut binary) = match header_len {
        Some(n) if n > body.len() => {
            return Err(ApiError::invalid(format!(
                "Inference-Header-Content-Length is {n} but the body has {} bytes",
                body.len()
            )))
        }
        Some(n) => (&body[..n], &body[n..]),
        None => (body, &body[body.len()..]),
    };
    let req: RequestJson =
        serde_json::from_slice(json).map_err(|e| ApiError::invalid(format!("malformed inference request: {e}")))?;
    check_parameters(&req.parameters, "parameters")?;
    let mut inputs = Vec::with_capacity(req.inputs.len());
    let mut seen = HashMap::new();
    for (i, input) in req.inputs.into_iter().enumerate() {
        let path = format!("inputs[{i}] ({:?})", input.name);
        if seen.insert(input.name.clone(), i).is_some() {
            return Err(ApiError::invalid(format!("{path}: duplicate input name")));
        }
        check_parameters(&input.parameters, &format!("{path}.parameters"))?;
        let dtype = DType::from_name(&input.datatype)
            .ok_or_else(|| ApiError::invalid(format!("{path}: unknown datatype {:?}", input.datatype)))?;
        let count = element_count(&input.shape, &path)?;
        let shape: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
        let binary_size = match input.parameters.get("binary_data_size") {
            None => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                ApiError::invalid(format!("{path}.parameters.binary_data_size: expected a non-negative integer"))
            })? as usize),
        };
        let data = match (binary_size, &input.data) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(format!("{path}: both data and binary_data_size given")))
            }
            (Some(n), None) => {
                if n > binary.len() {
                    return Err(ApiError::invalid(format!(
                        "{path}: binary_data_size is {n} but only {} binary bytes remain",
                        binary.len()
                    )));
                }
                let (mine, rest) = binary.split_at(n);
                binary = rest;
                TensorData::from_le_bytes(dtype, mine, count).map_err(|e| ApiError::invalid(format!("{path}: {e}")))?
            }
            (None, Some(v)) => {
                let mut leaves = Vec::new();
                nested_shape(v, &path, &mut leaves)?;
                if leaves.len() != count {
                    return Err(ApiError::invalid(format!(
                        "{path}: data has {} elements, shape {:?} needs {count}",
                        leaves.len(),
                        input.shape
                    )));
                }
                leaves_to_data(&leaves, dtype, &format!("{path}.data"))?
            }
            (None, None) => return Err(ApiError::invalid(format!("{path}: missing data (or binary_data_size)"))),
        };
        inputs.push(Tensor { name: input.name, shape, data });
    }
    if !binary.is_empty() {
        return Err(ApiError::invalid(format!(
            "{} binary bytes follow the JSON but no input claims them",
            binary.len()
        )));
    }
    if let Some(outs) = &req.outputs {
        for (i, o) in outs.iter().enumerate() {
            check_parameters(&o.parameters, &format!("outputs[{i}].parameters"))?;
            if !sig.outputs.iter().any(|s| s.name == o.name) {
                let names: Vec<&str> = sig.outputs.iter().map(|s| s.name.as_str()).collect();
                return Err(ApiError::invalid(format!(
                    "outputs[{i}]: unknown output {:?}; the model's outputs are {names:?}",
                    o.name
                )));
            }
        }
    }
    let all_binary = req.parameters.get("binary_data_output").and_then(Value::as_bool).unwrap_or(false);
    Ok(InferRequest { id: req.id, parameters: req.parameters, inputs, outputs: req.outputs, all_binary })
}

fn element_count(shape: &[i64], path: &str) -> Result<usize, ApiError> {
    let mut n: usize = 1;
    for &d in shape {
        if d < 0 {
            return Err(ApiError::invalid(format!("{path}: shape {shape:?} has a negative dimension")));
        }
        n = n.checked_mul(d as usize).filter(|n| *n <= MAX_ELEMENTS).ok_or_else(|| {
            ApiError::invalid(format!("{path}: shape {shape:?} has more than {MAX_ELEMENTS} elements"))
        })?;
    }
    Ok(n)
}

fn decode_raw(body: &[u8], sig: &Signature) -> Result<InferRequest, ApiError> {
    let [input] = sig.inputs.as_slice() else {
        return Err(ApiError::invalid(
            "a raw binary request (Inference-Header-Content-Length: 0) needs a one-input model",
        ));
    };
    let size =
        input.datatype.size().ok_or_else(|| ApiError::invalid("raw binary requests cannot carry BYTES inputs"))?;
    let mut shape: Vec<usize> = vec![1];
    shape.extend(input.shape.iter().skip(1).map(|&d| d.max(1) as usize));
    let count: usize = shape.iter().product();
    if body.len() != count * size {
        return Err(ApiError::invalid(format!(
            "raw binary request: {} bytes, expected {} ({count} {} values for shape {shape:?})",
            body.len(),
            count * size,
            input.datatype
        )));
    }
    let data = TensorData::from_le_bytes(input.datatype, body, count).map_err(ApiError::invalid)?;
    Ok(InferRequest {
        id: None,
        parameters: Map::new(),
        inputs: vec![Tensor { name: input.name.clone(), shape, data }],
        outputs: None,
        all_binary: true,
    })
}

/// An encoded response: the body and, when binary outputs follow the JSON, its length.
pub struct EncodedResponse {
    /// JSON header, then binary outputs.
    pub body: Vec<u8>,
    /// Length of the JSON header when binary data follows.
    pub header_len: Option<usize>,
}

/// Top-k `"score:index:label"` strings per row (Triton's classification extension).
fn classify(t: &Tensor, k: usize, labels: &[String]) -> Tensor {
    let values = t.data.to_f32().unwrap_or_default();
    let rows = t.rows();
    let width = values.len() / rows.max(1);
    let k = k.min(width).max(1);
    let mut out = Vec::with_capacity(rows * k);
    for row in values.chunks(width.max(1)) {
        let mut idx: Vec<usize> = (0..row.len()).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        for &i in idx.iter().take(k) {
            let label = labels.get(i).map(|l| format!(":{l}")).unwrap_or_default();
            out.push(format!("{}:{i}{label}", row[i]).into_bytes());
        }
    }
    Tensor { name: t.name.clone(), shape: vec![rows, k], data: TensorData::Bytes(out) }
}

/// Encodes the response for `outputs` (every output of the signature, in order).
pub fn encode_response(
    model: &str,
    version: u64,
    req: &InferRequest,
    outputs: Vec<Tensor>,
    class_names: &[String],
) -> Result<EncodedResponse, ApiError> {
    let selected: Vec<(Tensor, bool)> = match &req.outputs {
        None => outputs.into_iter().map(|t| (t, req.all_binary)).collect(),
        Some(wanted) => {
            let mut sel = Vec::new();
            for w in wanted {
                let t = outputs.iter().find(|t| t.name == w.name).cloned().expect("names validated at decode");
                let t = match w.parameters.get("classification") {
                    None => t,
                    Some(k) => {
                        let k = k.as_u64().filter(|k| *k > 0).ok_or_else(|| {
                            ApiError::invalid(format!(
                                "outputs {:?}: classification must be a positive integer",
                                w.name
                            ))
                        })?;
                        classify(&t, k as usize, class_names)
                    }
                };
                let binary = w.parameters.get("binary_data").and_then(Value::as_bool).unwrap_or(req.all_binary);
                sel.push((t, binary));
            }
            sel
        }
    };
    let mut blobs = Vec::new();
    let mut body = Vec::with_capacity(256 + selected.iter().map(|(t, _)| t.data.len() * 12).sum::<usize>());
    body.extend_from_slice(b"{\"model_name\":");
    serde_json::to_writer(&mut body, model).expect("write");
    body.extend_from_slice(format!(",\"model_version\":\"{version}\"").as_bytes());
    if let Some(id) = &req.id {
        body.extend_from_slice(b",\"id\":");
        serde_json::to_writer(&mut body, id).expect("write");
    }
    body.extend_from_slice(b",\"outputs\":[");
    for (i, (t, binary)) in selected.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"name\":");
        serde_json::to_writer(&mut body, &t.name).expect("write");
        body.extend_from_slice(format!(",\"datatype\":\"{}\",\"shape\":", t.dtype()).as_bytes());
        serde_json::to_writer(&mut body, &t.shape).expect("write");
        if *binary {
            let bytes = t.data.to_le_bytes();
            body.extend_from_slice(format!(",\"parameters\":{{\"binary_data_size\":{}}}}}", bytes.len()).as_bytes());
            blobs.push(bytes);
        } else {
            body.extend_from_slice(b",\"data\":");
            serde_json::to_writer(&mut body, &FlatJson { data: &t.data, b64: false }).expect("write");
            body.push(b'}');
        }
    }
    body.extend_from_slice(b"]}");
    if blobs.is_empty() {
        return Ok(EncodedResponse { body, header_len: None });
    }
    let header_len = body.len();
    for b in blobs {
        body.extend_from_slice(&b);
    }
    Ok(EncodedResponse { body, header_len: Some(header_len) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lathe_types::TensorSignature;

    fn sig() -> Signature {
        Signature {
            inputs: vec![TensorSignature { name: "input".into(), datatype: DType::F32, shape: vec![-1, 2] }],
            outputs: vec![TensorSignature { name: "probabilities".into(), datatype: DType::F32, shape: vec![-1, 3] }],
        }
    }

    #[test]
    fn json_binary_and_raw_requests_decode_alike() {
        let json = br#"{"id":"a","inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[[1.5,2]]}]}"#;
        let r = decode_request(json, None, &sig()).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::F32(vec![1.5, 2.0]));
        let header =
            br#"{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&1.5f32.to_le_bytes());
        body.extend_from_slice(&2f32.to_le_bytes());
        let r = decode_request(&body, Some(header.len()), &sig()).unwrap();
        assert_eq!(r.inputs[0].data, TensorData::F32(vec![1.5, 2.0]));
        let r = decode_request(&body[header.len()..], Some(0), &sig()).unwrap();
        assert_eq!((r.inputs[0].shape.clone(), r.all_binary), (vec![1, 2], true));
    }

    #[test]
    fn bad_requests_name_the_problem() {
        let e = |b: &[u8], h| decode_request(b, h, &sig()).unwrap_err().message;
        assert!(e(b"{", None).starts_with("malformed inference request"));
        assert!(e(br#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1,2]}]}"#, None)
            .contains("data has 2 elements, shape [1, 3] needs 3"));
        assert!(e(br#"{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP99","data":[1,2]}]}"#, None)
            .contains("unknown datatype"));
        assert!(e(
            br#"{"inputs":[{"name":"input","shape":[4294967296,4294967296],"datatype":"FP32","data":[]}]}"#,
            None
        )
        .contains("more than"));
        assert!(e(
            br#"{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","parameters":{"binary_data_size":9}}]}"#,
            None
        )
        .contains("binary_data_size is 9"));
        assert!(e(b"abc", Some(0)).contains("raw binary request: 3 bytes, expected 8"));
        assert!(e(br#"{"inputs":[],"outputs":[{"name":"nope"}]}"#, None).contains("unknown output \"nope\""));
    }

    #[test]
    fn responses_put_binary_outputs_after_the_json() {
        let req = decode_request(br#"{"id":"x","inputs":[],"parameters":{"binary_data_output":true}}"#, None, &sig())
            .unwrap();
        let out = vec![Tensor {
            name: "probabilities".into(),
            shape: vec![1, 3],
            data: TensorData::F32(vec![0.5, 0.25, 0.25]),
        }];
        let r = encode_response("m", 2, &req, out, &[]).unwrap();
        let n = r.header_len.unwrap();
        let header: Value = serde_json::from_slice(&r.body[..n]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 12);
        assert_eq!(header["id"], "x");
        assert_eq!(&r.body[n..n + 4], &0.5f32.to_le_bytes());
    }
}
