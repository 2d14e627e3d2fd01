//! The contract every layer implements, and the per-layer state it may keep between passes.

use lathe_formats::spec::Activation;

use crate::Rng;

/// A parameter tensor of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Name within the layer (`kernel`, `bias`, `gamma`, `moving_mean`, …).
    pub name: &'static str,
    /// Shape, Keras layout (dense kernel `[in, out]`, conv kernel `[kh, kw, cin, cout]`).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub value: Vec<f32>,
    /// Whether the optimizer updates it (moving statistics are not trained).
    pub trainable: bool,
    /// Whether decoupled weight decay applies to it (kernels only).
    pub decays: bool,
}

impl Param {
    pub(crate) fn trainable(name: &'static str, shape: Vec<usize>, value: Vec<f32>, decays: bool) -> Param {
        Param { name, shape, value, trainable: true, decays }
    }
}

/// Buffers a layer keeps from its forward pass for its backward pass (im2col columns,
/// dropout masks, pooling arg-maxes, normalised values). One per layer per workspace, so a
/// shared model can run on several threads at once.
#[derive(Debug, Default, Clone)]
pub struct Scratch {
    /// Float buffers, meaning fixed by each layer.
    pub bufs: Vec<Vec<f32>>,
    /// Index buffer (pooling arg-max).
    pub idx: Vec<u32>,
}

impl Scratch {
    /// Float buffer `i`, resized to `len` (contents unspecified).
    pub fn buf(&mut self, i: usize, len: usize) -> &mut Vec<f32> {
        if self.bufs.len() <= i {
            self.bufs.resize_with(i + 1, Vec::new);
        }
        let b = &mut self.bufs[i];
        b.resize(len, 0.0);
        b
    }
}

/// Per-pass context: training mode and the random stream for dropout.
pub struct Ctx<'a> {
    /// Training mode (dropout active, batch statistics in batch norm).
    pub training: bool,
    /// Keep what the backward pass needs even outside training (gradients of a prediction).
    pub record: bool,
    /// Random numbers for dropout.
    pub rng: &'a mut Rng,
}

/// Arguments of a backward pass through one layer.
pub struct Backward<'a> {
    /// The layer's input from the forward pass.
    pub x: &'a [f32],
    /// The layer's output from the forward pass.
    pub y: &'a [f32],
    /// Gradient w.r.t. the output; layers may overwrite it.
    pub dy: &'a mut [f32],
    /// Where to write the gradient w.r.t. the input, when it is needed.
    pub dx: Option<&'a mut [f32]>,
    /// Batch size.
    pub n: usize,
    /// `dy` already is the gradient before the layer's fused activation (softmax + cross-entropy).
    pub dy_is_pre_activation: bool,
    /// The forward pass ran in inference mode (moving statistics in batch norm, no dropout).
    pub inference: bool,
}

impl Ctx<'_> {
    /// Whether layers keep what their backward pass needs.
    pub fn keeps(&self) -> bool {
        self.training || self.record
    }
}

/// One layer of a sequential model, on batches of row-major samples (channels last).
pub trait Layer: Send + Sync {
    /// Values per sample of the output.
    fn out_len(&self) -> usize;
    /// Forward pass of `n` samples from `x` into `y`.
    fn forward(&self, x: &[f32], n: usize, y: &mut [f32], s: &mut Scratch, ctx: &mut Ctx);
    /// Backward pass; writes parameter gradients into `grads` (same order as `params`).
    fn backward(&self, b: Backward, grads: &mut [Vec<f32>], s: &mut Scratch);
    /// The parameters (empty for parameter-free layers).
    fn params(&self) -> &[Param] {
        &[]
    }
    /// Mutable parameters, for optimizers and loading.
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
    /// Folds statistics of the last training forward pass into the layer (batch norm).
    fn commit_statistics(&mut self, _s: &Scratch) {}
    /// The activation fused at the end of this layer, if any.
    fn activation(&self) -> Option<Activation> {
        None
    }
}
