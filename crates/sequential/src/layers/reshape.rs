use lathe_formats::spec::Activation;

use super::{fused_backward, fused_forward};
use crate::layer::{Backward, Ctx, Layer, Scratch};

/// Flattens a sample to a vector (row-major, channels last, as Keras does).
pub struct Flatten {
    len: usize,
}

impl Flatten {
    /// Flatten of samples with `len` values.
    pub fn new(len: usize) -> Flatten {
        Flatten { len }
    }
}

impl Layer for Flatten {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&self, x: &[f32], _n: usize, y: &mut [f32], _s: &mut Scratch, _ctx: &mut Ctx) {
        y.copy_from_slice(x);
    }

    fn backward(&self, b: Backward, _grads: &mut [Vec<f32>], _s: &mut Scratch) {
        if let Some(dx) = b.dx {
            dx.copy_from_slice(b.dy);
        }
    }
}

/// A standalone activation over the last axis (`width` values).
pub struct ActivationLayer {
    len: usize,
    width: usize,
    act: Activation,
}

impl ActivationLayer {
    /// Activation over samples of `len` values whose last axis has `width` values.
    pub fn new(len: usize, width: usize, act: Activation) -> ActivationLayer {
        ActivationLayer { len, width, act }
    }
}

impl Layer for ActivationLayer {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&self, x: &[f32], _n: usize, y: &mut [f32], s: &mut Scratch, ctx: &mut Ctx) {
        y.copy_from_slice(x);
        fused_forward(self.act, y, self.width, s, 0, ctx.keeps());
    }

    fn backward(&self, b: Backward, _grads: &mut [Vec<f32>], s: &mut Scratch) {
        fused_backward(self.act, b.y, b.dy, self.width, s, 0, b.dy_is_pre_activation);
        if let Some(dx) = b.dx {
            dx.copy_from_slice(b.dy);
        }
    }

    fn activation(&self) -> Option<Activation> {
        Some(self.act)
    }
}
