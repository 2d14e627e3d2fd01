//! Shape inference: the output shape of every layer, or the first impossible one.

use super::reader::err;
use super::{LayerSpec, Padding, SpecError};

/// Shape of one sample (no batch dimension), channels last.
pub type Shape = Vec<usize>;

/// Output size along one axis of a window of `k` with stride `s` over `n` positions.
pub fn window_output(n: usize, k: usize, s: usize, padding: Padding) -> Option<usize> {
    match padding {
        Padding::Valid => (n >= k).then(|| (n - k) / s + 1),
        Padding::Same => Some(n.div_ceil(s)),
    }
}

/// Leading padding along one axis for `same` padding (the extra one goes at the end, as in Keras).
pub fn same_pad_before(n: usize, k: usize, s: usize) -> usize {
    let out = n.div_ceil(s);
    let total = ((out - 1) * s + k).saturating_sub(n);
    total / 2
}

/// A 2-D input seen as `[height, width, channels]`.
pub fn as_image(shape: &[usize]) -> Option<[usize; 3]> {
    match shape {
        [h, w] => Some([*h, *w, 1]),
        [h, w, c] => Some([*h, *w, *c]),
        _ => None,
    }
}

/// Returns the output shape of every layer in order, or the error of the first impossible one.
pub fn infer_shapes(input: &[usize], layers: &[LayerSpec]) -> Result<Vec<Shape>, SpecError> {
    let mut shapes = Vec::with_capacity(layers.len());
    let mut current: Shape = input.to_vec();
    for (i, layer) in layers.iter().enumerate() {
        let path = format!("layers[{i}]");
        current = layer_output(layer, &current, &path)?;
        shapes.push(current.clone());
    }
    Ok(shapes)
}

fn layer_output(layer: &LayerSpec, input: &[usize], path: &str) -> Result<Shape, SpecError> {
    let windowed = |k: [usize; 2], s: [usize; 2], padding: Padding, channels: Option<usize>| {
        let [h, w, c] = as_image(input).ok_or_else(|| {
            err(
                path,
                format!(
                    "{} expects an input of shape [height, width] or [height, width, channels], got {input:?}",
                    layer.type_name()
                ),
            )
        })?;
        let oh = window_output(h, k[0], s[0], padding);
        let ow = window_output(w, k[1], s[1], padding);
        match (oh, ow) {
            (Some(oh), Some(ow)) => Ok(vec![oh, ow, channels.unwrap_or(c)]),
            _ => Err(err(
                path,
                format!(
                    "impossible shape: a {}x{} window with valid padding does not fit the input {input:?}",
                    k[0], k[1]
                ),
            )),
        }
    };
    match layer {
        LayerSpec::Flatten => Ok(vec![input.iter().product()]),
        LayerSpec::Dense { units, .. } => {
            if input.len() != 1 {
                return Err(err(
                    path,
                    format!(
                        "impossible shape: dense expects a flat input, got {input:?}; add a flatten layer before it"
                    ),
                ));
            }
            Ok(vec![*units])
        }
        LayerSpec::Dropout { .. } | LayerSpec::BatchNorm { .. } | LayerSpec::Activation { .. } => Ok(input.to_vec()),
        LayerSpec::Conv2d { filters, kernel, stride, padding, .. } => {
            windowed(*kernel, *stride, *padding, Some(*filters))
        }
        LayerSpec::MaxPool2d { pool, stride, padding } | LayerSpec::AvgPool2d { pool, stride, padding } => {
            windowed(*pool, *stride, *padding, None)
        }
    }
}
