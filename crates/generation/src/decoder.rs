//! The decoder's forward pass over one or more new tokens with a KV cache, after llama.cpp's
//! `src/models/llama.cpp` and `qwen2.cpp` and transformers' `modeling_llama.py`. Several
//! tokens at once (prompt processing, "prefill") share every read of a weight row; one token
//! at a time is decoding.

use std::time::{Duration, Instant};

use lathe_kernels::math::swiglu;
use rayon::prelude::*;

use lathe_engine::generation::{KvBlocks, SequenceChunk};
use lathe_kernels::causal::{attend_paged, CausalHeads, PagedKv, PagedQuery};
use lathe_kernels::quant::{matvec_group, quantize_rows, Activations, GgmlType};

use crate::config::{DecoderConfig, RopeStyle};
use crate::weights::{Layer, Matrix, Weights};

/// Positions per block of a single sequence's [`KvCache`].
const CACHE_BLOCK: usize = 64;

/// One sequence's KV cache, growing a block at a time (the paged layout of
/// [`Decoder::new_kv_blocks`] with a block table of its own).
pub struct KvCache {
    kv: KvBlocks,
    table: Vec<u32>,
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
        self.len = self.len.min(len);
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

    /// f32 values of one KV-cache block of `block_size` positions: every layer's keys and
    /// values, laid out `[layer][keys, values][position][kv_heads · head_dim]`.
    pub fn kv_block_floats(&self, block_size: usize) -> usize {
        let c = &self.cfg;
        c.layers * 2 * block_size * c.kv_heads * c.head_dim
    }

    /// A zeroed pool of `blocks` KV-cache blocks of `block_size` positions.
    pub fn new_kv_blocks(&self, blocks: usize, block_size: usize) -> KvBlocks {
        let floats_per_block = self.kv_block_floats(block_size);
        KvBlocks { block_size, floats_per_block, data: vec![0.0; blocks * floats_per_block] }
    }

    /// An empty KV cache for one sequence.
    pub fn new_cache(&self) -> KvCache {
        KvCache { kv: self.new_kv_blocks(0, CACHE_BLOCK), table: Vec::new(), len: 0 }
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
        let needed = (cache.len + tokens.len()).div_ceil(CACHE_BLOCK);
        while cache.table.len() < needed {
            cache.table.push(cache.kv.len() as u32);
            let grown = cache.kv.data.len() + cache.kv.floats_per_block;
            cache.kv.data.resize(grown, 0.0);
        }
        let chunk = SequenceChunk { tokens, start: cache.len, blocks: &cache.table, logits: true };
        let mut logits = self.run_chunks(&[chunk], &mut cache.kv, times);
        cache.len += tokens.len();
        logits.pop().expect("the chunk asks for logits")
    }

    /// Runs the tokens of several sequences in one pass (continuous batching): every weight
    /// row is read once for all of them, each sequence attends over its own blocks of `kv`
    /// (a pool from [`Decoder::new_kv_blocks`]), and the new positions' keys and values are
    /// written there. Returns the logits (`vocab_size`) after the last token of each chunk
    /// that asks for them, in order.
    ///
    /// # Panics
    /// When a chunk is empty, holds an id outside the vocabulary, or its block table does not
    /// cover its positions with blocks of `kv`.
    pub fn run_chunks(&self, chunks: &[SequenceChunk], kv: &mut KvBlocks, times: &mut OpTimes) -> Vec<Vec<f32>> {
        assert!(chunks.iter().all(|c| !c.tokens.is_empty()), "a forward pass needs a token per sequence");
        assert_eq!(kv.floats_per_block, self.kv_block_floats(kv.block_size), "KV blocks of another shape");
        for c in chunks {
            let needed = (c.start + c.tokens.len()).div_ceil(kv.block_size);
            assert!(c.blocks.len() >= needed, "the block table does not cover the chunk");
            assert!(c.blocks[..needed].iter().all(|&b| (b as usize) < kv.len()), "a block outside the pool");
        }
        let mut clock = Instant::now();
        let mut b = self.batch(chunks);
        for (i, layer) in self.weights.layers.iter().enumerate() {
            self.attention(layer, &mut b, chunks, kv, i, times, &mut clock);
            self.feed_forward(layer, &mut b, times, &mut clock);
        }
        let logits = self.logits(&b, chunks);
        times.add(Op::Logits, &mut clock);
        logits
    }

