//! Optimizers (SGD with momentum/Nesterov, Adam, AdamW) with Keras' update rules, and
//! learning-rate schedules.

use lathe_formats::spec::{LrSchedule, OptimizerSpec};
use lathe_sequential::{Gradients, Network};

/// An optimizer and its per-parameter state.
pub struct Optimizer {
    spec: OptimizerSpec,
    /// First moments (Adam) or velocities (SGD), one per parameter tensor.
    m: Vec<Vec<f32>>,
    /// Second moments (Adam).
    v: Vec<Vec<f32>>,
    /// Steps taken.
    pub step: u64,
}

impl Optimizer {
    /// A fresh optimizer for the parameters of `net`.
    pub fn new(spec: &OptimizerSpec, net: &Network) -> Optimizer {
        let shapes: Vec<usize> = net.tensors().iter().map(|t| t.data.len()).collect();
        let zeros = || shapes.iter().map(|&n| vec![0f32; n]).collect::<Vec<_>>();
        let needs_v = !matches!(spec, OptimizerSpec::Sgd { .. });
        Optimizer { spec: spec.clone(), m: zeros(), v: if needs_v { zeros() } else { Vec::new() }, step: 0 }
    }

    /// Applies one update with learning rate `lr`.
    pub fn apply(&mut self, net: &mut Network, grads: &Gradients, lr: f32) {
        self.step += 1;
        let t = self.step as i32;
        let (m_all, v_all) = (&mut self.m, &mut self.v);
        match self.spec {
            OptimizerSpec::Sgd { momentum, nesterov, .. } => {
                let mu = momentum as f32;
                net.for_each_param(grads, |k, p, g| {
                    if !p.trainable {
                        return;
                    }
                    if mu == 0.0 {
                        p.value.iter_mut().zip(g).for_each(|(w, g)| *w -= lr * g);
                        return;
                    }
                    for ((w, g), m) in p.value.iter_mut().zip(g).zip(m_all[k].iter_mut()) {
                        *m = mu * *m - lr * g;
                        *w += if nesterov { mu * *m - lr * g } else { *m };
                    }
                });
            }
            OptimizerSpec::Adam { betas, eps, .. } | OptimizerSpec::Adamw { betas, eps, .. } => {
                let decay = match self.spec {
                    OptimizerSpec::Adamw { weight_decay, .. } => weight_decay as f32,
                    _ => 0.0,
                };
                let (b1, b2, eps) = (betas[0] as f32, betas[1] as f32, eps as f32);
                let alpha = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
                net.for_each_param(grads, |k, p, g| {
                    if !p.trainable {
                        return;
                    }
                    if decay > 0.0 && p.decays {
                        let f = 1.0 - lr * decay;
                        p.value.iter_mut().for_each(|w| *w *= f);
                    }
                    let (m, v) = (&mut m_all[k], &mut v_all[k]);
                    for (((w, &g), m), v) in p.value.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                        *m += (g - *m) * (1.0 - b1);
                        *v += (g * g - *v) * (1.0 - b2);
                        *w -= alpha * *m / (v.sqrt() + eps);
                    }
                });
            }
        }
    }

    /// The state as flat tensors (`m.{k}`, `v.{k}`), for checkpoints.
    pub fn state(&self) -> Vec<(String, &[f32])> {
        let m = self.m.iter().enumerate().map(|(k, t)| (format!("m.{k}"), t.as_slice()));
        let v = self.v.iter().enumerate().map(|(k, t)| (format!("v.{k}"), t.as_slice()));
        m.chain(v).collect()
    }

    /// Restores the state written by [`Optimizer::state`]; false when it does not fit.
    pub fn restore(&mut self, step: u64, get: impl Fn(&str) -> Option<Vec<f32>>) -> bool {
        for (prefix, bufs) in [("m", &mut self.m), ("v", &mut self.v)] {
            for (k, b) in bufs.iter_mut().enumerate() {
                match get(&format!("{prefix}.{k}")) {
                    Some(t) if t.len() == b.len() => *b = t,
                    _ => return false,
                }
            }
        }
        self.step = step;
        true
    }
}

