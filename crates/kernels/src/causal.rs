//! Causal attention of new query tokens over a sequence's KV cache, with grouped-query heads
//! (Ainslie et al. 2023, "GQA"): query head `h` reads key/value head `h / (heads / kv_heads)`.
//! One task per (token, head); scores, softmax and the weighted sum of values run in
//! vectorised loops compiled per code path, in position order (results do not depend on
//! the batch).

use rayon::prelude::*;

use crate::math;

/// The shape of a decoder's attention.
#[derive(Debug, Clone, Copy)]
pub struct CausalHeads {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (divides `heads`).
    pub kv_heads: usize,
    /// Width of one head.
    pub dim: usize,
}

/// `Σ a·b` in 8 independent lanes so it vectorises.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        acc.iter_mut().zip(x.iter().zip(y)).for_each(|(s, (x, y))| *s += x * y);
    }
    acc.iter().sum::<f32>() + tail
}

/// A sequence's KV cache of one layer in blocks (vLLM's PagedAttention, Kwon et al. 2023):
/// position `t` lives in row `t % block_size` of `keys[t / block_size]` and
/// `values[t / block_size]`, rows of `kv_heads · dim` values.
#[derive(Debug, Clone)]
pub struct PagedKv<'a> {
    /// Each block's keys, `[block_size, kv_heads · dim]` (the last block may be shorter).
    pub keys: Vec<&'a [f32]>,
    /// Each block's values, shaped as `keys`.
    pub values: Vec<&'a [f32]>,
    /// Positions per block.
    pub block_size: usize,
    /// Positions the query attends to (`0..len`).
    pub len: usize,
}

impl PagedKv<'_> {
    /// Panics unless the blocks hold `len` positions of rows `stride` wide.
    fn check(&self, stride: usize) {
        assert!(self.block_size > 0, "blocks must hold at least one position");
        assert_eq!(self.keys.len(), self.values.len(), "as many key blocks as value blocks");
        let mut left = self.len;
        for (k, v) in self.keys.iter().zip(&self.values) {
            let rows = left.min(self.block_size);
            let needed = rows.checked_mul(stride).expect("KV block size overflows");
            assert!(k.len() >= needed && v.len() >= needed, "KV block too short");
            left -= rows;
        }
        assert_eq!(left, 0, "the blocks hold fewer positions than len");
    }
}

/// One key/value head of a paged KV cache: position `t`'s key starts at `(t % block_size) ·
/// stride + offset` of block `t / block_size`.
#[derive(Clone, Copy)]
struct KvHead<'a> {
    kv: &'a PagedKv<'a>,
    stride: usize,
    offset: usize,
}

multiversion! {
/// One head of one query: `out = softmax(q·Kᵀ·scale)·V` over the first `scores.len()` cached
/// positions of `kv`, block by block, in position order.
fn attend_one(q: &[f32], kv: KvHead, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let (dim, bs) = (q.len(), kv.kv.block_size);
    for (chunk, keys) in scores.chunks_mut(bs).zip(&kv.kv.keys) {
        for (row, s) in chunk.iter_mut().enumerate() {
            let at = row * kv.stride + kv.offset;
            *s = dot(q, &keys[at..at + dim]);
        }
    }
    math::softmax(scores, scale);
    out.fill(0.0);
    for (chunk, values) in scores.chunks(bs).zip(&kv.kv.values) {
        for (row, &w) in chunk.iter().enumerate() {
            let at = row * kv.stride + kv.offset;
            out.iter_mut().zip(&values[at..at + dim]).for_each(|(o, v)| *o += w * v);
        }
    }
}
}

/// One query of [`attend_paged`]: the sequence it belongs to and how many of its positions it
/// sees (its own included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagedQuery {
    /// Index into the sequences.
    pub seq: usize,
    /// Positions `0..len` are attended to.
    pub len: usize,
}

/// Causal attention of new queries, each over its own sequence's paged KV cache: `q` and `out`
/// are `[queries.len(), heads·dim]`, query `i` attends to positions `0..queries[i].len` of
/// `seqs[queries[i].seq]`, scaled by `1/√dim`. One task per (query, head); each query's scores,
/// softmax and weighted sum run in position order, so a query gets the same values whatever
/// else is in the batch and whether its tokens came one at a time or as a prompt.
///
/// # Panics
/// When `kv_heads` does not divide `heads`, a buffer is shorter than the shapes say, or a query
/// reads a sequence that does not exist or positions its blocks do not hold.
pub fn attend_paged(q: &[f32], seqs: &[PagedKv], queries: &[PagedQuery], shape: CausalHeads, out: &mut [f32]) {
    let CausalHeads { heads, kv_heads, dim } = shape;
    assert!(kv_heads > 0 && heads.is_multiple_of(kv_heads), "{heads} query heads cannot share {kv_heads} kv heads");
    assert!(dim > 0, "heads must have at least one dimension");
    let q_width = heads.checked_mul(dim).expect("heads × dim overflows");
    assert_eq!(q.len(), queries.len().checked_mul(q_width).expect("query size overflows"), "one row per query");
    assert_eq!(out.len(), q.len(), "out must be as long as q");
    let stride = kv_heads * dim;
    seqs.iter().for_each(|s| s.check(stride));
    assert!(queries.iter().all(|p| p.seq < seqs.len() && p.len <= seqs[p.seq].len), "a query reads past its cache");
    let (scale, group) = (1.0 / (dim as f32).sqrt(), heads / kv_heads);
    out.par_chunks_mut(dim).enumerate().for_each_init(Vec::new, |scores, (task, o)| {
        let (i, h) = (task / heads, task % heads);
        let PagedQuery { seq, len } = queries[i];
        scores.resize(len, 0.0);
        let query = &q[i * q_width + h * dim..i * q_width + (h + 1) * dim];
        attend_one(query, KvHead { kv: &seqs[seq], stride, offset: (h / group) * dim }, scale, scores, o);
    });
}

