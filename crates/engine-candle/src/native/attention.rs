//! Multi-head self-attention over packed sequences: no padding, each sequence attends only to
//! itself, so no mask is needed. One task per (sequence, head) pair.

use rayon::prelude::*;

use super::math;
use super::SharedOut;

/// Shape of the attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    /// Number of heads.
    pub count: usize,
    /// Width of one head.
    pub dim: usize,
}

/// `qkv` is `[tokens, 3 * hidden]` (queries, keys, values side by side); `spans` are the
/// sequences' (start, length) in tokens; writes the attended values to `ctx` `[tokens, hidden]`.
pub fn attend(qkv: &[f32], spans: &[(usize, usize)], heads: Heads, ctx: &mut [f32]) {
    let hidden = heads.count * heads.dim;
    assert_eq!(qkv.len(), ctx.len() * 3);
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
        // SAFETY: strides walk `len` rows of `dim` values inside qkv (row stride 3*hidden) and
        // the len x len score buffer; the output block is this task's alone.
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
        // this sequence's rows of this head's columns in ctx (row stride hidden), no one else's.
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
