//! Occlusion: parts of the input set to the baseline, the output's drop measured by inference.

use lathe_engine::Servable;
use lathe_types::{ApiError, Tensor, TensorData};

use crate::target::Chosen;
use crate::{Method, Options, RawAttribution};

/// Occluded copies run per inference call.
const CHUNK: usize = 64;

/// Explains row `row` of `features` by occlusion: a table's columns one at a time; an image's
/// windows of `options.window` pixels (stride half a window, all channels), each pixel getting
/// the mean drop of the windows that cover it; any other input one value at a time.
pub(crate) fn explain_row(
    servable: &dyn Servable,
    features: &[Tensor],
    row: usize,
    target: &Chosen,
    layout: &Option<Vec<(usize, String)>>,
    options: &Options,
) -> Result<RawAttribution, ApiError> {
    let index = features
        .iter()
        .position(|t| matches!(t.data, TensorData::F32(_)))
        .ok_or_else(|| ApiError::invalid("parameters.method: occlusion takes an FP32 input, and the model has none"))?;
    let tensor = &features[index];
    let width = tensor.data.len() / tensor.rows().max(1);
    let TensorData::F32(all) = &tensor.data else { unreachable!("checked above") };
    let x = &all[row * width..(row + 1) * width];
    let baseline = servable.baseline_features().filter(|b| b.len() == width).unwrap_or_else(|| vec![0.0; width]);
    let masks = match layout {
        Some(layout) => column_masks(layout),
        None => match spatial(&tensor.shape[1..]) {
            Some(grid) => window_masks(grid, options.window),
            None => (0..width).map(|i| vec![i]).collect(),
        },
    };
    let mut variants: Vec<Vec<f32>> = vec![x.to_vec()];
    for mask in &masks {
        let mut v = x.to_vec();
        mask.iter().for_each(|&i| v[i] = baseline[i]);
        variants.push(v);
    }
    let scores = run_variants(servable, features, index, row, &variants, target)?;
    let score = scores[0];
    let (mut sum, mut count) = (vec![0f32; width], vec![0u32; width]);
    for (mask, s) in masks.iter().zip(&scores[1..]) {
        for &i in mask {
            sum[i] += score - s;
            count[i] += 1;
        }
    }
    let values = sum.iter().zip(&count).map(|(s, &c)| if c == 0 { 0.0 } else { s / c as f32 }).collect();
    let baseline_score = run_variants(servable, features, index, row, &[baseline], target)?[0];
    Ok(RawAttribution {
        method: Method::Occlusion,
        values,
        score,
        baseline_score: Some(baseline_score),
        convergence_delta: None,
    })
}

/// The attributed unit for each variant of the attributed tensor's row, other inputs held at
/// the row's values; one run per [`CHUNK`] variants (one per variant when the model does not
/// batch).
fn run_variants(
    servable: &dyn Servable,
    features: &[Tensor],
    index: usize,
    row: usize,
    variants: &[Vec<f32>],
    target: &Chosen,
) -> Result<Vec<f32>, ApiError> {
    let chunk = if servable.batches() { CHUNK } else { 1 };
    let mut out = Vec::with_capacity(variants.len());
    for part in variants.chunks(chunk) {
        let n = part.len();
        let inputs: Vec<Tensor> = features
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut shape = t.shape.clone();
                shape[0] = n;
                if i == index {
                    return Ok(Tensor { name: t.name.clone(), shape, data: TensorData::F32(part.concat()) });
                }
                let one = t.slice_rows(row, 1).ok_or_else(|| ApiError::invalid("row out of range"))?;
                let copies = vec![&one; n];
                Ok(Tensor::concat_rows(&copies).expect("copies of one row stack"))
            })
            .collect::<Result<_, ApiError>>()?;
        out.extend(target.values(&servable.infer(&inputs)?)?);
    }
    Ok(out)
}

/// Each column's features (a table).
fn column_masks(layout: &[(usize, String)]) -> Vec<Vec<usize>> {
    let columns = layout.iter().map(|(c, _)| c + 1).max().unwrap_or(0);
    (0..columns)
        .map(|c| layout.iter().enumerate().filter(|(_, (col, _))| *col == c).map(|(i, _)| i).collect())
        .collect()
}

/// Height, width, channels and whether channels come first, for image-shaped rows:
/// `[h, w]`, `[h, w, c]` (c ≤ 4) or `[c, h, w]` (c ≤ 4).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Grid {
    h: usize,
    w: usize,
    c: usize,
    channels_first: bool,
}

fn spatial(shape: &[usize]) -> Option<Grid> {
    match *shape {
        [h, w] if h > 1 && w > 1 => Some(Grid { h, w, c: 1, channels_first: false }),
        [c, h, w] if c <= 4 && h > 4 && w > 4 => Some(Grid { h, w, c, channels_first: true }),
        [h, w, c] if c <= 4 && h > 1 && w > 1 => Some(Grid { h, w, c, channels_first: false }),
        _ => None,
    }
}

/// Square windows of side `side` (clipped at the edges), stride half a side, every channel.
fn window_masks(g: Grid, side: usize) -> Vec<Vec<usize>> {
    let stride = (side / 2).max(1);
    let starts = |len: usize| -> Vec<usize> {
        let last = len.saturating_sub(side);
        let mut s: Vec<usize> = (0..=last).step_by(stride).collect();
        if s.last() != Some(&last) {
            s.push(last);
        }
        s
    };
    let mut masks = Vec::new();
    for y0 in starts(g.h) {
        for x0 in starts(g.w) {
            let mut m = Vec::new();
            for y in y0..(y0 + side).min(g.h) {
                for x in x0..(x0 + side).min(g.w) {
                    for ch in 0..g.c {
                        m.push(if g.channels_first { (ch * g.h + y) * g.w + x } else { (y * g.w + x) * g.c + ch });
                    }
                }
            }
            masks.push(m);
        }
    }
    masks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_pixel_of_an_mnist_image() {
        let g = spatial(&[28, 28]).unwrap();
        let masks = window_masks(g, 4);
        assert_eq!(masks.len(), 13 * 13);
        let mut covered = vec![0; 784];
        masks.iter().flatten().for_each(|&i| covered[i] += 1);
        assert!(covered.iter().all(|&c| c >= 1));
        assert!(spatial(&[1, 28, 28]).unwrap().channels_first);
        assert_eq!(spatial(&[784]), None);
    }
}
