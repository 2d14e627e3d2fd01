//! The protocol-independent part of an inference request: route, validate and convert the
//! inputs against the signature, queue (in chunks of at most `max_batch_size` rows), await.

use std::sync::Arc;

use lathe_runtime::LoadedVersion;
use lathe_types::{ApiError, DType, ErrorKind, Signature, Tensor, TensorData, TensorSignature};

use crate::state::AppState;

/// Sends a copy of `inputs` to a shadow version in the background; its answer is discarded,
/// its queue and compute statistics and a request count (`api="shadow"`) are kept.
pub fn mirror(state: &AppState, shadow: Option<Arc<LoadedVersion>>, inputs: &[Tensor], protocol: &'static str) {
    let Some(shadow) = shadow else { return };
    let (st, inputs) = (state.clone(), inputs.to_vec());
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let code = match run(&st, &shadow, inputs).await {
            Ok(_) => 200,
            Err(e) => crate::error::status_of(e.kind).as_u16(),
        };
        let labels = crate::metrics::RequestLabels {
            model: shadow.name.clone(),
            version: shadow.version.to_string(),
            protocol,
            api: "shadow",
            code,
        };
        st.metrics.record(labels, started.elapsed().as_secs_f64());
    });
}

/// Runs inputs on a resolved version.
pub async fn run(state: &AppState, version: &Arc<LoadedVersion>, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
    let (inputs, rows) = conform(version.servable.signature(), inputs)?;
    let inputs = preprocess(state, version, inputs).await?;
    let monitor = state.observe.monitor(version, state.manager.repository().root()).await;
    let watched = monitor.has_statistics().then(|| inputs.clone());
    let outputs = submit(state, version, inputs, rows).await?;
    if let Some(features) = watched {
        monitor.record(&features, &outputs);
    }
    Ok(outputs)
}

/// Runs the servable's preprocessing (tokenisation) of conformed inputs on the blocking pool:
/// off the async executor and off the compute threads.
pub async fn preprocess(
    state: &AppState,
    version: &Arc<LoadedVersion>,
    inputs: Vec<Tensor>,
) -> Result<Vec<Tensor>, ApiError> {
    if !version.servable.preprocesses() {
        return Ok(inputs);
    }
    let servable = version.servable.clone();
    let started = std::time::Instant::now();
    let inputs = tokio::task::spawn_blocking(move || servable.preprocess(inputs))
        .await
        .map_err(|_| ApiError::new(ErrorKind::Internal, "preprocessing failed"))??;
    state.metrics.record_preprocess(&version.name, started.elapsed().as_secs_f64());
    Ok(inputs)
}

/// Queues already preprocessed inputs of `rows` rows (split into batches of at most
/// `max_batch_size`) and waits for the outputs, within the request timeout.
pub async fn submit(
    state: &AppState,
    version: &Arc<LoadedVersion>,
    inputs: Vec<Tensor>,
    rows: usize,
) -> Result<Vec<Tensor>, ApiError> {
    let max = version.batcher.config().max_batch_size;
    let work = async {
        if rows <= max {
            let rx = version.batcher.submit(inputs, rows)?;
            return rx
                .await
                .map_err(|_| ApiError::new(ErrorKind::Internal, "the compute thread dropped the request"))?;
        }
        let mut receivers = Vec::new();
        for lo in (0..rows).step_by(max) {
            let n = max.min(rows - lo);
            let chunk = inputs.iter().map(|t| t.slice_rows(lo, n).expect("conformed inputs split into rows")).collect();
            receivers.push(version.batcher.submit(chunk, n)?);
        }
        let mut parts: Vec<Vec<Tensor>> = Vec::with_capacity(receivers.len());
        for rx in receivers {
            parts.push(
                rx.await
                    .map_err(|_| ApiError::new(ErrorKind::Internal, "the compute thread dropped the request"))??,
            );
        }
        Ok(concat_parts(parts))
    };
    within_timeout(state, "request", work).await
}

/// `work`'s result, or 504's error after the request timeout (`what` names the work).
pub async fn within_timeout<T>(
    state: &AppState,
    what: &str,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(state.limits.request_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(ApiError::new(
            ErrorKind::DeadlineExceeded,
            format!("the {what} took longer than {} ms", state.limits.request_timeout.as_millis()),
        )),
    }
}

