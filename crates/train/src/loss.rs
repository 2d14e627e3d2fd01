//! Losses over class labels, with the fused softmax/sigmoid gradients, and over
//! (standardised) regression targets.

use lathe_formats::spec::{Activation, LossKind, Task};

/// Smallest probability fed to a logarithm.
const EPS: f32 = 1e-7;
/// Where the Huber loss turns from squared to linear (Keras' default), in standardised units.
const HUBER_DELTA: f32 = 1.0;

/// A loss bound to how the model's output ends.
#[derive(Debug, Clone, Copy)]
pub struct Loss {
    kind: LossKind,
    final_activation: Activation,
    task: Task,
}

/// Per-batch loss sum, correct predictions, and whether the gradient is pre-activation.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchLoss {
    /// Sum of per-sample losses.
    pub sum: f64,
    /// Samples whose predicted class is the label (0 for regression).
    pub correct: usize,
}

impl Loss {
    /// A loss for a classifier whose last layer ends with `final_activation`.
    pub fn new(kind: LossKind, final_activation: Activation) -> Loss {
        Loss { kind, final_activation, task: Task::Classification }
    }

    /// A loss for a model of `task` whose last layer ends with `final_activation`.
    pub fn for_task(kind: LossKind, final_activation: Activation, task: Task) -> Loss {
        Loss { kind, final_activation, task }
    }

    /// The task the loss trains for.
    pub fn task(&self) -> Task {
        self.task
    }

    /// Whether the gradient written by [`Loss::evaluate`] is w.r.t. the last layer's input to
    /// its activation (softmax + cross-entropy, sigmoid + binary cross-entropy): these fused
    /// gradients are exact and never divide by a tiny probability.
    pub fn fused(&self) -> bool {
        matches!(
            (self.kind, self.final_activation),
            (LossKind::SparseCategoricalCrossentropy | LossKind::CategoricalCrossentropy, Activation::Softmax)
                | (LossKind::BinaryCrossentropy, Activation::Sigmoid)
        )
    }

    fn is_cross_entropy(&self) -> bool {
        matches!(self.kind, LossKind::SparseCategoricalCrossentropy | LossKind::CategoricalCrossentropy)
    }

    /// Loss and accuracy of `n` outputs of `width` values against the truths `y` (a class
    /// index per sample, or `width` standardised targets for regression); writes the gradient
    /// of the batch-mean loss into `grad` when given. Outputs that do not end in softmax (for
    /// cross-entropy) or sigmoid (for binary cross-entropy) are taken as logits.
    pub fn evaluate(&self, out: &[f32], y: &[f32], width: usize, grad: Option<&mut [f32]>) -> BatchLoss {
        let n = out.len() / width.max(1);
        self.evaluate_scaled(out, y, width, grad, n)
    }

    /// Like [`Loss::evaluate`], for a shard of a batch of `batch` samples: the gradient is that
    /// of the mean over the whole batch.
    pub fn evaluate_scaled(
        &self,
        out: &[f32],
        y: &[f32],
        width: usize,
        grad: Option<&mut [f32]>,
        batch: usize,
    ) -> BatchLoss {
        match self.task {
            Task::Classification => self.classification(out, y, width, grad, batch),
            Task::Regression => self.regression(out, y, width, grad, batch),
        }
    }

    /// Mean over targets of the squared, absolute or Huber (δ = 1) error per sample.
    fn regression(
        &self,
        out: &[f32],
        y: &[f32],
        width: usize,
        mut grad: Option<&mut [f32]>,
        batch: usize,
    ) -> BatchLoss {
        let scale = 1.0 / (batch.max(1) * width) as f32;
        let mut total = BatchLoss::default();
        for (i, (row, truth)) in out.chunks_exact(width).zip(y.chunks_exact(width)).enumerate() {
            let mut s = 0f64;
            for (j, (&p, &t)) in row.iter().zip(truth).enumerate() {
                let d = p - t;
                let (value, slope) = match self.kind {
                    LossKind::Mae => (d.abs(), d.signum()),
                    LossKind::Huber if d.abs() > HUBER_DELTA => {
                        (HUBER_DELTA * (d.abs() - 0.5 * HUBER_DELTA), HUBER_DELTA * d.signum())
                    }
                    LossKind::Huber => (0.5 * d * d, d),
                    _ => (d * d, 2.0 * d),
                };
                s += value as f64;
                if let Some(g) = grad.as_deref_mut() {
                    g[i * width + j] = slope * scale;
                }
            }
            total.sum += s / width as f64;
        }
        total
    }

