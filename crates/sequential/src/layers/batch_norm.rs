use crate::layer::{Backward, Ctx, Layer, Param, Scratch};

/// Scratch slots: normalised values, per-channel [mean, variance, 1/std].
const XHAT: usize = 0;
const STATS: usize = 1;

/// Batch normalisation over the last axis: in training, each channel is normalised with the
/// batch's mean and (biased) variance and moving averages are kept; in inference the moving
/// averages are used. Parameters follow Keras: gamma, beta, moving_mean, moving_variance.
pub struct BatchNorm {
    len: usize,
    channels: usize,
    momentum: f32,
    epsilon: f32,
    params: [Param; 4],
}

impl BatchNorm {
    /// Batch norm over samples of `len` values whose last axis has `channels` values.
    pub fn new(len: usize, channels: usize, momentum: f32, epsilon: f32) -> BatchNorm {
        let c = channels;
        let fixed = |name, v: f32| Param { name, shape: vec![c], value: vec![v; c], trainable: false, decays: false };
        BatchNorm {
            len,
            channels,
            momentum,
            epsilon,
            params: [
                Param::trainable("gamma", vec![c], vec![1.0; c], false),
                Param::trainable("beta", vec![c], vec![0.0; c], false),
                fixed("moving_mean", 0.0),
                fixed("moving_variance", 1.0),
            ],
        }
    }
}

impl BatchNorm {
    /// The gradient through the inference form `y = (x − moving_mean) · γ / √(moving_var + ε) + β`:
    /// a per-channel scale. Parameter gradients are not needed there and are zero.
    fn inference_backward(&self, b: Backward, grads: &mut [Vec<f32>]) {
        grads.iter_mut().for_each(|g| g.fill(0.0));
        let Some(dx) = b.dx else { return };
        let c = self.channels;
        let (gamma, var) = (&self.params[0].value, &self.params[3].value);
        let scale: Vec<f32> = (0..c).map(|j| gamma[j] / (var[j] + self.epsilon).sqrt()).collect();
        for (xr, dr) in dx.chunks_exact_mut(c).zip(b.dy.chunks_exact(c)) {
            xr.iter_mut().zip(dr).zip(&scale).for_each(|((x, d), s)| *x = d * s);
        }
    }
}

impl Layer for BatchNorm {
    fn out_len(&self) -> usize {
        self.len
    }

    fn forward(&self, x: &[f32], _n: usize, y: &mut [f32], s: &mut Scratch, ctx: &mut Ctx) {
        let c = self.channels;
        let (gamma, beta) = (&self.params[0].value, &self.params[1].value);
        if !ctx.training {
            let (mm, mv) = (&self.params[2].value, &self.params[3].value);
            let scale: Vec<f32> = (0..c).map(|j| gamma[j] / (mv[j] + self.epsilon).sqrt()).collect();
            for (yr, xr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
                for j in 0..c {
                    yr[j] = (xr[j] - mm[j]) * scale[j] + beta[j];
                }
            }
            return;
        }
        let rows = (x.len() / c) as f32;
        let mut mean = vec![0f32; c];
        let mut var = vec![0f32; c];
        for xr in x.chunks_exact(c) {
            mean.iter_mut().zip(xr).for_each(|(m, v)| *m += v);
        }
        mean.iter_mut().for_each(|m| *m /= rows);
        for xr in x.chunks_exact(c) {
            for j in 0..c {
                let d = xr[j] - mean[j];
                var[j] += d * d;
            }
        }
        var.iter_mut().for_each(|v| *v /= rows);
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + self.epsilon).sqrt()).collect();
        let xhat = s.buf(XHAT, x.len());
        for ((yr, xr), hr) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(xhat.chunks_exact_mut(c)) {
            for j in 0..c {
                hr[j] = (xr[j] - mean[j]) * inv_std[j];
                yr[j] = hr[j] * gamma[j] + beta[j];
            }
        }
        let stats = s.buf(STATS, 3 * c);
        stats[..c].copy_from_slice(&mean);
        stats[c..2 * c].copy_from_slice(&var);
        stats[2 * c..].copy_from_slice(&inv_std);
    }

    fn backward(&self, b: Backward, grads: &mut [Vec<f32>], s: &mut Scratch) {
        if b.inference {
            return self.inference_backward(b, grads);
        }
        let c = self.channels;
        let xhat = &s.bufs[XHAT];
        let inv_std = &s.bufs[STATS][2 * c..];
        let gamma = &self.params[0].value;
        let mut sum_dy = vec![0f32; c];
        let mut sum_dy_xhat = vec![0f32; c];
        for (dr, hr) in b.dy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
            for j in 0..c {
                sum_dy[j] += dr[j];
                sum_dy_xhat[j] += dr[j] * hr[j];
            }
        }
        grads[0].copy_from_slice(&sum_dy_xhat);
        grads[1].copy_from_slice(&sum_dy);
        grads[2].fill(0.0);
        grads[3].fill(0.0);
        if let Some(dx) = b.dx {
            let m = (b.dy.len() / c) as f32;
            for ((xr, dr), hr) in dx.chunks_exact_mut(c).zip(b.dy.chunks_exact(c)).zip(xhat.chunks_exact(c)) {
                for j in 0..c {
                    xr[j] = gamma[j] * inv_std[j] / m * (m * dr[j] - sum_dy[j] - hr[j] * sum_dy_xhat[j]);
                }
            }
        }
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    fn commit_statistics(&mut self, s: &Scratch) {
        let c = self.channels;
        let Some(stats) = s.bufs.get(STATS).filter(|v| v.len() == 3 * c) else {
            return;
        };
        let mom = self.momentum;
        let (mean, var) = (&stats[..c], &stats[c..2 * c]);
        let [_, _, mm, mv] = &mut self.params;
        for j in 0..c {
            mm.value[j] = mom * mm.value[j] + (1.0 - mom) * mean[j];
            mv.value[j] = mom * mv.value[j] + (1.0 - mom) * var[j];
        }
    }
}
