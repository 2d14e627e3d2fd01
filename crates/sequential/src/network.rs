//! A sequential network built from a spec, and the workspace a pass runs in.

use lathe_formats::spec::{as_image, infer_shapes, LayerSpec, Spec};
use lathe_formats::NamedTensor;

use crate::layer::{Backward, Ctx, Layer, Param, Scratch};
use crate::layers::{ActivationLayer, BatchNorm, Conv2d, Dense, Dropout, Flatten, Pool2d, PoolKind};
use crate::{EngineError, Rng};

/// A sequential model: immutable while it predicts, so one `Network` can serve many threads,
/// each with its own [`Workspace`].
pub struct Network {
    layers: Vec<Box<dyn Layer>>,
    input_len: usize,
}

/// Activations, gradients and layer scratch for passes over batches of up to `capacity`
/// samples. Buffers grow on demand and are reused across batches.
#[derive(Default)]
pub struct Workspace {
    acts: Vec<Vec<f32>>,
    scratch: Vec<Scratch>,
    grad_a: Vec<f32>,
    grad_b: Vec<f32>,
    batch: usize,
}

/// What a backward pass computes.
#[derive(Clone, Copy)]
struct Pass {
    /// The output gradient is taken before the last layer's fused activation.
    pre_activation: bool,
    /// The forward pass ran in inference mode.
    inference: bool,
    /// Also compute the gradient w.r.t. the network's input (left in `grad_a`).
    input_gradient: bool,
}

/// Parameter gradients, shaped like the network's parameters.
pub struct Gradients {
    /// `per_layer[layer][param]`.
    pub per_layer: Vec<Vec<Vec<f32>>>,
}

impl Network {
    /// Builds the layers of `spec` with initial weights drawn from `rng`.
    pub fn from_spec(spec: &Spec, rng: &mut Rng) -> Result<Network, EngineError> {
        let shapes = infer_shapes(&spec.input.shape, &spec.layers).map_err(EngineError::Spec)?;
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(spec.layers.len());
        let mut input = spec.input.shape.clone();
        for (i, (layer, out_shape)) in spec.layers.iter().zip(&shapes).enumerate() {
            let len: usize = input.iter().product();
            let last = *input.last().expect("shapes are non-empty");
            let image = || {
                as_image(&input)
                    .ok_or_else(|| EngineError::Shape(format!("layers[{i}]: expected an image input, got {input:?}")))
            };
            let built: Box<dyn Layer> = match layer {
                LayerSpec::Flatten => Box::new(Flatten::new(len)),
                LayerSpec::Dense { units, activation } => Box::new(Dense::new(len, *units, *activation, rng)),
                LayerSpec::Dropout { rate } => Box::new(Dropout::new(len, *rate)),
                LayerSpec::Conv2d { filters, kernel, stride, padding, activation } => {
                    Box::new(Conv2d::new(image()?, *filters, *kernel, *stride, *padding, *activation, rng))
                }
                LayerSpec::MaxPool2d { pool, stride, padding } => {
                    Box::new(Pool2d::new(PoolKind::Max, image()?, *pool, *stride, *padding))
                }
                LayerSpec::AvgPool2d { pool, stride, padding } => {
                    Box::new(Pool2d::new(PoolKind::Avg, image()?, *pool, *stride, *padding))
                }
                LayerSpec::BatchNorm { momentum, epsilon } => {
                    let channels = if input.len() == 2 { 1 } else { last };
                    Box::new(BatchNorm::new(len, channels, *momentum, *epsilon))
                }
                LayerSpec::Activation { activation } => {
                    let width = if input.len() == 2 { 1 } else { last };
                    Box::new(ActivationLayer::new(len, width, *activation))
                }
            };
            debug_assert_eq!(built.out_len(), out_shape.iter().product::<usize>());
            layers.push(built);
            input = out_shape.clone();
        }
        Ok(Network { layers, input_len: spec.input_len() })
    }

    /// Values per input sample.
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// Values per output sample.
    pub fn output_len(&self) -> usize {
        self.layers.last().map(|l| l.out_len()).unwrap_or(self.input_len)
    }