/// Attention of `tokens` new queries at positions `start..start + tokens`: `q` is
/// `[tokens, heads·dim]`, `keys` and `values` hold at least `start + tokens` cached positions of
/// `[kv_heads·dim]` each (the new tokens' included), and `out` receives `[tokens, heads·dim]`.
/// Query `i` attends to positions `0..=start + i`, scaled by `1/√dim` ([`attend_paged`] over
/// one block).
///
/// # Panics
/// When `kv_heads` does not divide `heads` or a buffer is shorter than the shapes say.
pub fn attend_cached(q: &[f32], keys: &[f32], values: &[f32], start: usize, shape: CausalHeads, out: &mut [f32]) {
    let q_width = shape.heads.checked_mul(shape.dim).expect("heads × dim overflows").max(1);
    let tokens = q.len() / q_width;
    let len = start.checked_add(tokens).expect("KV cache size overflows");
    let one = PagedKv { keys: vec![keys], values: vec![values], block_size: len.max(1), len };
    let queries: Vec<PagedQuery> = (0..tokens).map(|i| PagedQuery { seq: 0, len: start + i + 1 }).collect();
    attend_paged(q, std::slice::from_ref(&one), &queries, shape, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_computation_on_every_level() {
        for (start, tokens) in [(5, 3), (7, 1), (0, 4), (3, 150)] {
            check_against_plain(start, tokens);
        }
    }

    #[test]
    fn paged_blocks_give_what_one_buffer_gives() {
        let shape = CausalHeads { heads: 4, kv_heads: 2, dim: 20 };
        let f = |i: usize| ((i * 7919 % 211) as f32 / 105.0 - 1.0) * 0.7;
        let lens = [1usize, 7, 16, 23];
        let q: Vec<f32> = (0..lens.len() * 80).map(f).collect();
        let cache: Vec<(Vec<f32>, Vec<f32>)> = lens
            .iter()
            .map(|&n| ((0..n * 40).map(|i| f(i + n)).collect(), (0..n * 40).map(|i| f(i + 2 * n)).collect()))
            .collect();
        crate::cpu::for_each_level("attend_paged", |level| {
            let seqs: Vec<PagedKv> = cache
                .iter()
                .zip(lens)
                .map(|((k, v), len)| PagedKv {
                    keys: k.chunks(5 * 40).collect(),
                    values: v.chunks(5 * 40).collect(),
                    block_size: 5,
                    len,
                })
                .collect();
            let mut paged = vec![0.0; q.len()];
            let queries: Vec<PagedQuery> = lens.iter().enumerate().map(|(seq, &len)| PagedQuery { seq, len }).collect();
            attend_paged(&q, &seqs, &queries, shape, &mut paged);
            for (i, ((k, v), len)) in cache.iter().zip(lens).enumerate() {
                let mut one = vec![0.0; 80];
                attend_cached(&q[i * 80..(i + 1) * 80], k, v, len - 1, shape, &mut one);
                assert_eq!(&paged[i * 80..(i + 1) * 80], &one[..], "{level} sequence {i}");
            }
        });
    }

    fn check_against_plain(start: usize, tokens: usize) {
        let shape = CausalHeads { heads: 4, kv_heads: 2, dim: 20 };
        let f = |i: usize| ((i * 7919 % 211) as f32 / 105.0 - 1.0) * 0.7;
        let q: Vec<f32> = (0..tokens * 80).map(f).collect();
        let keys: Vec<f32> = (0..(start + tokens) * 40).map(|i| f(i + 3)).collect();
        let values: Vec<f32> = (0..(start + tokens) * 40).map(|i| f(i + 11)).collect();
        crate::cpu::for_each_level("attend_cached", |level| {
            let mut out = vec![0.0; q.len()];
            attend_cached(&q, &keys, &values, start, shape, &mut out);
            for i in 0..tokens {
                for h in 0..4 {
                    let kv = (h / 2) * 20;
                    let qh = &q[i * 80 + h * 20..][..20];
                    let s: Vec<f64> = (0..=start + i)
                        .map(|t| (0..20).map(|d| (qh[d] * keys[t * 40 + kv + d]) as f64).sum::<f64>() / 20f64.sqrt())
                        .collect();
                    let m = s.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = s.iter().map(|x| (x - m).exp()).sum();
                    for d in 0..20 {
                        let want: f64 =
                            (0..=start + i).map(|t| (s[t] - m).exp() / z * values[t * 40 + kv + d] as f64).sum();
                        let got = out[i * 80 + h * 20 + d] as f64;
                        assert!((got - want).abs() < 1e-5, "{level} token {i} head {h} dim {d}: {got} vs {want}");
                    }
                }
            }
        });
    }
}
