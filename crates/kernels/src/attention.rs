//! Multi-head self-attention over packed sequences: no padding, each sequence attends only to
//! itself, so no mask is needed. One task per (sequence, head) pair.

use rayon::prelude::*;

use crate::math;
use crate::shared::SharedOut;

/// Shape of the attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Number of heads.
    pub count: usize,
    /// Width of one head.
    pub dim: usize,
}

/// Scaled dot-product attention (Vaswani et al. 2017) for every sequence and head: `qkv` is
/// `[tokens, 3 * hidden]` (queries, keys, values side by side, `hidden = count * dim`),
/// `spans` are the sequences' `(start, length)` in tokens, in order and not overlapping;
/// writes `softmax(q·kᵀ / √dim)·v` to `ctx` `[tokens, hidden]`.
///
/// # Panics
/// When `ctx` is not `[tokens, hidden]` for `qkv`'s tokens, or a span overlaps the one
/// before it or ends past the last token: each (sequence, head) task writes its own block
/// of `ctx`, which these checks guarantee.
pub fn attend(qkv: &[f32], spans: &[(usize, usize)], heads: Heads, ctx: &mut [f32]) {
    let hidden = heads.count.checked_mul(heads.dim).expect("attend: heads.count * heads.dim overflows");
    assert_eq!(Some(qkv.len()), ctx.len().checked_mul(3), "attend: qkv must be three times ctx");
    if hidden == 0 {
        return;
    }
    assert_eq!(ctx.len() % hidden, 0, "attend: ctx is not a whole number of {hidden}-wide rows");
    let tokens = ctx.len() / hidden;
    let mut end = 0;
    for &(start, len) in spans {
        assert!(start >= end, "attend: span at {start} overlaps the one before (ends at {end})");
        end = start.checked_add(len).expect("attend: span length overflows");
        assert!(end <= tokens, "attend: span ({start}, {len}) ends past the {tokens} tokens");
    }
    let scale = 1.0 / (heads.dim as f32).sqrt();
    let out = SharedOut::new(ctx);
    (0..spans.len() * heads.count).into_par_iter().for_each(|task| {
        let (start, len) = spans[task / heads.count];
        let h = task % heads.count;
        if len == 0 {
            return;
        }
        let row = 3 * hidden;
        let q = &qkv[start * row + h * heads.dim..];
        let k = &qkv[start * row + hidden + h * heads.dim..];
        let v = &qkv[start * row + 2 * hidden + h * heads.dim..];
        let mut scores = vec![0f32; len * len];
        // SAFETY: strides walk `len` rows of `dim` values inside qkv (row stride 3*hidden; the
        // span ends inside qkv, checked above) and the len x len score buffer.
        unsafe {
            matrixmultiply::sgemm(
                len,
                heads.dim,
                len,
                1.0,
                q.as_ptr(),
                row as isize,
                1,
                k.as_ptr(),
                1,
                row as isize,
                0.0,
                scores.as_mut_ptr(),
                len as isize,
                1,
            );
        }
        scores.chunks_exact_mut(len).for_each(|r| math::softmax(r, scale));
        // SAFETY: reads the len x len scores and `len` rows of this head's values; writes
        // this sequence's rows of this head's columns in ctx (row stride hidden), inside ctx
        // and no other task's (spans do not overlap, checked above).
        unsafe {
            matrixmultiply::sgemm(
                len,
                len,
                heads.dim,
                1.0,
                scores.as_ptr(),
                len as isize,
                1,
                v.as_ptr(),
                row as isize,
                1,
                0.0,
                out.at(start * hidden + h * heads.dim),
                hidden as isize,
                1,
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Attention of one sequence and head, written out plainly.
    fn reference(qkv: &[f32], start: usize, len: usize, h: usize, heads: Heads) -> Vec<f32> {
        let hidden = heads.count * heads.dim;
        let at = |t: usize, part: usize, d: usize| qkv[(start + t) * 3 * hidden + part * hidden + h * heads.dim + d];
        let mut out = vec![0f32; len * heads.dim];
        for i in 0..len {
            let scores: Vec<f64> = (0..len)
                .map(|j| (0..heads.dim).map(|d| (at(i, 0, d) * at(j, 1, d)) as f64).sum::<f64>())
                .map(|s| s / (heads.dim as f64).sqrt())
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = scores.iter().map(|s| (s - max).exp()).sum();
            for d in 0..heads.dim {
                let v: f64 = (0..len).map(|j| (scores[j] - max).exp() / z * at(j, 2, d) as f64).sum();
                out[i * heads.dim + d] = v as f32;
            }
        }
        out
    }

    #[test]
    fn packed_sequences_attend_only_to_themselves() {
        let heads = Heads { count: 3, dim: 5 };
        let hidden = 15;
        let spans = [(0, 4), (4, 0), (4, 7), (11, 1)];
        let tokens = 12;
        let qkv: Vec<f32> = (0..tokens * 3 * hidden).map(|i| ((i * 37) % 29) as f32 / 29.0 - 0.5).collect();
        crate::cpu::for_each_level("packed_sequences_attend_only_to_themselves", |_| {
            let mut ctx = vec![f32::NAN; tokens * hidden];
            attend(&qkv, &spans, heads, &mut ctx);
            for &(start, len) in &spans {
                for h in 0..heads.count {
                    let want = reference(&qkv, start, len, h, heads);
                    for t in 0..len {
                        for d in 0..heads.dim {
                            let got = ctx[(start + t) * hidden + h * heads.dim + d];
                            let w = want[t * heads.dim + d];
                            assert!((got - w).abs() < 1e-5, "span {start}, head {h}: {got} vs {w}");
                        }
                    }
                }
            }
        });
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn overlapping_spans_are_refused() {
        let heads = Heads { count: 1, dim: 2 };
        let mut ctx = vec![0f32; 8];
        attend(&[0f32; 24], &[(0, 3), (2, 2)], heads, &mut ctx);
    }

    #[test]
    #[should_panic(expected = "ends past")]
    fn spans_past_the_tokens_are_refused() {
        let heads = Heads { count: 1, dim: 2 };
        let mut ctx = vec![0f32; 8];
        attend(&[0f32; 24], &[(3, 2)], heads, &mut ctx);
    }
}
