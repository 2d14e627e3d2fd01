//! The layer kinds of the native engine.

mod batch_norm;
mod conv2d;
mod dense;
mod dropout;
mod pool2d;
mod reshape;
mod window;

pub use batch_norm::BatchNorm;
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use dropout::Dropout;
pub use pool2d::{Pool2d, PoolKind};
pub use reshape::{ActivationLayer, Flatten};

use lathe_formats::spec::Activation;

use crate::activation;
use crate::layer::Scratch;

/// Applies a layer's fused activation after its linear part; keeps the pre-activation values
/// in scratch buffer `slot` when the backward pass will need them.
pub(crate) fn fused_forward(
    act: Activation,
    y: &mut [f32],
    width: usize,
    s: &mut Scratch,
    slot: usize,
    training: bool,
) {
    if training && activation::needs_input(act) {
        s.buf(slot, y.len()).copy_from_slice(y);
    }
    activation::forward(act, y, width);
}

/// Undoes a fused activation in the gradient, unless the loss already did.
pub(crate) fn fused_backward(
    act: Activation,
    y: &[f32],
    dy: &mut [f32],
    width: usize,
    s: &Scratch,
    slot: usize,
    pre: bool,
) {
    if pre {
        return;
    }
    let z = s.bufs.get(slot).map(Vec::as_slice).unwrap_or(&[]);
    activation::backward(act, y, z, dy, width);
}

/// Fills every row of `y` with `bias`.
pub(crate) fn broadcast_rows(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        row.copy_from_slice(bias);
    }
}

/// Sums the rows of `dy` into `out` (the bias gradient).
pub(crate) fn sum_rows(dy: &[f32], out: &mut [f32]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for row in dy.chunks_exact(out.len()) {
        out.iter_mut().zip(row).for_each(|(o, d)| *o += d);
    }
}

/// Glorot-uniform initial values.
pub(crate) fn glorot(len: usize, fan_in: usize, fan_out: usize, rng: &mut crate::Rng) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
    (0..len).map(|_| (rng.next_f32() * 2.0 - 1.0) * limit).collect()
}
