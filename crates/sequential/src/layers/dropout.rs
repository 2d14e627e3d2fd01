use crate::layer::{Backward, Ctx, Layer, Scratch};

/// Inverted dropout: in training, zeroes each value with probability `rate` and scales the
/// rest by `1 / (1 - rate)`; in inference, the identity.
pub struct Dropout {
    len: usize,
    rate: f32,
}

impl Dropout {
    /// Dropout over samples of `len` values.
    pub fn new(len: usize, rate: f32) -> Dropout {
        Dropout { len, rate }
    }
}

impl Layer for Dropout {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&self, x: &[f32], _n: usize, y: &mut [f32], s: &mut Scratch, ctx: &mut Ctx) {
        if !ctx.training || self.rate == 0.0 {
            y.copy_from_slice(x);
            return;
        }
        let keep = 1.0 / (1.0 - self.rate);
        let mask = s.buf(0, x.len());
        for ((m, yv), xv) in mask.iter_mut().zip(y.iter_mut()).zip(x) {
            *m = if ctx.rng.next_f32() < self.rate { 0.0 } else { keep };
            *yv = xv * *m;
        }
    }

    fn backward(&self, b: Backward, _grads: &mut [Vec<f32>], s: &mut Scratch) {
        let Some(dx) = b.dx else { return };
        match s.bufs.first() {
            Some(mask) if self.rate > 0.0 && !b.inference => {
                for ((d, g), m) in dx.iter_mut().zip(b.dy.iter()).zip(mask) {
                    *d = g * m;
                }
            }
            _ => dx.copy_from_slice(b.dy),
        }
    }
}
