use lathe_formats::spec::{Activation, Padding};

use super::window::Window;
use super::{broadcast_rows, fused_backward, fused_forward, glorot, sum_rows};
use crate::layer::{Backward, Ctx, Layer, Param, Scratch};
use crate::Rng;
use lathe_kernels::gemm::{sgemm, Op};

/// Scratch slots: im2col columns, pre-activation values, column gradients.
const COLS: usize = 0;
const PRE: usize = 1;
const DCOLS: usize = 2;

/// 2-D convolution on channels-last samples, computed as im2col followed by one GEMM:
/// `[n·oh·ow, kh·kw·c] × [kh·kw·c, filters]`, which yields channels-last output directly.
pub struct Conv2d {
    g: Window,
    filters: usize,
    act: Activation,
    params: [Param; 2],
}

impl Conv2d {
    /// A convolution with Glorot-uniform kernel `[kh, kw, c, filters]` and zero bias.
    pub fn new(
        input: [usize; 3],
        filters: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
        act: Activation,
        rng: &mut Rng,
    ) -> Conv2d {
        let g = Window::new(input, kernel, stride, padding);
        let patch = g.kh * g.kw * g.c;
        let kernel_len = patch * filters;
        let fan_out = g.kh * g.kw * filters;
        Conv2d {
            g,
            filters,
            act,
            params: [
                Param::trainable(
                    "kernel",
                    vec![g.kh, g.kw, g.c, filters],
                    glorot(kernel_len, patch, fan_out, rng),
                    true,
                ),
                Param::trainable("bias", vec![filters], vec![0.0; filters], false),
            ],
        }
    }

    fn patch(&self) -> usize {
        self.g.kh * self.g.kw * self.g.c
    }

    fn im2col(&self, x: &[f32], n: usize, cols: &mut [f32]) {
        let g = &self.g;
        let patch = self.patch();
        let span = g.kw * g.c;
        for b in 0..n {
            let xs = &x[b * g.in_len()..(b + 1) * g.in_len()];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = &mut cols[((b * g.oh + oy) * g.ow + ox) * patch..][..patch];
                    for ky in 0..g.kh {
                        let dst = &mut row[ky * span..(ky + 1) * span];
                        // Fast path: the whole kernel row lies inside the input, so it is one
                        // contiguous run of kw·c values (copied by hand: runs are short).
                        if let (Some((iy, ix)), Some(_)) = (g.source(oy, ox, ky, 0), g.source(oy, ox, ky, g.kw - 1)) {
                            let src = &xs[(iy * g.w + ix) * g.c..][..span];
                            dst.iter_mut().zip(src).for_each(|(d, s)| *d = *s);
                            continue;
                        }
                        for kx in 0..g.kw {
                            let d = &mut dst[kx * g.c..(kx + 1) * g.c];
                            match g.source(oy, ox, ky, kx) {
                                Some((iy, ix)) => {
                                    d.iter_mut().zip(&xs[(iy * g.w + ix) * g.c..]).for_each(|(d, s)| *d = *s)
                                }
                                None => d.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }

    fn col2im(&self, dcols: &[f32], n: usize, dx: &mut [f32]) {
        let g = &self.g;
        let patch = self.patch();
        dx.fill(0.0);
        for b in 0..n {
            let xs = &mut dx[b * g.in_len()..(b + 1) * g.in_len()];
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let row = &dcols[((b * g.oh + oy) * g.ow + ox) * patch..][..patch];
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                                let src = &row[(ky * g.kw + kx) * g.c..][..g.c];
                                let dst = &mut xs[(iy * g.w + ix) * g.c..][..g.c];
                                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
                            }
                        }
                    }
                }
            }
        }
    }
}

impl Layer for Conv2d {
    fn out_len(&self) -> usize {
        self.g.positions() * self.filters
    }

    fn forward(&self, x: &[f32], n: usize, y: &mut [f32], s: &mut Scratch, ctx: &mut Ctx) {
        let rows = n * self.g.positions();
        let patch = self.patch();
        let cols = s.buf(COLS, rows * patch);
        self.im2col(x, n, cols);
        broadcast_rows(y, &self.params[1].value);
        sgemm(rows, patch, self.filters, 1.0, &s.bufs[COLS], Op::N, &self.params[0].value, Op::N, 1.0, y);
        fused_forward(self.act, y, self.filters, s, PRE, ctx.keeps());
    }

    fn backward(&self, b: Backward, grads: &mut [Vec<f32>], s: &mut Scratch) {
        let rows = b.n * self.g.positions();
        let patch = self.patch();
        fused_backward(self.act, b.y, b.dy, self.filters, s, PRE, b.dy_is_pre_activation);
        sgemm(patch, rows, self.filters, 1.0, &s.bufs[COLS], Op::T, b.dy, Op::N, 0.0, &mut grads[0]);
        sum_rows(b.dy, &mut grads[1]);
        if let Some(dx) = b.dx {
            s.buf(DCOLS, rows * patch);
            let dcols = &mut s.bufs[DCOLS];
            sgemm(rows, self.filters, patch, 1.0, b.dy, Op::N, &self.params[0].value, Op::T, 0.0, dcols);
            self.col2im(&s.bufs[DCOLS], b.n, dx);
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