    fn classification(
        &self,
        out: &[f32],
        labels: &[f32],
        width: usize,
        mut grad: Option<&mut [f32]>,
        batch: usize,
    ) -> BatchLoss {
        let mut total = BatchLoss::default();
        let inv_n = 1.0 / batch.max(1) as f32;
        let mut probs = vec![0f32; width];
        for (i, (row, &label)) in out.chunks_exact(width).zip(labels).enumerate() {
            let label = label as usize;
            probs.copy_from_slice(row);
            let g = grad.as_deref_mut().map(|g| &mut g[i * width..(i + 1) * width]);
            if self.is_cross_entropy() {
                if self.final_activation != Activation::Softmax {
                    softmax(&mut probs);
                }
                total.sum += -(probs[label].max(EPS) as f64).ln();
                if let Some(g) = g {
                    for (j, (gj, pj)) in g.iter_mut().zip(&probs).enumerate() {
                        *gj = (pj - if j == label { 1.0 } else { 0.0 }) * inv_n;
                    }
                }
            } else if self.kind == LossKind::BinaryCrossentropy {
                if self.final_activation != Activation::Sigmoid {
                    probs.iter_mut().for_each(|p| *p = 1.0 / (1.0 + (-*p).exp()));
                }
                let scale = inv_n / width as f32;
                let mut s = 0f64;
                for (j, &p) in probs.iter().enumerate() {
                    let t = target(width, label, j);
                    let p = p.clamp(EPS, 1.0 - EPS);
                    s -= (t * p.ln() + (1.0 - t) * (1.0 - p).ln()) as f64;
                }
                total.sum += s / width as f64;
                if let Some(g) = g {
                    for (j, (gj, p)) in g.iter_mut().zip(&probs).enumerate() {
                        *gj = (p - target(width, label, j)) * scale;
                    }
                }
            } else {
                let scale = inv_n / width as f32;
                let mse = self.kind == LossKind::Mse;
                let mut s = 0f64;
                for (j, p) in probs.iter().enumerate() {
                    let d = p - target(width, label, j);
                    s += if mse { (d * d) as f64 } else { d.abs() as f64 };
                }
                total.sum += s / width as f64;
                if let Some(g) = g {
                    for (j, (gj, p)) in g.iter_mut().zip(&probs).enumerate() {
                        let d = p - target(width, label, j);
                        *gj = scale * if mse { 2.0 * d } else { d.signum() };
                    }
                }
            }
            if predicted_class(&probs) == label {
                total.correct += 1;
            }
        }
        total
    }
}

/// Target of output unit `j` for class `label`: the label itself for a single unit, one-hot otherwise.
fn target(width: usize, label: usize, j: usize) -> f32 {
    if width == 1 {
        label as f32
    } else if j == label {
        1.0
    } else {
        0.0
    }
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    row.iter_mut().for_each(|x| {
        *x = (*x - max).exp();
        sum += *x;
    });
    row.iter_mut().for_each(|x| *x /= sum);
}

/// The predicted class of one output row: the arg-max, or `p > 0.5` for a single unit.
pub fn predicted_class(row: &[f32]) -> usize {
    if row.len() == 1 {
        return (row[0] > 0.5) as usize;
    }
    let mut best = 0;
    for (j, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = j;
        }
    }
    best
}

/// Class probabilities of one output row as users see them: a single sigmoid unit `p`
/// becomes `[1 - p, p]`; other rows are returned as they are.
pub fn class_probabilities(row: &[f32]) -> Vec<f32> {
    if row.len() == 1 {
        vec![1.0 - row[0], row[0]]
    } else {
        row.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_matches_hand_computation() {
        let loss = Loss::new(LossKind::SparseCategoricalCrossentropy, Activation::Softmax);
        let out = [0.7, 0.2, 0.1, 0.1, 0.3, 0.6];
        let mut g = [0.0; 6];
        let r = loss.evaluate(&out, &[0.0, 1.0], 3, Some(&mut g));
        let want = -(0.7f64.ln() + 0.3f64.ln());
        assert!((r.sum - want).abs() < 1e-6, "{} vs {want}", r.sum);
        assert_eq!(r.correct, 1);
        let expect = [-0.15, 0.1, 0.05, 0.05, -0.35, 0.3];
        for (a, b) in g.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn logits_are_softmaxed_and_binary_uses_one_unit() {
        let loss = Loss::new(LossKind::CategoricalCrossentropy, Activation::Linear);
        let r = loss.evaluate(&[0.0, 0.0], &[1.0], 2, None);
        assert!((r.sum - 2f64.ln()).abs() < 1e-6);
        let bce = Loss::new(LossKind::BinaryCrossentropy, Activation::Sigmoid);
        let r = bce.evaluate(&[0.8, 0.4], &[1.0, 1.0], 1, None);
        assert!((r.sum - -(0.8f64.ln() + 0.4f64.ln())).abs() < 1e-5);
        assert_eq!(r.correct, 1);
    }

    #[test]
    fn mse_against_one_hot() {
        let loss = Loss::new(LossKind::Mse, Activation::Linear);
        let mut g = [0.0; 2];
        let r = loss.evaluate(&[0.5, 0.5], &[0.0], 2, Some(&mut g));
        assert!((r.sum - 0.25).abs() < 1e-6);
        assert!((g[0] + 0.5).abs() < 1e-6 && (g[1] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn regression_losses_and_gradients_per_target() {
        let (out, y) = ([1.0, 0.0, 3.0, -1.0], [0.0, 0.0, 0.0, 0.0]);
        let mut g = [0.0; 4];
        let mse = Loss::for_task(LossKind::Mse, Activation::Linear, Task::Regression);
        let r = mse.evaluate(&out, &y, 2, Some(&mut g));
        assert!((r.sum - (0.5 + 5.0)).abs() < 1e-9, "{}", r.sum);
        assert_eq!(g, [0.5, 0.0, 1.5, -0.5]);
        let huber = Loss::for_task(LossKind::Huber, Activation::Linear, Task::Regression);
        let r = huber.evaluate(&out, &y, 2, Some(&mut g));
        assert!((r.sum - (0.25 + (2.5 + 0.5) / 2.0)).abs() < 1e-9, "{}", r.sum);
        assert_eq!(g, [0.25, 0.0, 0.25, -0.25]);
        let mae = Loss::for_task(LossKind::Mae, Activation::Linear, Task::Regression);
        assert!((mae.evaluate(&out, &y, 2, None).sum - 2.5).abs() < 1e-9);
    }
}