/// Puts inputs in signature order, converts them to the signature's dtypes, checks shapes and
/// values; returns them with the number of rows.
pub fn conform(sig: &Signature, mut inputs: Vec<Tensor>) -> Result<(Vec<Tensor>, usize), ApiError> {
    if inputs.len() != sig.inputs.len() {
        let want: Vec<&str> = sig.inputs.iter().map(|s| s.name.as_str()).collect();
        let got: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
        return Err(ApiError::invalid(format!("expected inputs {want:?}, got {got:?}")));
    }
    let mut ordered = Vec::with_capacity(sig.inputs.len());
    let mut rows = None;
    for s in &sig.inputs {
        let pos = inputs.iter().position(|t| t.name == s.name).ok_or_else(|| {
            let got: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
            ApiError::invalid(format!("missing input {:?}; got {got:?}", s.name))
        })?;
        let t = conform_one(s, inputs.swap_remove(pos))?;
        match rows {
            None => rows = Some(t.rows()),
            Some(r) if r != t.rows() => {
                return Err(ApiError::invalid(format!("input {:?} has {} rows, other inputs {r}", s.name, t.rows())))
            }
            Some(_) => {}
        }
        ordered.push(t);
    }
    let rows = rows.unwrap_or(0);
    if rows == 0 {
        return Err(ApiError::invalid("the request has no rows (batch dimension 0)"));
    }
    Ok((ordered, rows))
}

fn conform_one(s: &TensorSignature, t: Tensor) -> Result<Tensor, ApiError> {
    let name = &s.name;
    let shape = conformed_shape(s, &t.shape)?;
    let rows = shape[0];
    let expected: usize = shape.iter().product();
    if t.data.len() != expected {
        return Err(ApiError::invalid(format!(
            "input {name:?}: {} values for shape {:?}, expected {expected}",
            t.data.len(),
            t.shape
        )));
    }
    if let Some(&fixed) = s.shape.first().filter(|&&d| d >= 0) {
        if rows as i64 != fixed {
            return Err(ApiError::invalid(format!(
                "input {name:?}: the model's first dimension is fixed at {fixed}; send {fixed} row(s) per request, \
                 got {rows}"
            )));
        }
    }
    let data = conformed_data(s, t.data)?;
    if let TensorData::F32(v) = &data {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(ApiError::invalid(format!(
                "input {name:?}: element {i} is {}, expected a finite number",
                v[i]
            )));
        }
    }
    Ok(Tensor { name: name.clone(), shape, data })
}

/// The shape an input is computed with. Where every dimension past the first is fixed, the
/// request may send them as they are or flattened; where some are symbolic (a sequence length),
/// the rank must match and the fixed ones must be equal.
fn conformed_shape(s: &TensorSignature, got: &[usize]) -> Result<Vec<usize>, ApiError> {
    let mismatch = || {
        ApiError::invalid(format!(
            "input {:?}: shape {got:?} does not match the model's {:?} (-1 = any size)",
            s.name, s.shape
        ))
    };
    let rows = *got.first().ok_or_else(mismatch)?;
    let exact =
        got.len() == s.shape.len() && got.iter().zip(&s.shape).skip(1).all(|(&g, &want)| want < 0 || g as i64 == want);
    if s.shape.iter().skip(1).any(|&d| d < 0) {
        return if exact { Ok(got.to_vec()) } else { Err(mismatch()) };
    }
    let per_row: usize = s.shape.iter().skip(1).map(|&d| d as usize).product();
    let flat = got.len() >= 2 && got[1..].iter().product::<usize>() == per_row;
    if !(exact || flat) {
        return Err(mismatch());
    }
    let mut shape = vec![rows];
    shape.extend(s.shape.iter().skip(1).map(|&d| d as usize));
    Ok(shape)
}

/// The data in the signature's type: numbers convert to FP32 and FP16 models' types; other
/// types must match.
fn conformed_data(s: &TensorSignature, data: TensorData) -> Result<TensorData, ApiError> {
    let name = &s.name;
    let not_numbers = |want: DType| {
        ApiError::invalid(format!("input {name:?}: datatype BYTES cannot be converted to the model's {want}"))
    };
    Ok(match (s.datatype, data) {
        (want, data) if data.dtype() == want => data,
        (DType::F32, data) => TensorData::F32(data.to_f32().ok_or_else(|| not_numbers(DType::F32))?),
        (DType::F16, data) => {
            let values = data.to_f32().ok_or_else(|| not_numbers(DType::F16))?;
            TensorData::F16(values.into_iter().map(|x| half::f16::from_f32(x).to_bits()).collect())
        }
        (want, data) => {
            return Err(ApiError::invalid(format!(
                "input {name:?}: datatype {} does not match the model's {want}",
                data.dtype()
            )))
        }
    })
}

fn concat_parts(parts: Vec<Vec<Tensor>>) -> Vec<Tensor> {
    let outputs = parts.first().map_or(0, Vec::len);
    (0..outputs)
        .map(|i| {
            let column: Vec<&Tensor> = parts.iter().map(|p| &p[i]).collect();
            Tensor::concat_rows(&column).expect("every chunk returns the same outputs")
        })
        .collect()
}
