//! Explanations of a model's outputs, through the engine contract only.
//!
//! - Integrated gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep
//!   Networks", 2017), integrated by Gauss–Legendre quadrature as Captum does by default,
//!   on the engine's own backward pass ([`lathe_engine::Servable::output_gradients`]);
//! - saliency, the absolute gradient at the input (Simonyan, Vedaldi & Zisserman, "Deep Inside
//!   Convolutional Networks", 2013);
//! - occlusion (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks",
//!   2014), for engines without a backward pass: windows of an image, or a table's columns,
//!   set to the baseline, and the drop of the output measured with ordinary inference.
//!
//! Attributions are shaped like the request's inputs; a table's one-hot features are summed
//! into their column.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod gradients;
mod occlusion;
mod options;
mod quadrature;
mod target;

pub use options::{Method, Options, Target, DEFAULT_STEPS, MAX_ROWS, MAX_STEPS};

use lathe_engine::Servable;
use lathe_types::{ApiError, DType, Tensor, TensorData};

/// The explanation of one row.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// How the attributions were computed.
    pub method: Method,
    /// Name of the output tensor attributed.
    pub output: String,
    /// The attributed unit of that output (a class index, or 0).
    pub unit: usize,
    /// The class the unit stands for, for classifiers.
    pub class: Option<String>,
    /// The attributed output's value for the row.
    pub score: f32,
    /// Its value at the baseline (integrated gradients, occlusion).
    pub baseline_score: Option<f32>,
    /// Integrated gradients' completeness gap: Σ attributions − (score − baseline score).
    pub convergence_delta: Option<f32>,
    /// One tensor per signature input, shaped like that input's row (no batch dimension).
    pub attributions: Vec<Tensor>,
    /// Named features (a table's columns, or the features of a numeric row) with their
    /// attribution, largest magnitude first; empty for images.
    pub features: Vec<(String, f32)>,
}

/// Explains each row of `inputs` (conformed to the signature, at most [`MAX_ROWS`] rows).
/// `feature_names` names the features of a single numeric input (a CSV table's columns); it
/// is ignored when its length does not match.
///
/// # Errors
/// Invalid arguments (too many rows or steps, an unknown target, text inputs, a gradient
/// method on an engine without a backward pass), or the engine's errors.
pub fn explain(
    servable: &dyn Servable,
    inputs: Vec<Tensor>,
    feature_names: &[String],
    options: &Options,
) -> Result<Vec<Explanation>, ApiError> {
    options.check()?;
    let rows = inputs.first().map_or(0, Tensor::rows);
    if rows > MAX_ROWS {
        return Err(ApiError::invalid(format!("explanations take at most {MAX_ROWS} rows per request, got {rows}")));
    }
    refuse_text(servable, &inputs)?;
    let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape[1..].to_vec()).collect();
    let names: Vec<String> = inputs.iter().map(|t| t.name.clone()).collect();
    let features = servable.preprocess(inputs)?;
    let targets = target::choose(servable, &features, &options.target)?;
    let layout = servable.feature_layout();
    let mut out = Vec::with_capacity(rows);
    for (row, target) in targets.into_iter().enumerate() {
        options::check_deadline(options.deadline)?;
        let raw = match options.method {
            Some(Method::Occlusion) => occlusion::explain_row(servable, &features, row, &target, &layout, options)?,
            Some(m) => gradients::explain_row(servable, &features, row, &target, m, options.steps)?
                .ok_or_else(|| no_backward_pass(m))?,
            None => match gradients::explain_row(
                servable,
                &features,
                row,
                &target,
                Method::IntegratedGradients,
                options.steps,
            )? {
                Some(r) => r,
                None => occlusion::explain_row(servable, &features, row, &target, &layout, options)?,
            },
        };
        out.push(shape_attributions(raw, target, &names, &shapes, &layout, feature_names));
    }
    Ok(out)
}

/// Attributions of one row over the features, before they are shaped like the inputs.
pub(crate) struct RawAttribution {
    pub(crate) method: Method,
    /// The signature input attributed (for tables, the encoded features of every input).
    pub(crate) input: usize,
    pub(crate) values: Vec<f32>,
    pub(crate) score: f32,
    pub(crate) baseline_score: Option<f32>,
    pub(crate) convergence_delta: Option<f32>,
}

fn no_backward_pass(m: Method) -> ApiError {
    ApiError::invalid(format!(
        "parameters.method: {} needs gradients, and this model's engine has no backward pass; use occlusion",
        m.name()
    ))
}

fn refuse_text(servable: &dyn Servable, inputs: &[Tensor]) -> Result<(), ApiError> {
    if servable.feature_layout().is_some() {
        return Ok(());
    }
    match inputs.iter().find(|t| matches!(t.data.dtype(), DType::Bytes)) {
        Some(t) => Err(ApiError::invalid(format!(
            "input {:?} is text; explanations attribute numeric inputs (images, tables)",
            t.name
        ))),
        None => Ok(()),
    }
}

/// Sums a table's features into their columns, or reshapes a single input's values.
fn shape_attributions(
    raw: RawAttribution,
    target: target::Chosen,
    names: &[String],
    shapes: &[Vec<usize>],
    layout: &Option<Vec<(usize, String)>>,
    feature_names: &[String],
) -> Explanation {
    let (attributions, features) = match layout {
        Some(layout) => {
            let mut per_input = vec![0f32; names.len()];
            for ((input, _), v) in layout.iter().zip(&raw.values) {
                per_input[*input] += v;
            }
            let tensors = names
                .iter()
                .zip(shapes)
                .zip(&per_input)
                .map(|((n, s), &v)| Tensor { name: n.clone(), shape: s.clone(), data: TensorData::F32(vec![v]) })
                .collect();
            (tensors, ranked(names.iter().cloned().zip(per_input).collect()))
        }
        None => {
            let named = feature_names.len() == raw.values.len() && names.len() == 1;
            let features = if named {
                ranked(feature_names.iter().cloned().zip(raw.values.iter().copied()).collect())
            } else {
                Vec::new()
            };
            let tensor = Tensor {
                name: names.get(raw.input).cloned().unwrap_or_default(),
                shape: shapes.get(raw.input).cloned().unwrap_or_default(),
                data: TensorData::F32(raw.values),
            };
            (vec![tensor], features)
        }
    };
    Explanation {
        method: raw.method,
        output: target.output,
        unit: target.unit,
        class: target.class,
        score: raw.score,
        baseline_score: raw.baseline_score,
        convergence_delta: raw.convergence_delta,
        attributions,
        features,
    }
}

fn ranked(mut features: Vec<(String, f32)>) -> Vec<(String, f32)> {
    features.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    features
}
