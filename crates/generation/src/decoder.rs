//! The decoder's forward pass over one or more new tokens with a KV cache, after llama.cpp's
//! `src/models/llama.cpp` and `qwen2.cpp` and transformers' `modeling_llama.py`. Several
//! tokens at once (prompt processing, "prefill") share every read of a weight row; one token
//! at a time is decoding.

use std::time::{Duration, Instant};

use lathe_kernels::math::swiglu;
use rayon::prelude::*;

use lathe_kernels::causal::{attend_cached, CausalHeads};
use lathe_kernels::quant::{matvec_group, quantize_rows, Activations, GgmlType};

use crate::config::{DecoderConfig, RopeStyle};
use crate::weights::{Layer, Matrix, Weights};

/// Keys and values of the positions a sequence has seen, per layer (f32, `[len, kv_heads ·
/// head_dim]` each).
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    /// Positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every position from `len` on (a shorter prefix stays usable).
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            let width = self.keys.first().map_or(0, |k| k.len() / self.len.max(1));
            self.keys.iter_mut().chain(self.values.iter_mut()).for_each(|c| c.truncate(len * width));
            self.len = len;
        }
    }
}

/// The operations of a forward pass, for reports of where the time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// RMSNorm, residual additions, biases and RoPE.
    Elementwise,
    /// Query, key and value projections.
    QkvProjection,
    /// Scores, softmax and the weighted sum over the KV cache.
    Attention,
    /// The attention output projection.
    OutputProjection,
    /// Gate, up and down projections with SwiGLU.
    FeedForward,
    /// The final norm and the output head (logits).
    Logits,
}

impl Op {
    /// Every operation, in the order a layer runs them.
    pub const ALL: [Op; 6] =
        [Op::Elementwise, Op::QkvProjection, Op::Attention, Op::OutputProjection, Op::FeedForward, Op::Logits];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Elementwise => "norms, rope, residuals",
            Op::QkvProjection => "q/k/v projections",
            Op::Attention => "attention",
            Op::OutputProjection => "attention output projection",
            Op::FeedForward => "feed-forward (gate, up, down)",
            Op::Logits => "output head (logits)",
        }
    }
}

/// Time spent per [`Op`], summed over the forward passes that were given it.
#[derive(Debug, Clone, Default)]
pub struct OpTimes([Duration; 6]);

impl OpTimes {
    /// Time spent in `op`.
    pub fn get(&self, op: Op) -> Duration {
        self.0[op as usize]
    }

    fn add(&mut self, op: Op, since: &mut Instant) {
        let now = Instant::now();
        self.0[op as usize] += now - *since;
        *since = now;
    }
}

/// A decoder-only transformer ready to run.
pub struct Decoder {
    cfg: DecoderConfig,
    weights: Weights,
}

/// Activations of a batch of `n` tokens (`[n, width]` each).
struct Batch {
    n: usize,
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// `(cos, sin)` of each RoPE pair at each token's position, `[n, rope_dims / 2]`.
    rotation: Vec<(f32, f32)>,
}

impl Decoder {
    /// A decoder of `cfg` with `weights` (checked against it when read).
    pub fn new(cfg: DecoderConfig, weights: Weights) -> Decoder {
        Decoder { cfg, weights }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// An empty KV cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache { keys: vec![Vec::new(); self.cfg.layers], values: vec![Vec::new(); self.cfg.layers], len: 0 }
    }

    /// Runs `token` at the next position of `cache`; returns the logits (`vocab_size`).
    pub fn forward(&self, token: u32, cache: &mut KvCache) -> Vec<f32> {
        self.run(&[token], cache, &mut OpTimes::default())
    }

