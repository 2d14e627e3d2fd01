//! `POST /v1/models/{m}[/versions/{v}]/debug` (admin): one request passed through the
//! version's layers, each layer's output summarised (shape, min, max, mean, standard
//! deviation, NaN and infinity counts; the values themselves for small layers when
//! `"full_tensors": true`), and the weights' statistics.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use lathe_engine::LayerReport;
use lathe_formats::statistics::Moments;
use lathe_runtime::{LoadedVersion, Selector};
use lathe_types::{ApiError, ErrorKind};
use serde_json::{json, Map, Value};

use crate::body::{json_ok, read_body};
use crate::state::AppState;

/// Largest layer output (values) returned in full.
pub const FULL_TENSOR_LIMIT: usize = 4096;

/// Handles a debug request for `name` at `selector`.
pub async fn debug(st: &AppState, name: &str, selector: &Selector, body: Body) -> Result<Response, ApiError> {
    let loaded = st.manager.resolve(name, selector)?;
    let bytes = read_body(body, st.limits.max_body_bytes).await?;
    let (rest, full) = crate::tfs_codec::take_key(&bytes, "full_tensors")?;
    let full = match full {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(other) => return Err(ApiError::invalid(format!("full_tensors: expected true or false, got {other}"))),
    };
    let request = crate::tfs_codec::decode_predict(&rest, loaded.servable.signature())?;
    let (inputs, _) = crate::infer::conform(loaded.servable.signature(), request.inputs)?;
    let servable = loaded.servable.clone();
    let rx = st.observe.pool.submit(move || servable.inspect(&inputs))?;
    let reports = rx
        .await
        .map_err(|_| ApiError::new(ErrorKind::Internal, "the inspection thread stopped"))?
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "model {name:?} ({}) does not expose its layers; debug covers Lathe's own networks",
                loaded.servable.platform()
            ))
        })??;
    Ok(json_ok(&answer(&loaded, &reports, full)))
}

fn answer(loaded: &Arc<LoadedVersion>, reports: &[LayerReport], full: bool) -> Value {
    let layers: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut layer = summary(&r.output);
            layer.insert("name".into(), json!(r.name));
            layer.insert("output_shape".into(), json!(r.output_shape));
            if full && r.output.len() <= FULL_TENSOR_LIMIT {
                layer.insert("values".into(), json!(r.output));
            }
            Value::Object(layer)
        })
        .collect();
    let weights: Vec<Value> = reports
        .iter()
        .flat_map(|r| {
            r.parameters.iter().map(move |(name, shape, values)| {
                let mut w = summary(values);
                w.insert("name".into(), json!(format!("{} {name}", r.name)));
                w.insert("shape".into(), json!(shape));
                Value::Object(w)
            })
        })
        .collect();
    json!({
        "model_name": loaded.name,
        "model_version": loaded.version.to_string(),
        "layers": layers,
        "weights": weights,
        "full_tensor_limit": FULL_TENSOR_LIMIT,
    })
}

/// min, max, mean, std over the finite values; NaN and infinity counts.
fn summary(values: &[f32]) -> Map<String, Value> {
    let m = Moments::of(values);
    let finite = |v: f32| if v.is_finite() { json!(v) } else { Value::Null };
    let mut out = Map::new();
    out.insert("min".into(), finite(m.min));
    out.insert("max".into(), finite(m.max));
    out.insert("mean".into(), json!(m.mean));
    out.insert("std".into(), json!(m.std));
    out.insert("nan_count".into(), json!(m.nan));
    out.insert("inf_count".into(), json!(m.infinite));
    out
}
