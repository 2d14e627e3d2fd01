//! The decoder's forward pass, one token at a time with a KV cache: the portable reference
//! (f32 arithmetic on rows decoded from the stored type), after llama.cpp's
//! `src/models/llama.cpp` and `qwen2.cpp` and transformers' `modeling_llama.py`.

use lathe_kernels::math::softmax;

use crate::config::{DecoderConfig, RopeStyle};
use crate::weights::{Layer, Weights};

/// Keys and values of the positions a sequence has seen, per layer.
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
}

/// A decoder-only transformer ready to run.
pub struct Decoder {
    cfg: DecoderConfig,
    weights: Weights,
}

/// Scratch buffers of one forward step.
struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// `(cos, sin)` of each RoPE pair at this position, shared by every head and layer.
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
        let c = &self.cfg;
        let (q_dim, kv_dim) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let mut s = Scratch {
            x: vec![0.0; c.hidden],
            h: vec![0.0; c.hidden],
            q: vec![0.0; q_dim],
            k: vec![0.0; kv_dim],
            v: vec![0.0; kv_dim],
            attn: vec![0.0; q_dim],
            proj: vec![0.0; c.hidden],
            gate: vec![0.0; c.ffn],
            up: vec![0.0; c.ffn],
            rotation: rotation(cache.len, c),
        };
        self.weights.embed.row(token as usize, &mut s.x);
        let pos = cache.len;
        for (i, layer) in self.weights.layers.iter().enumerate() {
            self.attention(layer, &mut s, pos, &mut cache.keys[i], &mut cache.values[i]);
            self.feed_forward(layer, &mut s);
        }
        cache.len += 1;
        rms_norm(&s.x, &self.weights.out_norm, c.rms_eps, &mut s.h);
        let mut logits = vec![0.0; c.vocab_size];
        self.weights.output.matvec(&s.h, &mut logits);
        logits
    }

    fn attention(&self, layer: &Layer, s: &mut Scratch, pos: usize, keys: &mut Vec<f32>, values: &mut Vec<f32>) {
        let c = &self.cfg;
        rms_norm(&s.x, &layer.attn_norm, c.rms_eps, &mut s.h);
        layer.q.matvec(&s.h, &mut s.q);
        layer.k.matvec(&s.h, &mut s.k);
        layer.v.matvec(&s.h, &mut s.v);
        if let Some([bq, bk, bv]) = &layer.qkv_bias {
            add(&mut s.q, bq);
            add(&mut s.k, bk);
            add(&mut s.v, bv);
        }
        for head in s.q.chunks_mut(c.head_dim).chain(s.k.chunks_mut(c.head_dim)) {
            rope(head, &s.rotation, c.rope_style);
        }
        keys.extend_from_slice(&s.k);
        values.extend_from_slice(&s.v);
        let (kv_dim, group) = (c.kv_heads * c.head_dim, c.heads / c.kv_heads.max(1));
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let mut scores = vec![0.0f32; pos + 1];
        for head in 0..c.heads {
            let q = &s.q[head * c.head_dim..(head + 1) * c.head_dim];
            let kv = (head / group) * c.head_dim;
            for (t, score) in scores.iter_mut().enumerate() {
                let k = &keys[t * kv_dim + kv..t * kv_dim + kv + c.head_dim];
                *score = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>();
            }
            softmax(&mut scores, scale);
            let out = &mut s.attn[head * c.head_dim..(head + 1) * c.head_dim];
            out.fill(0.0);
            for (t, &w) in scores.iter().enumerate() {
                let v = &values[t * kv_dim + kv..t * kv_dim + kv + c.head_dim];
                out.iter_mut().zip(v).for_each(|(o, v)| *o += w * v);
            }
        }
        layer.o.matvec(&s.attn, &mut s.proj);
        add(&mut s.x, &s.proj);
    }

    fn feed_forward(&self, layer: &Layer, s: &mut Scratch) {
        rms_norm(&s.x, &layer.ffn_norm, self.cfg.rms_eps, &mut s.h);
        layer.gate.matvec(&s.h, &mut s.gate);
        layer.up.matvec(&s.h, &mut s.up);
        s.gate.iter_mut().zip(&s.up).for_each(|(g, u)| *g = *g / (1.0 + (-*g).exp()) * u);
        layer.down.matvec(&s.gate, &mut s.proj);
        add(&mut s.x, &s.proj);
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// `out = x / sqrt(mean(x²) + eps) · w`, the mean summed in f64.
fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let mean = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / x.len() as f64;
    let inv = (1.0 / (mean + eps as f64).sqrt()) as f32;
    out.iter_mut().zip(x.iter().zip(w)).for_each(|(o, (x, w))| *o = x * inv * w);
}

/// `(cos, sin)` of pair `i < rope_dims/2` at `pos`: the angle `pos · freq_scale ·
/// theta^(−2i/rope_dims)`.
fn rotation(pos: usize, c: &DecoderConfig) -> Vec<(f32, f32)> {
    (0..c.rope_dims / 2)
        .map(|i| {
            let inv_freq = (c.rope_theta as f64).powf(-2.0 * i as f64 / c.rope_dims as f64);
            let angle = pos as f64 * c.rope_freq_scale as f64 * inv_freq;
            (angle.cos() as f32, angle.sin() as f32)
        })
        .collect()
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