    /// Runs `tokens` (at least one) at the next positions of `cache` in one batch; returns the
    /// logits after the last one (`vocab_size`). Time per operation is added to `times`.
    ///
    /// # Panics
    /// When `tokens` is empty or holds an id outside the vocabulary.
    pub fn run(&self, tokens: &[u32], cache: &mut KvCache, times: &mut OpTimes) -> Vec<f32> {
        assert!(!tokens.is_empty(), "a forward pass needs a token");
        let mut clock = Instant::now();
        let mut b = self.batch(tokens, cache.len);
        for (i, layer) in self.weights.layers.iter().enumerate() {
            self.attention(layer, &mut b, cache, i, times, &mut clock);
            self.feed_forward(layer, &mut b, times, &mut clock);
        }
        cache.len += tokens.len();
        let c = &self.cfg;
        let last = &b.x[(b.n - 1) * c.hidden..];
        rms_norm(last, &self.weights.out_norm, c.rms_eps, &mut b.h[..c.hidden]);
        let mut logits = vec![0.0; c.vocab_size];
        self.weights.output.matvec(&b.h[..c.hidden], &mut logits);
        times.add(Op::Logits, &mut clock);
        logits
    }

    fn batch(&self, tokens: &[u32], start: usize) -> Batch {
        let c = &self.cfg;
        let n = tokens.len();
        let (q_dim, kv_dim) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let mut x = vec![0.0; n * c.hidden];
        for (row, &t) in x.chunks_exact_mut(c.hidden).zip(tokens) {
            self.weights.embed.row(t as usize, row);
        }
        Batch {
            n,
            x,
            h: vec![0.0; n * c.hidden],
            q: vec![0.0; n * q_dim],
            k: vec![0.0; n * kv_dim],
            v: vec![0.0; n * kv_dim],
            attn: vec![0.0; n * q_dim],
            proj: vec![0.0; n * c.hidden],
            gate: vec![0.0; n * c.ffn],
            up: vec![0.0; n * c.ffn],
            rotation: (start..start + n).flat_map(|pos| rotation(pos, c)).collect(),
        }
    }

    fn attention(
        &self,
        layer: &Layer,
        b: &mut Batch,
        cache: &mut KvCache,
        i: usize,
        times: &mut OpTimes,
        clock: &mut Instant,
    ) {
        let c = &self.cfg;
        rms_norm_rows(&b.x, &layer.attn_norm, c.rms_eps, &mut b.h);
        times.add(Op::Elementwise, clock);
        SharedInput::new(&b.h, b.n).project_all(&mut [
            (&layer.q, &mut b.q),
            (&layer.k, &mut b.k),
            (&layer.v, &mut b.v),
        ]);
        times.add(Op::QkvProjection, clock);
        if let Some([bq, bk, bv]) = &layer.qkv_bias {
            add_rows(&mut b.q, bq);
            add_rows(&mut b.k, bk);
            add_rows(&mut b.v, bv);
        }
        let pairs = c.rope_dims / 2;
        for (t, rot) in b.rotation.chunks_exact(pairs.max(1)).enumerate().take(b.n) {
            let (q_dim, kv_dim) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
            let q = b.q[t * q_dim..(t + 1) * q_dim].chunks_exact_mut(c.head_dim);
            let k = b.k[t * kv_dim..(t + 1) * kv_dim].chunks_exact_mut(c.head_dim);
            q.chain(k).for_each(|head| rope(head, rot, c.rope_style));
        }
        cache.keys[i].extend_from_slice(&b.k);
        cache.values[i].extend_from_slice(&b.v);
        times.add(Op::Elementwise, clock);
        let shape = CausalHeads { heads: c.heads, kv_heads: c.kv_heads, dim: c.head_dim };
        attend_cached(&b.q, &cache.keys[i], &cache.values[i], cache.len, shape, &mut b.attn);
        times.add(Op::Attention, clock);
        layer.o.matmul(&b.attn, b.n, &mut b.proj);
        times.add(Op::OutputProjection, clock);
        add(&mut b.x, &b.proj);
        times.add(Op::Elementwise, clock);
    }

