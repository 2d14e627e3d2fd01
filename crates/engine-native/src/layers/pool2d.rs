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
    pub fn new(
        kind: PoolKind,
        input: [usize; 3],
        pool: [usize; 2],
        stride: [usize; 2],
        padding: Padding,
    ) -> Pool2d {
        Pool2d {
            g: Window::new(input, pool, stride, padding),
            kind,
        }
    }

    /// Calls `f(out_offset, in_offsets_in_window)` for every output position of sample `b`.
    fn each_window(&self, b: usize, mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>)) {
        let g = &self.g;
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let out = ((b * g.oh + oy) * g.ow + ox) * g.c;
                let mut it = (0..g.kh)
                    .flat_map(move |ky| (0..g.kw).map(move |kx| (ky, kx)))
                    .filter_map(move |(ky, kx)| g.source(oy, ox, ky, kx))
                    .map(move |(iy, ix)| (b * g.h * g.w + iy * g.w + ix) * g.c);
                f(out, &mut it);
            }
        }
    }
}

impl Layer for Pool2d {
    fn out_len(&self) -> usize {
        self.g.positions() * self.g.c
    }

    fn forward(&self, x: &[f32], n: usize, y: &mut [f32], s: &mut Scratch, _ctx: &mut Ctx) {
        let c = self.g.c;
        match self.kind {
            PoolKind::Max => {
                s.idx.resize(y.len(), 0);
                let idx = &mut s.idx;
                for b in 0..n {
                    self.each_window(b, |out, inputs| {
                        let yo = &mut y[out..out + c];
                        let io = &mut idx[out..out + c];
                        yo.fill(f32::NEG_INFINITY);
                        for at in inputs {
                            for ch in 0..c {
                                let v = x[at + ch];
                                if v > yo[ch] {
                                    yo[ch] = v;
                                    io[ch] = (at + ch) as u32;
                                }
                            }
                        }
                    });
                }
            }
            PoolKind::Avg => {
                let counts = s.buf(0, y.len() / c.max(1));
                for b in 0..n {
                    self.each_window(b, |out, inputs| {
                        let yo = &mut y[out..out + c];
                        yo.fill(0.0);
                        let mut count = 0usize;
                        for at in inputs {
                            count += 1;
                            yo.iter_mut().zip(&x[at..at + c]).for_each(|(o, v)| *o += v);
                        }
                        let inv = 1.0 / count.max(1) as f32;
                        yo.iter_mut().for_each(|o| *o *= inv);
                        counts[out / c] = inv;
                    });
                }
            }
        }
    }

    fn backward(&self, b: Backward, _grads: &mut [Vec<f32>], s: &mut Scratch) {
        let Some(dx) = b.dx else { return };
        dx.fill(0.0);
        let c = self.g.c;
        match self.kind {
            PoolKind::Max => {
                for (g, &i) in b.dy.iter().zip(&s.idx) {
                    dx[i as usize] += g;
                }
            }
            PoolKind::Avg => {
                let inv = &s.bufs[0];
                for n in 0..b.n {
                    self.each_window(n, |out, inputs| {
                        let scale = inv[out / c];
                        let g = &b.dy[out..out + c];
                        for at in inputs {
                            dx[at..at + c]
                                .iter_mut()
                                .zip(g)
                                .for_each(|(d, g)| *d += g * scale);
                        }
                    });
                }
            }
        }
    }
}
