use lathe_formats::spec::Activation;

use super::{broadcast_rows, fused_backward, fused_forward, glorot, sum_rows};
use crate::layer::{Backward, Ctx, Layer, Param, Scratch};
use crate::Rng;
use lathe_kernels::gemm::{sgemm, Op};

/// Fully connected layer `y = act(x · kernel + bias)`, kernel `[in, out]`.
pub struct Dense {
    inputs: usize,
    units: usize,
    act: Activation,
    params: [Param; 2],
}

impl Dense {
    /// A dense layer with Glorot-uniform kernel and zero bias.
    pub fn new(inputs: usize, units: usize, act: Activation, rng: &mut Rng) -> Dense {
        Dense {
            inputs,
            units,
            act,
            params: [
                Param::trainable("kernel", vec![inputs, units], glorot(inputs * units, inputs, units, rng), true),
                Param::trainable("bias", vec![units], vec![0.0; units], false),
            ],
        }
    }
}

impl Layer for Dense {
    fn out_len(&self) -> usize {
        self.units
    }

    fn forward(&self, x: &[f32], n: usize, y: &mut [f32], s: &mut Scratch, ctx: &mut Ctx) {
        broadcast_rows(y, &self.params[1].value);
        sgemm(n, self.inputs, self.units, 1.0, x, Op::N, &self.params[0].value, Op::N, 1.0, y);
        fused_forward(self.act, y, self.units, s, 0, ctx.keeps());
    }

    fn backward(&self, b: Backward, grads: &mut [Vec<f32>], s: &mut Scratch) {
        let (n, i, o) = (b.n, self.inputs, self.units);
        fused_backward(self.act, b.y, b.dy, o, s, 0, b.dy_is_pre_activation);
        sgemm(i, n, o, 1.0, b.x, Op::T, b.dy, Op::N, 0.0, &mut grads[0]);
        sum_rows(b.dy, &mut grads[1]);
        if let Some(dx) = b.dx {
            sgemm(n, o, i, 1.0, b.dy, Op::N, &self.params[0].value, Op::T, 0.0, dx);
        }
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    fn activation(&self) -> Option<Activation> {
        Some(self.act)
    }
}
