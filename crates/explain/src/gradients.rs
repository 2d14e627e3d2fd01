//! Integrated gradients and saliency on the engine's backward pass.

use lathe_engine::Servable;
use lathe_types::{ApiError, Tensor};

use crate::quadrature::gauss_legendre;
use crate::target::{internal, Chosen};
use crate::{Method, RawAttribution};

/// Explains row `row` of `features` with a gradient method; `None` when the engine has no
/// backward pass.
pub(crate) fn explain_row(
    servable: &dyn Servable,
    features: &[Tensor],
    row: usize,
    target: &Chosen,
    method: Method,
    steps: usize,
) -> Result<Option<RawAttribution>, ApiError> {
    let Some(x) = feature_row(features, row)? else {
        return Ok(None);
    };
    let baseline = servable.baseline_features().filter(|b| b.len() == x.len()).unwrap_or_else(|| vec![0.0; x.len()]);
    let endpoints = [x.as_slice(), baseline.as_slice()].concat();
    let Some(result) = servable.output_gradients(&endpoints, 2, target.unit) else {
        return Ok(None);
    };
    let (values, grads) = result?;
    let (score, baseline_score) = (values[0], values[1]);
    let attribution = match method {
        Method::Saliency => RawAttribution {
            method,
            input: 0,
            values: grads[..x.len()].iter().map(|g| g.abs()).collect(),
            score,
            baseline_score: None,
            convergence_delta: None,
        },
        _ => {
            let values = integrated_gradients(servable, &x, &baseline, target.unit, steps)?;
            let sum: f64 = values.iter().map(|&v| v as f64).sum();
            let delta = sum - (score as f64 - baseline_score as f64);
            RawAttribution {
                method: Method::IntegratedGradients,
                input: 0,
                values,
                score,
                baseline_score: Some(baseline_score),
                convergence_delta: Some(delta as f32),
            }
        }
    };
    Ok(Some(attribution))
}

/// `(x − b) · ∫₀¹ ∂f/∂x (b + α (x − b)) dα`, the integral by `steps`-point Gauss–Legendre
/// quadrature, all points in one batch.
fn integrated_gradients(
    servable: &dyn Servable,
    x: &[f32],
    baseline: &[f32],
    unit: usize,
    steps: usize,
) -> Result<Vec<f32>, ApiError> {
    let nodes = gauss_legendre(steps);
    let mut path = Vec::with_capacity(steps * x.len());
    for &(alpha, _) in &nodes {
        path.extend(x.iter().zip(baseline).map(|(&xi, &bi)| bi + alpha as f32 * (xi - bi)));
    }
    let (_, grads) = servable
        .output_gradients(&path, steps, unit)
        .ok_or_else(|| internal("the engine stopped offering gradients"))??;
    let mut integral = vec![0f64; x.len()];
    for (&(_, weight), g) in nodes.iter().zip(grads.chunks_exact(x.len())) {
        integral.iter_mut().zip(g).for_each(|(acc, &gi)| *acc += weight * gi as f64);
    }
    Ok(integral.iter().zip(x.iter().zip(baseline)).map(|(i, (&xi, &bi))| (i * (xi - bi) as f64) as f32).collect())
}

/// Row `row` of a single numeric feature tensor; `None` when the features are not one
/// numeric tensor (gradients need one).
fn feature_row(features: &[Tensor], row: usize) -> Result<Option<Vec<f32>>, ApiError> {
    let [t] = features else { return Ok(None) };
    let Some(values) = t.data.to_f32() else { return Ok(None) };
    let width = values.len() / t.rows().max(1);
    Ok(Some(values[row * width..(row + 1) * width].to_vec()))
}
