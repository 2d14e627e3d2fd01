//! Occlusion: parts of the input set to the baseline, the output's drop measured by inference.

use lathe_engine::Servable;
use lathe_types::{ApiError, Tensor, TensorData};

use crate::target::Chosen;
use crate::{Method, Options, RawAttribution};

/// Occluded copies run per inference call.
const CHUNK: usize = 64;

/// Most occlusions (inference rows) per explained row; more is refused, naming the window.
pub const MAX_OCCLUSIONS: usize = 4096;

/// Explains row `row` of `features` by occlusion: a table's columns one at a time (a column's
/// drop shared among its one-hot features, so that they sum to it); an image's windows of
/// `options.window` pixels (stride half a window, all channels), each pixel getting the mean
/// drop of the windows that cover it; any other input one value at a time.
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
    let masks = masks(tensor, width, layout, options.window)?;
    let run = Run { servable, features, index, row, target, deadline: options.deadline };
    let score = run.scores(&[x.to_vec()])?[0];
    let (mut sum, mut count) = (vec![0f32; width], vec![0u32; width]);
    let chunk = if servable.batches() { CHUNK } else { 1 };
    for group in masks.chunks(chunk) {
        let variants: Vec<Vec<f32>> = group
            .iter()
            .map(|mask| {
                let mut v = x.to_vec();
                mask.iter().for_each(|&i| v[i] = baseline[i]);
                v
            })
            .collect();
        for (mask, s) in group.iter().zip(run.scores(&variants)?) {
            let share = if layout.is_some() { (score - s) / mask.len().max(1) as f32 } else { score - s };
            for &i in mask {
                sum[i] += share;
                count[i] += 1;
            }
        }
    }
    let values = sum.iter().zip(&count).map(|(s, &c)| if c == 0 { 0.0 } else { s / c as f32 }).collect();
    let baseline_score = run.scores(&[baseline])?[0];
    Ok(RawAttribution {
        method: Method::Occlusion,
        input: index,
        values,
        score,
        baseline_score: Some(baseline_score),
        convergence_delta: None,
    })
}

/// The occlusions of one row, at most [`MAX_OCCLUSIONS`].
fn masks(
    tensor: &Tensor,
    width: usize,
    layout: &Option<Vec<(usize, String)>>,
    window: usize,
) -> Result<Vec<Vec<usize>>, ApiError> {
    let masks = match layout {
        Some(layout) => column_masks(layout),
        None => match spatial(&tensor.shape[1..]) {
            Some(grid) => {
                let n = window_count(grid.h, window) * window_count(grid.w, window);
                if n > MAX_OCCLUSIONS {
                    return Err(ApiError::invalid(format!(
                        "parameters.window: {window} gives {n} windows on a {}x{} image, above {MAX_OCCLUSIONS}; \
                         give a larger window",
                        grid.h, grid.w
                    )));
                }
                window_masks(grid, window)
            }
            None if width > MAX_OCCLUSIONS => {
                return Err(ApiError::invalid(format!(
                    "parameters.method: occlusion takes at most {MAX_OCCLUSIONS} values of a flat input, \
                     {:?} has {width}",
                    tensor.name
                )))
            }
            None => (0..width).map(|i| vec![i]).collect(),
        },
    };
    Ok(masks)
}

/// One explained row's inference runs: the attributed tensor's row replaced by variants,
/// other inputs held at the row's values.
struct Run<'a> {
    servable: &'a dyn Servable,
    features: &'a [Tensor],
    index: usize,
    row: usize,
    target: &'a Chosen,
    deadline: Option<std::time::Instant>,
}

impl Run<'_> {
    /// The attributed unit for each variant, in one inference call.
    fn scores(&self, variants: &[Vec<f32>]) -> Result<Vec<f32>, ApiError> {
        crate::options::check_deadline(self.deadline)?;
        let n = variants.len();
        let inputs: Vec<Tensor> = self
            .features
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut shape = t.shape.clone();
                shape[0] = n;
                if i == self.index {
                    return Tensor { name: t.name.clone(), shape, data: TensorData::F32(variants.concat()) };
                }
                let one = t.slice_rows(self.row, 1).expect("the explained row exists");
                Tensor::concat_rows(&vec![&one; n]).expect("copies of one row stack")
            })
            .collect();
        self.target.values(&self.servable.infer(&inputs)?)
    }
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

/// Start positions of windows of side `side` along `len`: stride half a side, the last one
/// flush with the edge.
fn window_starts(len: usize, side: usize) -> Vec<usize> {
    let last = len.saturating_sub(side);
    let mut s: Vec<usize> = (0..=last).step_by((side / 2).max(1)).collect();
    if s.last() != Some(&last) {
        s.push(last);
    }
    s
}

fn window_count(len: usize, side: usize) -> usize {
    window_starts(len, side).len()
}

/// Square windows of side `side` (clipped at the edges), stride half a side, every channel.
fn window_masks(g: Grid, side: usize) -> Vec<Vec<usize>> {
    let starts = |len: usize| window_starts(len, side);
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
