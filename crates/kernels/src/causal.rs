//! Causal attention of new query tokens over a sequence's KV cache, with grouped-query heads
//! (Ainslie et al. 2023, "GQA"): query head `h` reads key/value head `h / (heads / kv_heads)`.
//! One task per (token, head); scores, softmax and the weighted sum of values run in
//! vectorised loops compiled per code path.

use rayon::prelude::*;

use crate::math;
use crate::shared::SharedOut;

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

/// One key/value head of a KV cache: position `t`'s key and value start at `t * stride +
/// offset` of `keys` and `values`.
#[derive(Clone, Copy)]
struct KvHead<'a> {
    keys: &'a [f32],
    values: &'a [f32],
    stride: usize,
    offset: usize,
}

multiversion! {
/// One head of one query: `out = softmax(q·Kᵀ·scale)·V` over the first `scores.len()` cached
/// positions of `kv`.
fn attend_one(q: &[f32], kv: KvHead, scale: f32, scores: &mut [f32], out: &mut [f32]) {
    let dim = q.len();
    for (t, s) in scores.iter_mut().enumerate() {
        let at = t * kv.stride + kv.offset;
        *s = dot(q, &kv.keys[at..at + dim]);
    }
    math::softmax(scores, scale);
    out.fill(0.0);
    for (t, &w) in scores.iter().enumerate() {
        let at = t * kv.stride + kv.offset;
        out.iter_mut().zip(&kv.values[at..at + dim]).for_each(|(o, v)| *o += w * v);
    }
}
}

/// Attention of `tokens` new queries at positions `start..start + tokens`: `q` is
/// `[tokens, heads·dim]`, `keys` and `values` hold at least `start + tokens` cached positions of
/// `[kv_heads·dim]` each (the new tokens' included), and `out` receives `[tokens, heads·dim]`.
/// Query `i` attends to positions `0..=start + i`, scaled by `1/√dim`.
///
/// # Panics
/// When `kv_heads` does not divide `heads` or a buffer is shorter than the shapes say.
pub fn attend_cached(q: &[f32], keys: &[f32], values: &[f32], start: usize, shape: CausalHeads, out: &mut [f32]) {
    let CausalHeads { heads, kv_heads, dim } = shape;
    assert!(kv_heads > 0 && heads.is_multiple_of(kv_heads), "{heads} query heads cannot share {kv_heads} kv heads");
    assert!(dim > 0, "heads must have at least one dimension");
    let q_width = heads.checked_mul(dim).expect("heads × dim overflows");
    let stride = kv_heads * dim; // at most q_width
    assert!(q.len().is_multiple_of(q_width), "q is not whole rows of {q_width}");
    let tokens = q.len() / q_width;
    assert_eq!(out.len(), q.len(), "out must be as long as q");
    let needed = start.checked_add(tokens).and_then(|n| n.checked_mul(stride)).expect("KV cache size overflows");
    assert!(keys.len() >= needed && values.len() >= needed, "KV cache too short");
    let scale = 1.0 / (dim as f32).sqrt();
    let group = heads / kv_heads;
    if tokens > 1 {
        return attend_batch(q, KvHead { keys, values, stride, offset: 0 }, start, shape, out);
    }
    out.par_chunks_mut(dim).enumerate().for_each_init(Vec::new, |scores, (task, o)| {
        let (i, h) = (task / heads, task % heads);
        scores.resize(start + i + 1, 0.0);
        let query = &q[i * q_width + h * dim..i * q_width + (h + 1) * dim];
        let kv = KvHead { keys, values, stride, offset: (h / group) * dim };
        attend_one(query, kv, scale, scores, o);
    });
}

/// Queries whose scores are computed together; each block reads only the keys it may see.
const QUERY_BLOCK: usize = 64;

/// Prompt processing: per head (in parallel) and block of queries, `S = Q·Kᵀ` and
/// `O = softmax(S)·V` as two matrix products (`matrixmultiply`) over the positions the block
/// may see, later positions in the block masked.
fn attend_batch(q: &[f32], kv: KvHead, start: usize, shape: CausalHeads, out: &mut [f32]) {
    let CausalHeads { heads, kv_heads, dim } = shape;
    let (q_width, tokens) = (heads * dim, q.len() / (heads * dim));
    let scale = 1.0 / (dim as f32).sqrt();
    let shared = SharedOut::new(out);
    (0..heads).into_par_iter().for_each(|h| {
        let kv_offset = (h / (heads / kv_heads)) * dim;
        let mut scores = Vec::new();
        for i0 in (0..tokens).step_by(QUERY_BLOCK) {
            let rows = QUERY_BLOCK.min(tokens - i0);
            let seen = start + i0 + rows;
            scores.clear();
            scores.resize(rows * seen, 0f32);
            // SAFETY: Q rows i0..i0+rows of head h lie in q (row stride q_width); Kᵀ reads the
            // first `seen` cached keys of this kv head (the caller checked the cache holds
            // start + tokens positions); the scores buffer is rows × seen.
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    dim,
                    seen,
                    1.0,
                    q.as_ptr().add(i0 * q_width + h * dim),
                    q_width as isize,
                    1,
                    kv.keys.as_ptr().add(kv_offset),
                    1,
                    kv.stride as isize,
                    0.0,
                    scores.as_mut_ptr(),
                    seen as isize,
                    1,
                );
            }
            for (i, row) in scores.chunks_exact_mut(seen).enumerate() {
                row[start + i0 + i + 1..].fill(f32::NEG_INFINITY);
                math::softmax(row, scale);
            }
            // SAFETY: reads the scores and `seen` cached values of this kv head; writes this
            // head's `dim` columns of rows i0..i0+rows of out (row stride q_width), which no
            // other task writes (one task per head).
            unsafe {
                matrixmultiply::sgemm(
                    rows,
                    seen,
                    dim,
                    1.0,
                    scores.as_ptr(),
                    seen as isize,
                    1,
                    kv.values.as_ptr().add(kv_offset),
                    kv.stride as isize,
                    1,
                    0.0,
                    shared.at(i0 * q_width + h * dim),
                    q_width as isize,
                    1,
                );
            }
        }
    });
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
