//! Products of a quantized weight matrix with one activation row (decoding) or many (prompt
//! processing), split over rayon's threads by blocks of weight rows. Each weight row is read
//! once per tile of up to four activation rows, which is what makes prompt processing
//! faster per token than decoding.

use rayon::prelude::*;

use super::dot::{dot_row, quantize_activations, Activations};
use super::GgmlType;

/// Activation rows dotted with each weight row at once.
const TILE: usize = 4;

/// `row · acts[t]` for each `t`, on the best path the CPU level allows.
fn dot_tile<const T: usize>(ty: GgmlType, row: &[u8], acts: [&Activations; T]) -> [f32; T] {
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::level() >= crate::cpu::Level::Avx2 {
        // SAFETY: the level never exceeds what the CPU supports; AVX2 includes FMA and F16C here.
        if let Some(out) = unsafe { super::avx2::dot_tile(ty, row, acts) } {
            return out;
        }
    }
    std::array::from_fn(|t| dot_row(ty, row, acts[t]))
}

/// Activation rows kept hot in L1 while a chunk of weight rows passes over them.
const TOKEN_BLOCK: usize = 32;

/// Dots rows `first..first + out.len() / acts.len()` with every activation row; `out` is
/// row-major (`[row][token]`). Tokens go in blocks of [`TOKEN_BLOCK`] so that their quantized
/// activations stay in L1 while the rows (in L2) pass over them.
fn rows_times_acts(ty: GgmlType, bytes: &[u8], row_bytes: usize, first: usize, acts: &[Activations], out: &mut [f32]) {
    let tokens = acts.len();
    for t0 in (0..tokens).step_by(TOKEN_BLOCK) {
        let block = &acts[t0..(t0 + TOKEN_BLOCK).min(tokens)];
        for (r, dst) in out.chunks_exact_mut(tokens).enumerate() {
            let row = &bytes[(first + r) * row_bytes..(first + r + 1) * row_bytes];
            let dst = &mut dst[t0..t0 + block.len()];
            let mut tiles = block.chunks_exact(TILE);
            let mut t = 0;
            for tile in tiles.by_ref() {
                let got = dot_tile::<TILE>(ty, row, [&tile[0], &tile[1], &tile[2], &tile[3]]);
                dst[t..t + TILE].copy_from_slice(&got);
                t += TILE;
            }
            for a in tiles.remainder() {
                dst[t] = dot_tile::<1>(ty, row, [a])[0];
                t += 1;
            }
        }
    }
}

/// `out = x · Wᵀ` for `tokens` activation rows: `x` is `tokens × cols` and `out` is
/// `tokens × rows` (both token-major), `bytes` the `rows` weight rows of type `ty` back to
/// back. Activations are quantized once per row as [`quantize_activations`] says.
///
/// # Panics
/// When the lengths disagree: `x` not `tokens` rows of whole blocks, `bytes` not `rows` rows
/// of `cols` values.
pub fn matmul(ty: GgmlType, bytes: &[u8], x: &[f32], tokens: usize, out: &mut [f32]) {
    if tokens == 0 || out.is_empty() {
        return;
    }
    matmul_quantized(ty, bytes, &quantize_rows(ty, x, tokens), out);
}

/// The `tokens` rows of `x` quantized for products with `ty` weights (in parallel), to share
/// between several [`matmul_quantized`] calls on the same input.
pub fn quantize_rows(ty: GgmlType, x: &[f32], tokens: usize) -> Vec<Activations> {
    let cols = x.len() / tokens.max(1);
    if tokens <= 1 {
        return x.chunks_exact(cols.max(1)).map(|r| quantize_activations(ty, r)).collect();
    }
    x.par_chunks_exact(cols).map(|r| quantize_activations(ty, r)).collect()
}

/// As [`matmul`], with the activation rows already quantized by [`quantize_rows`] for `ty`.
///
/// # Panics
/// When the lengths disagree.
pub fn matmul_quantized(ty: GgmlType, bytes: &[u8], acts: &[Activations], out: &mut [f32]) {
    let tokens = acts.len();
    if tokens == 0 || out.is_empty() {
        return;
    }
    let rows = out.len() / tokens;
    assert_eq!(out.len(), rows * tokens, "out is not {tokens} rows");
    assert!(bytes.len().is_multiple_of(rows), "weights are not {rows} rows");
    let row_bytes = bytes.len() / rows;
    let chunk = rows.div_ceil(4 * rayon::current_num_threads()).max(8);
    if tokens == 1 {
        return matvec_group(&mut [GroupMember { ty, bytes, out }], acts);
    }
    let parts: Vec<Vec<f32>> = (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let first = c * chunk;
            let mut part = vec![0.0; (rows - first).min(chunk) * tokens];
            rows_times_acts(ty, bytes, row_bytes, first, acts, &mut part);
            part
        })
        .collect();
    for (c, part) in parts.iter().enumerate() {
        for (r, values) in part.chunks_exact(tokens).enumerate() {
            values.iter().enumerate().for_each(|(t, v)| out[t * rows + c * chunk + r] = *v);
        }
    }
}

/// One weight matrix of a [`matvec_group`]: its rows (type `ty`, back to back) and where its
/// products go (one value per row).
pub struct GroupMember<'a> {
    /// The weight type.
    pub ty: GgmlType,
    /// The rows.
    pub bytes: &'a [u8],
    /// One output per row.
    pub out: &'a mut [f32],
}

/// Matrix-vector products of several matrices that read the same quantized input (`acts`,
/// one row, quantized for every member's type), in one parallel loop: decoding runs q/k/v and
/// gate/up this way, one fork-join instead of one per matrix.
///
/// # Panics
/// When `acts` is not one row, or a member's lengths disagree with it.
pub fn matvec_group(members: &mut [GroupMember], acts: &[Activations]) {
    assert_eq!(acts.len(), 1, "matvec_group takes one activation row");
    let threads = rayon::current_num_threads();
    let mut tasks = Vec::new();
    for m in members.iter_mut() {
        let rows = m.out.len();
        if rows == 0 {
            continue;
        }
        let row_bytes = m.bytes.len() / rows;
        let chunk = rows.div_ceil(4 * threads).max(8);
        for (c, part) in m.out.chunks_mut(chunk).enumerate() {
            tasks.push((m.ty, m.bytes, row_bytes, c * chunk, part));
        }
    }
    tasks.into_par_iter().for_each(|(ty, bytes, row_bytes, first, part)| {
        rows_times_acts(ty, bytes, row_bytes, first, acts, part);
    });
}

/// `out[r] = row r · x` for `out.len()` rows of `x.len()` values stored back to back in
/// `bytes` as type `ty` ([`matmul`] with one token).
pub fn matvec(ty: GgmlType, bytes: &[u8], x: &[f32], out: &mut [f32]) {
    if x.is_empty() {
        out.fill(0.0);
        return;
    }
    matmul(ty, bytes, x, 1, out);
}
