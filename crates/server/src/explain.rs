//! Explanations over KServe V1 (`:explain`) and the Open Inference Protocol V2 (`/explain`):
//! the request's inputs decoded as for inference, the options read from `parameters`
//! (`method`, `steps`, `target`, `window`), the work run on the explanation threads (busy →
//! 429), and the answer naming the method and the attributed output per row.

use std::sync::Arc;

use lathe_explain::{Explanation, Method, Options, Target};
use lathe_runtime::LoadedVersion;
use lathe_types::{ApiError, ErrorKind, Tensor, TensorData};
use serde_json::{json, Map, Value};

use crate::state::AppState;

/// Reads the explanation options from a request's `parameters`.
pub fn options(parameters: &Map<String, Value>) -> Result<Options, ApiError> {
    let mut o = Options::default();
    for (key, value) in parameters {
        let path = format!("parameters.{key}");
        match key.as_str() {
            "method" => o.method = Some(string(value, &path)?.parse()?),
            "steps" => o.steps = count(value, &path)?,
            "window" => o.window = count(value, &path)?,
            "target" => {
                o.target = match value {
                    Value::Number(_) => Target::Unit(count(value, &path)?),
                    Value::String(s) => Target::Name(s.clone()),
                    other => {
                        return Err(ApiError::invalid(format!("{path}: expected a class index or name, got {other}")))
                    }
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "parameters: unknown key {other:?}; expected method, steps, target or window"
                )))
            }
        }
    }
    Ok(o)
}

fn string<'a>(v: &'a Value, path: &str) -> Result<&'a str, ApiError> {
    v.as_str().ok_or_else(|| ApiError::invalid(format!("{path}: expected a string, got {v}")))
}

fn count(v: &Value, path: &str) -> Result<usize, ApiError> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| ApiError::invalid(format!("{path}: expected a non-negative integer, got {v}")))
}

/// A KServe V1 body without its `parameters` (which `:predict` does not take), and them.
pub fn split_parameters(bytes: &[u8]) -> Result<(Vec<u8>, Map<String, Value>), ApiError> {
    let (rest, parameters) = crate::tfs_codec::take_key(bytes, "parameters")?;
    match parameters {
        None => Ok((rest, Map::new())),
        Some(Value::Object(p)) => Ok((rest, p)),
        Some(other) => Err(ApiError::invalid(format!("parameters: expected an object, got {other}"))),
    }
}

/// Conforms `inputs` and explains each row on the explanation threads.
pub async fn run(
    st: &AppState,
    loaded: &Arc<LoadedVersion>,
    inputs: Vec<Tensor>,
    mut options: Options,
) -> Result<Vec<Explanation>, ApiError> {
    options.deadline = Some(std::time::Instant::now() + st.limits.request_timeout);
    if loaded.generation.is_some() {
        return Err(ApiError::invalid("explanations attribute numeric inputs; this is a text-generation model"));
    }
    let (inputs, _) = crate::infer::conform(loaded.servable.signature(), inputs)?;
    let (servable, names) = (loaded.servable.clone(), loaded.manifest.feature_names().to_vec());
    let rx = st.observe.pool.submit(move || lathe_explain::explain(servable.as_ref(), inputs, &names, &options))?;
    let stopped = || ApiError::new(ErrorKind::Internal, "the explanation thread stopped");
    crate::infer::within_timeout(st, "explanation", async { rx.await.map_err(|_| stopped())? }).await
}

/// The KServe V1 answer: `{"explanations": [...]}`, one object per row.
pub fn v1_body(explanations: &[Explanation]) -> Value {
    let rows: Vec<Value> = explanations
        .iter()
        .map(|e| {
            let mut row = summary(e);
            let attributions = match &e.attributions[..] {
                [single] => nested(single),
                many => Value::Object(many.iter().map(|t| (t.name.clone(), nested(t))).collect()),
            };
            row.insert("attributions".into(), attributions);
            Value::Object(row)
        })
        .collect();
    json!({ "explanations": rows })
}

/// The V2 answer: one output per input holding its attributions (`[rows, …input shape]`,
/// named `{input}_attributions`) and `explained_unit` (`[rows]`); the method in `parameters`,
/// the per-row facts (class, score, …) as a JSON string in `parameters.explanations`.
pub fn v2_body(model: &str, version: u64, id: Option<&str>, explanations: &[Explanation]) -> Value {
    let rows = explanations.len();
    let mut outputs: Vec<Value> = Vec::new();
    if let Some(first) = explanations.first() {
        for (i, t) in first.attributions.iter().enumerate() {
            let data: Vec<f32> = explanations.iter().flat_map(|e| f32_values(&e.attributions[i])).collect();
            let shape: Vec<usize> = std::iter::once(rows).chain(t.shape.iter().copied()).collect();
            outputs.push(
                json!({ "name": format!("{}_attributions", t.name), "datatype": "FP32", "shape": shape, "data": data }),
            );
        }
    }
    let units: Vec<usize> = explanations.iter().map(|e| e.unit).collect();
    outputs.push(json!({ "name": "explained_unit", "datatype": "INT64", "shape": [rows], "data": units }));
    let per_row: Vec<Value> = explanations.iter().map(|e| Value::Object(summary(e))).collect();
    let method = explanations.first().map_or("", |e| e.method.name());
    let mut body = json!({
        "model_name": model,
        "model_version": version.to_string(),
        "outputs": outputs,
        "parameters": {
            "method": method,
            "explanations": serde_json::to_string(&per_row).expect("serialise"),
        },
    });
    if let Some(id) = id {
        body["id"] = Value::String(id.to_string());
    }
    body
}

/// What every protocol reports of one row besides the attributions.
fn summary(e: &Explanation) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("method".into(), json!(e.method.name()));
    m.insert("output".into(), json!(e.output));
    m.insert("unit".into(), json!(e.unit));
    if let Some(class) = &e.class {
        m.insert("class".into(), json!(class));
    }
    m.insert("score".into(), json!(e.score));
    if let Some(b) = e.baseline_score {
        m.insert("baseline_score".into(), json!(b));
    }
    if let Some(d) = e.convergence_delta {
        m.insert("convergence_delta".into(), json!(d));
    }
    if !e.features.is_empty() {
        let features: Vec<Value> =
            e.features.iter().map(|(name, a)| json!({ "feature": name, "attribution": a })).collect();
        m.insert("features".into(), Value::Array(features));
    }
    if e.method == Method::IntegratedGradients {
        m.insert("baseline".into(), json!("training means of a standardised table, else zeros"));
    }
    m
}

fn f32_values(t: &Tensor) -> Vec<f32> {
    match &t.data {
        TensorData::F32(v) => v.clone(),
        other => other.to_f32().unwrap_or_default(),
    }
}

/// A tensor's values nested by its shape (a number for a scalar).
fn nested(t: &Tensor) -> Value {
    let values = f32_values(t);
    fn build(values: &[f32], shape: &[usize]) -> Value {
        match shape {
            [] => json!(values.first().copied().unwrap_or(0.0)),
            [_] => json!(values),
            [n, rest @ ..] => {
                let step = values.len() / (*n).max(1);
                Value::Array(values.chunks(step.max(1)).map(|c| build(c, rest)).collect())
            }
        }
    }
    let shape: Vec<usize> = if t.shape.iter().product::<usize>() == values.len() { t.shape.clone() } else { vec![] };
    if shape.is_empty() && values.len() > 1 {
        return json!(values);
    }
    build(&values, &shape)
}