    /// The activation fused at the end of the last layer.
    pub fn final_activation(&self) -> Option<lathe_formats::spec::Activation> {
        self.layers.last().and_then(|l| l.activation())
    }

    fn prepare(&self, ws: &mut Workspace, n: usize) {
        if ws.acts.len() != self.layers.len() {
            ws.acts = vec![Vec::new(); self.layers.len()];
            ws.scratch = vec![Scratch::default(); self.layers.len()];
        }
        let mut widest = self.input_len;
        for (a, l) in ws.acts.iter_mut().zip(&self.layers) {
            a.resize(n * l.out_len(), 0.0);
            widest = widest.max(l.out_len());
        }
        ws.grad_a.resize(n * widest, 0.0);
        ws.grad_b.resize(n * widest, 0.0);
        ws.batch = n;
    }

    /// Runs `n` samples (`x` holds `n · input_len` preprocessed values) and returns the outputs.
    pub fn forward<'w>(&self, x: &[f32], n: usize, ws: &'w mut Workspace, training: bool, rng: &mut Rng) -> &'w [f32] {
        assert_eq!(
            x.len(),
            n * self.input_len,
            "forward: input holds {} values, expected {n} x {}",
            x.len(),
            self.input_len
        );
        self.prepare(ws, n);
        let mut ctx = Ctx { training, record: false, rng };
        self.run_layers(x, ws, &mut ctx)
    }

    fn run_layers<'w>(&self, x: &[f32], ws: &'w mut Workspace, ctx: &mut Ctx) -> &'w [f32] {
        let n = ws.batch;
        for i in 0..self.layers.len() {
            let (before, rest) = ws.acts.split_at_mut(i);
            let input: &[f32] = if i == 0 { x } else { &before[i - 1] };
            self.layers[i].forward(input, n, &mut rest[0], &mut ws.scratch[i], ctx);
        }
        ws.acts.last().expect("a network has at least one layer")
    }

    /// The buffer the caller fills with the loss gradient w.r.t. the output of the last
    /// forward pass, before calling [`Network::backward`].
    pub fn output_grad<'w>(&self, ws: &'w mut Workspace) -> &'w mut [f32] {
        let len = ws.batch * self.output_len();
        &mut ws.grad_a[..len]
    }

    /// Backpropagates the gradient in `output_grad` through the last forward pass into
    /// `grads`. With `pre_activation`, that gradient is w.r.t. the last layer's input to its
    /// fused activation (the fused softmax/sigmoid + cross-entropy gradient).
    pub fn backward(&self, x: &[f32], ws: &mut Workspace, grads: &mut Gradients, pre_activation: bool) {
        self.backward_pass(x, ws, grads, Pass { pre_activation, inference: false, input_gradient: false });
    }

    /// For each of `n` samples (`x`, preprocessed), output unit `unit` of an inference pass and
    /// its gradient w.r.t. every input value (`n · input_len`), through the layers' own backward
    /// passes in inference mode (moving statistics, no dropout). The basis of saliency maps and
    /// integrated gradients.
    ///
    /// # Panics
    /// When `unit` is not below [`Network::output_len`] or `x` is not `n` samples.
    pub fn input_gradients(&self, x: &[f32], n: usize, ws: &mut Workspace, unit: usize) -> (Vec<f32>, Vec<f32>) {
        let width = self.output_len();
        assert!(unit < width, "input_gradients: unit {unit} of {width} outputs");
        assert_eq!(x.len(), n * self.input_len, "input_gradients: expected {n} x {} values", self.input_len);
        self.prepare(ws, n);
        let mut rng = Rng::new(0);
        let mut ctx = Ctx { training: false, record: true, rng: &mut rng };
        let values: Vec<f32> = self.run_layers(x, ws, &mut ctx).iter().skip(unit).step_by(width).copied().collect();
        let dy = self.output_grad(ws);
        dy.fill(0.0);
        dy.iter_mut().skip(unit).step_by(width).for_each(|d| *d = 1.0);
        let mut grads = self.zero_gradients();
        self.backward_pass(x, ws, &mut grads, Pass { pre_activation: false, inference: true, input_gradient: true });
        (values, ws.grad_a[..n * self.input_len].to_vec())
    }

    fn backward_pass(&self, x: &[f32], ws: &mut Workspace, grads: &mut Gradients, pass: Pass) {
        let Pass { pre_activation, inference, input_gradient } = pass;
        let n = ws.batch;
        let last = self.layers.len() - 1;
        for i in (0..self.layers.len()).rev() {
            let layer = &self.layers[i];
            let input: &[f32] = if i == 0 { x } else { &ws.acts[i - 1] };
            let in_len = if i == 0 { self.input_len } else { self.layers[i - 1].out_len() };
            let (dy_buf, dx_buf) = (&mut ws.grad_a, &mut ws.grad_b);
            let dy = &mut dy_buf[..n * layer.out_len()];
            let dx = (i > 0 || input_gradient).then(|| &mut dx_buf[..n * in_len]);
            let dy_is_pre_activation = pre_activation && i == last;
            let b = Backward { x: input, y: &ws.acts[i], dy, dx, n, dy_is_pre_activation, inference };
            layer.backward(b, &mut grads.per_layer[i], &mut ws.scratch[i]);
            std::mem::swap(&mut ws.grad_a, &mut ws.grad_b);
        }
    }

    /// Each layer's output of the last forward pass in `ws` (`batch · out_len` values each).
    pub fn activations<'w>(&self, ws: &'w Workspace) -> &'w [Vec<f32>] {
        &ws.acts
    }

    /// Each layer's parameters, in layer order.
    pub fn layer_parameters(&self) -> Vec<&[Param]> {
        self.layers.iter().map(|l| l.params()).collect()
    }

    /// Folds the batch statistics of the last training pass into the layers (batch norm).
    pub fn commit_statistics(&mut self, ws: &Workspace) {
        for (l, s) in self.layers.iter_mut().zip(&ws.scratch) {
            l.commit_statistics(s);
        }
    }

    /// Zero gradients shaped like the parameters.
    pub fn zero_gradients(&self) -> Gradients {
        Gradients {
            per_layer: self
                .layers
                .iter()
                .map(|l| l.params().iter().map(|p| vec![0.0; p.value.len()]).collect())
                .collect(),
        }
    }

    /// Visits every parameter with its gradient, as `(name, param, grad)`.
    pub fn for_each_param(&mut self, grads: &Gradients, mut f: impl FnMut(usize, &mut Param, &[f32])) {
        let mut k = 0;
        for (l, g) in self.layers.iter_mut().zip(&grads.per_layer) {
            for (p, g) in l.params_mut().iter_mut().zip(g) {
                f(k, p, g);
                k += 1;
            }
        }
    }

    /// Number of trainable values.
    pub fn trainable_count(&self) -> usize {
        self.layers.iter().flat_map(|l| l.params()).filter(|p| p.trainable).map(|p| p.value.len()).sum()
    }

    /// All parameters as named tensors (`layers.{i}.{name}`).
    pub fn tensors(&self) -> Vec<NamedTensor> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            for p in l.params() {
                out.push(NamedTensor {
                    name: format!("layers.{i}.{}", p.name),
                    shape: p.shape.clone(),
                    data: p.value.clone(),
                });
            }
        }
        out
    }

    /// Loads parameters from named tensors; every parameter must be present with its shape.
    pub fn load_tensors(&mut self, tensors: &[NamedTensor]) -> Result<(), EngineError> {
        let expected: usize = self.layers.iter().map(|l| l.params().len()).sum();
        if tensors.len() != expected {
            return Err(EngineError::Weights(format!("expected {expected} tensors, the file holds {}", tensors.len())));
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            for p in l.params_mut() {
                let name = format!("layers.{i}.{}", p.name);
                let t = tensors
                    .iter()
                    .find(|t| t.name == name)
                    .ok_or_else(|| EngineError::Weights(format!("missing tensor {name}")))?;
                if t.shape != p.shape {
                    return Err(EngineError::Weights(format!(
                        "tensor {name}: expected shape {:?}, got {:?}",
                        p.shape, t.shape
                    )));
                }
                p.value.copy_from_slice(&t.data);
            }
        }
        Ok(())
    }
}
