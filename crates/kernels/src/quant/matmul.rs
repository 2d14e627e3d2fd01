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

/// Dots rows `first..first + out.len() / acts.len()` with every activation row; `out` is
/// row-major (`[row][token]`).
fn rows_times_acts(ty: GgmlType, bytes: &[u8], row_bytes: usize, first: usize, acts: &[Activations], out: &mut [f32]) {
    for (r, dst) in out.chunks_exact_mut(acts.len()).enumerate() {
        let row = &bytes[(first + r) * row_bytes..(first + r + 1) * row_bytes];
        let mut tiles = acts.chunks_exact(TILE);
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
    let (rows, cols) = (out.len() / tokens, x.len() / tokens);
    assert_eq!(out.len(), rows * tokens, "out is not {tokens} rows");
    assert_eq!(ty.bytes_for(cols).map(|b| b * rows), Some(bytes.len()), "weights are not {rows} rows of {cols}");
    let acts: Vec<Activations> = x.chunks_exact(cols).map(|r| quantize_activations(ty, r)).collect();
    let row_bytes = bytes.len() / rows;
    let chunk = rows.div_ceil(4 * rayon::current_num_threads()).max(8);
    if tokens == 1 {
        out.par_chunks_mut(chunk).enumerate().for_each(|(c, part)| {
            rows_times_acts(ty, bytes, row_bytes, c * chunk, &acts, part);
        });
        return;
    }
    let parts: Vec<Vec<f32>> = (0..rows.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let first = c * chunk;
            let mut part = vec![0.0; (rows - first).min(chunk) * tokens];
            rows_times_acts(ty, bytes, row_bytes, first, &acts, &mut part);
            part
        })
        .collect();
    for (c, part) in parts.iter().enumerate() {
        for (r, values) in part.chunks_exact(tokens).enumerate() {
            values.iter().enumerate().for_each(|(t, v)| out[t * rows + c * chunk + r] = *v);
        }
    }
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