/// Learning rate at `step` (0-based, global) of `epoch` (0-based).
pub fn learning_rate(base: f64, schedule: Option<&LrSchedule>, epoch: usize, step: u64, total_steps: u64) -> f64 {
    match schedule {
        None => base,
        Some(LrSchedule::Step { step_epochs, gamma }) => base * gamma.powi((epoch / step_epochs) as i32),
        Some(LrSchedule::Cosine { min_lr }) => {
            let t = (step as f64 / total_steps.max(1) as f64).min(1.0);
            min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lathe_formats::Spec;
    use lathe_sequential::Rng;

    /// A one-weight model (dense 1 -> 1, no activation) with kernel `w` and bias 0.
    fn one_weight(optimizer: &str, w: f32) -> (Network, OptimizerSpec) {
        let yaml = format!(
            "input: {{shape: [1]}}\nlayers: [{{type: dense, units: 1}}]\ncompile: \
                {{optimizer: {optimizer}, loss: mse}}\n"
        );
        let spec = Spec::from_yaml_str(&yaml).unwrap();
        let mut net = Network::from_spec(&spec, &mut Rng::new(0)).unwrap();
        let mut t = net.tensors();
        t.iter_mut().find(|t| t.name.ends_with("kernel")).unwrap().data[0] = w;
        net.load_tensors(&t).unwrap();
        (net, spec.compile.optimizer)
    }

    fn kernel(net: &Network) -> f32 {
        net.tensors().iter().find(|t| t.name.ends_with("kernel")).unwrap().data[0]
    }

    fn grads(g: f32) -> Gradients {
        Gradients { per_layer: vec![vec![vec![g], vec![0.0]]] }
    }

    #[test]
    fn adam_matches_the_hand_computed_update() {
        let (mut net, spec) = one_weight("{type: adam, lr: 0.1}", 1.0);
        let mut opt = Optimizer::new(&spec, &net);
        opt.apply(&mut net, &grads(0.5), 0.1);
        // m = 0.05, v = 0.00025; alpha = 0.1·sqrt(0.001)/0.1; step = alpha·m/(sqrt(v)+1e-7) ≈ 0.1
        let m = 0.05f64;
        let v = 0.00025f64;
        let alpha = 0.1 * (1.0f64 - 0.999).sqrt() / (1.0 - 0.9);
        let want = 1.0 - alpha * m / (v.sqrt() + 1e-7);
        assert!((kernel(&net) as f64 - want).abs() < 1e-6, "{} vs {want}", kernel(&net));
        opt.apply(&mut net, &grads(-0.5), 0.1);
        let (m2, v2) = (0.9 * m - 0.1 * 0.5, 0.999 * v + 0.001 * 0.25);
        let alpha2 = 0.1 * (1.0f64 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
        let want2 = want - alpha2 * m2 / (v2.sqrt() + 1e-7);
        assert!((kernel(&net) as f64 - want2).abs() < 1e-6, "{} vs {want2}", kernel(&net));
    }

    #[test]
    fn sgd_momentum_and_nesterov_follow_keras() {
        let (mut net, spec) = one_weight("{type: sgd, lr: 0.1, momentum: 0.9}", 1.0);
        let mut opt = Optimizer::new(&spec, &net);
        opt.apply(&mut net, &grads(1.0), 0.1); // m = -0.1, w = 0.9
        opt.apply(&mut net, &grads(1.0), 0.1); // m = -0.19, w = 0.71
        assert!((kernel(&net) - 0.71).abs() < 1e-6, "{}", kernel(&net));
        let (mut net, spec) = one_weight("{type: sgd, lr: 0.1, momentum: 0.9, nesterov: true}", 1.0);
        let mut opt = Optimizer::new(&spec, &net);
        opt.apply(&mut net, &grads(1.0), 0.1); // m = -0.1, w += 0.9·m − 0.1 = −0.19
        assert!((kernel(&net) - 0.81).abs() < 1e-6, "{}", kernel(&net));
    }

    #[test]
    fn adamw_decays_kernels_but_not_biases() {
        let (mut net, spec) = one_weight("{type: adamw, lr: 0.1, weight_decay: 0.5}", 2.0);
        let mut opt = Optimizer::new(&spec, &net);
        opt.apply(&mut net, &Gradients { per_layer: vec![vec![vec![0.0], vec![0.0]]] }, 0.1);
        assert!((kernel(&net) - 2.0 * (1.0 - 0.1 * 0.5)).abs() < 1e-6, "{}", kernel(&net));
        let bias = net.tensors().iter().find(|t| t.name.ends_with("bias")).unwrap().data[0];
        assert_eq!(bias, 0.0);
    }

    #[test]
    fn schedules() {
        let step = LrSchedule::Step { step_epochs: 2, gamma: 0.5 };
        assert_eq!(learning_rate(1.0, Some(&step), 0, 0, 10), 1.0);
        assert_eq!(learning_rate(1.0, Some(&step), 3, 0, 10), 0.5);
        assert_eq!(learning_rate(1.0, Some(&step), 4, 0, 10), 0.25);
        let cos = LrSchedule::Cosine { min_lr: 0.0 };
        assert!((learning_rate(1.0, Some(&cos), 0, 5, 10) - 0.5).abs() < 1e-12);
        assert!(learning_rate(1.0, Some(&cos), 0, 10, 10).abs() < 1e-12);
    }
}