    /// The final norm and output head for the last token of each chunk that asks for logits.
    fn logits(&self, b: &Batch, chunks: &[SequenceChunk]) -> Vec<Vec<f32>> {
        let (hidden, vocab) = (self.cfg.hidden, self.cfg.vocab_size);
        let mut rows = Vec::new();
        let mut end = 0;
        for c in chunks {
            end += c.tokens.len();
            if c.logits {
                let mut h = vec![0.0; hidden];
                rms_norm(&b.x[(end - 1) * hidden..end * hidden], &self.weights.out_norm, self.cfg.rms_eps, &mut h);
                rows.extend(h);
            }
        }
        let m = rows.len() / hidden;
        let mut out = vec![0.0; m * vocab];
        self.weights.output.matmul(&rows, m, &mut out);
        out.chunks_exact(vocab.max(1)).map(<[f32]>::to_vec).collect()
    }

    fn batch(&self, chunks: &[SequenceChunk]) -> Batch {
        let c = &self.cfg;
        let n: usize = chunks.iter().map(|ch| ch.tokens.len()).sum();
        let (q_dim, kv_dim) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
        let mut x = vec![0.0; n * c.hidden];
        let tokens = chunks.iter().flat_map(|ch| ch.tokens);
        for (row, &t) in x.chunks_exact_mut(c.hidden).zip(tokens) {
            self.weights.embed.row(t as usize, row);
        }
        let positions = chunks.iter().flat_map(|ch| ch.start..ch.start + ch.tokens.len());
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
            rotation: positions.flat_map(|pos| rotation(pos, c)).collect(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: &Layer,
        b: &mut Batch,
        chunks: &[SequenceChunk],
        kv: &mut KvBlocks,
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
        self.store_kv(b, chunks, kv, i);
        times.add(Op::Elementwise, clock);
        self.attend(b, chunks, kv, i);
        times.add(Op::Attention, clock);
        layer.o.matmul(&b.attn, b.n, &mut b.proj);
        times.add(Op::OutputProjection, clock);
        add(&mut b.x, &b.proj);
        times.add(Op::Elementwise, clock);
    }

    /// Where layer `layer`'s keys (`value = false`) or values start in a block, and how many
    /// floats a block holds of them.
    fn kv_span(&self, block_size: usize, layer: usize, value: bool) -> std::ops::Range<usize> {
        let width = block_size * self.cfg.kv_heads * self.cfg.head_dim;
        let start = (layer * 2 + value as usize) * width;
        start..start + width
    }

    /// Writes the batch's new keys and values of layer `layer` into the chunks' blocks.
    fn store_kv(&self, b: &Batch, chunks: &[SequenceChunk], kv: &mut KvBlocks, layer: usize) {
        let (kv_dim, bs) = (self.cfg.kv_heads * self.cfg.head_dim, kv.block_size);
        let (keys, values) = (self.kv_span(bs, layer, false), self.kv_span(bs, layer, true));
        let mut row = 0;
        for c in chunks {
            for pos in c.start..c.start + c.tokens.len() {
                let block = kv.block_mut(c.blocks[pos / bs]);
                let slot = (pos % bs) * kv_dim;
                block[keys.start + slot..][..kv_dim].copy_from_slice(&b.k[row * kv_dim..(row + 1) * kv_dim]);
                block[values.start + slot..][..kv_dim].copy_from_slice(&b.v[row * kv_dim..(row + 1) * kv_dim]);
                row += 1;
            }
        }
    }

    /// Layer `layer` of a sequence's first `len` positions as paged blocks.
    fn layer_kv<'a>(&self, kv: &'a KvBlocks, blocks: &[u32], layer: usize, len: usize) -> PagedKv<'a> {
        let bs = kv.block_size;
        let (keys, values) = (self.kv_span(bs, layer, false), self.kv_span(bs, layer, true));
        let used = &blocks[..len.div_ceil(bs)];
        PagedKv {
            keys: used.iter().map(|&id| &kv.block(id)[keys.clone()]).collect(),
            values: used.iter().map(|&id| &kv.block(id)[values.clone()]).collect(),
            block_size: bs,
            len,
        }
    }

    /// Attention of every chunk's queries over its own cached positions (its blocks), all in
    /// one parallel pass; a query's values do not depend on the rest of the batch.
    fn attend(&self, b: &mut Batch, chunks: &[SequenceChunk], kv: &KvBlocks, layer: usize) {
        let c = &self.cfg;
        let shape = CausalHeads { heads: c.heads, kv_heads: c.kv_heads, dim: c.head_dim };
        let seqs: Vec<PagedKv> =
            chunks.iter().map(|ch| self.layer_kv(kv, ch.blocks, layer, ch.start + ch.tokens.len())).collect();
        let queries: Vec<PagedQuery> = chunks
            .iter()
            .enumerate()
            .flat_map(|(seq, ch)| (ch.start..ch.start + ch.tokens.len()).map(move |p| PagedQuery { seq, len: p + 1 }))
            .collect();
        attend_paged(&b.q, &seqs, &queries, shape, &mut b.attn);
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