    fn feed_forward(&self, layer: &Layer, b: &mut Batch, times: &mut OpTimes, clock: &mut Instant) {
        rms_norm_rows(&b.x, &layer.ffn_norm, self.cfg.rms_eps, &mut b.h);
        times.add(Op::Elementwise, clock);
        SharedInput::new(&b.h, b.n).project_all(&mut [(&layer.gate, &mut b.gate), (&layer.up, &mut b.up)]);
        if b.n == 1 {
            swiglu(&mut b.gate, &b.up);
        } else {
            let width = self.cfg.ffn;
            b.gate.par_chunks_mut(width).zip(b.up.par_chunks(width)).for_each(|(g, u)| swiglu(g, u));
        }
        layer.down.matmul(&b.gate, b.n, &mut b.proj);
        times.add(Op::FeedForward, clock);
        add(&mut b.x, &b.proj);
        times.add(Op::Elementwise, clock);
    }
}

/// One input of several projections, quantized once per weight type.
struct SharedInput<'a> {
    x: &'a [f32],
    tokens: usize,
    quantized: Option<(GgmlType, Vec<Activations>)>,
}

impl<'a> SharedInput<'a> {
    fn new(x: &'a [f32], tokens: usize) -> SharedInput<'a> {
        SharedInput { x, tokens, quantized: None }
    }

    /// `out = x·Wᵀ` for each `(W, out)`; one token of matrices of one type runs as one
    /// parallel group.
    fn project_all(&mut self, products: &mut [(&Matrix, &mut Vec<f32>)]) {
        let ty = products[0].0.ty();
        if self.tokens == 1 && products.iter().all(|(w, _)| w.ty() == ty) {
            let acts = quantize_rows(ty, self.x, 1);
            let mut members: Vec<_> = products.iter_mut().map(|(w, out)| w.group_member(out)).collect();
            return matvec_group(&mut members, &acts);
        }
        for (w, out) in products.iter_mut() {
            self.project(w, out);
        }
    }

    /// `out = x·Wᵀ`, reusing the quantized input when `w` has the type of the previous one.
    fn project(&mut self, w: &Matrix, out: &mut [f32]) {
        let same = self.quantized.as_ref().is_some_and(|(ty, _)| *ty == w.ty());
        if !same {
            self.quantized = Some((w.ty(), quantize_rows(w.ty(), self.x, self.tokens)));
        }
        let (_, acts) = self.quantized.as_ref().expect("quantized above");
        w.matmul_quantized(acts, out);
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// Adds `bias` to every row of `x`.
fn add_rows(x: &mut [f32], bias: &[f32]) {
    x.chunks_exact_mut(bias.len()).for_each(|row| add(row, bias));
}

/// `out = x / sqrt(mean(x²) + eps) · w`, the mean summed in f64.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    let inv = (1.0 / (mean + eps as f64).sqrt()) as f32;
    out.iter_mut().zip(x.iter().zip(w)).for_each(|(o, (x, w))| *o = x * inv * w);
}

/// [`rms_norm`] of each row of `x` (rows as long as `w`).
fn rms_norm_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    for (row, o) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        rms_norm(row, w, eps, o);
    }
}

/// `(cos, sin)` of pair `i < rope_dims/2` at `pos`: the angle `pos · freq_scale ·
/// theta^(−2i/rope_dims) / factor_i` (`factor_i` from Llama-3 scaling, else 1).
fn rotation(pos: usize, c: &DecoderConfig) -> impl Iterator<Item = (f32, f32)> + '_ {
    (0..c.rope_dims / 2).map(move |i| {
        let inv_freq = (c.rope_theta as f64).powf(-2.0 * i as f64 / c.rope_dims as f64);
        let factor = c.rope_freq_factors.as_ref().map_or(1.0, |f| f[i] as f64);
        let angle = pos as f64 * c.rope_freq_scale as f64 * inv_freq / factor;
        (angle.cos() as f32, angle.sin() as f32)
    })
}

/// Rotates one head by `rotation`, pairing dimensions as `style` says.
fn rope(head: &mut [f32], rotation: &[(f32, f32)], style: RopeStyle) {
    let half = rotation.len();
    for (i, &(cos, sin)) in rotation.iter().enumerate() {
        let (a, b) = match style {
            RopeStyle::Norm => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + half),
        };
        let (x, y) = (head[a], head[b]);
        head[a] = x * cos - y * sin;
        head[b] = x * sin + y * cos;
    }
}
