use lathe_formats::spec::Padding;

use super::window::Window;
use crate::layer::{Backward, Ctx, Layer, Scratch};

/// Which reduction a pool takes over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// Maximum.
    Max,
    /// Mean over the positions inside the input (padding is not counted).
    Avg,
}

/// 2-D max or average pooling per channel on channels-last samples.
pub struct Pool2d {
    g: Window,
    kind: PoolKind,
}

impl Pool2d {
    /// A pool over `[h, w, c]` samples.
    pub fn new(kind: PoolKind, input: [usize; 3], pool: [usize; 2], stride: [usize; 2], padding: Padding) -> Pool2d {
        Pool2d { g: Window::new(input, pool, stride, padding), kind }
    }

    /// Offsets (into the batch) of the input pixels inside the window of output `(b, oy, ox)`.
    fn window_inputs(&self, b: usize, oy: usize, ox: usize, out: &mut Vec<usize>) {
        let g = &self.g;
        out.clear();
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                if let Some((iy, ix)) = g.source(oy, ox, ky, kx) {
                    out.push(((b * g.h + iy) * g.w + ix) * g.c);
                }
            }
        }
    }
}

impl Layer for Pool2d {
    fn out_len(&self) -> usize {
        self.g.positions() * self.g.c
    }

    fn forward(&self, x: &[f32], n: usize, y: &mut [f32], s: &mut Scratch, _ctx: &mut Ctx) {
        let g = self.g;
        let c = g.c;
        let mut inputs = Vec::with_capacity(g.kh * g.kw);
        if self.kind == PoolKind::Max {
            s.idx.resize(y.len(), 0);
        } else {
            s.buf(0, y.len() / c);
        }
        for b in 0..n {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let out = ((b * g.oh + oy) * g.ow + ox) * c;
                    self.window_inputs(b, oy, ox, &mut inputs);
                    let yo = &mut y[out..out + c];
                    match self.kind {
                        PoolKind::Max => {
                            let io = &mut s.idx[out..out + c];
                            let first = inputs[0];
                            yo.copy_from_slice(&x[first..first + c]);
                            io.iter_mut().enumerate().for_each(|(ch, i)| *i = (first + ch) as u32);
                            for &at in &inputs[1..] {
                                let xs = &x[at..at + c];
                                // Branch-free selects so that the loop vectorises.
                                for ch in 0..c {
                                    let better = xs[ch] > yo[ch];
                                    yo[ch] = if better { xs[ch] } else { yo[ch] };
                                    io[ch] = if better { (at + ch) as u32 } else { io[ch] };
                                }
                            }
                        }
                        PoolKind::Avg => {
                            yo.fill(0.0);
                            for &at in &inputs {
                                yo.iter_mut().zip(&x[at..at + c]).for_each(|(o, v)| *o += v);
                            }
                            let inv = 1.0 / inputs.len() as f32;
                            yo.iter_mut().for_each(|o| *o *= inv);
                            s.bufs[0][out / c] = inv;
                        }
                    }
                }
            }
        }
    }

    fn backward(&self, b: Backward, _grads: &mut [Vec<f32>], s: &mut Scratch) {
        let Some(dx) = b.dx else { return };
        dx.fill(0.0);
        let g = self.g;
        let c = g.c;
        match self.kind {
            PoolKind::Max => {
                for (d, &i) in b.dy.iter().zip(&s.idx) {
                    dx[i as usize] += d;
                }
            }
            PoolKind::Avg => {
                let mut inputs = Vec::with_capacity(g.kh * g.kw);
                for n in 0..b.n {
                    for oy in 0..g.oh {
                        for ox in 0..g.ow {
                            let out = ((n * g.oh + oy) * g.ow + ox) * c;
                            self.window_inputs(n, oy, ox, &mut inputs);
                            let scale = s.bufs[0][out / c];
                            let d = &b.dy[out..out + c];
                            for &at in &inputs {
                                dx[at..at + c].iter_mut().zip(d).for_each(|(x, d)| *x += d * scale);
                            }
                        }
                    }
                }
            }
        }
    }
}
