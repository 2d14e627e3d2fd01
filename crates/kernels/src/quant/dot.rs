//! Quantized matrix-vector products as llama.cpp's CPU backend computes them: the activation
//! row is first quantized to the weight type's partner (Q8_0 for Q4_0, Q5_0 and Q8_0; Q8_1 for
//! Q4_1 and Q5_1; Q8_K for the K-quants), then each weight block is dotted with the matching
//! activation block in integers and scaled once (`ggml_vec_dot_*` in `ggml-cpu/quants.c`).
//! Float weights (F32, F16, BF16) are dotted in f32. This is the portable path.

use super::blocks::{f16, five_bit, four_bit, k_values, q6k_scale, q6k_values, scale_min_k4};
use super::GgmlType;

/// A 32-value activation block: scale, `d · Σ q` (Q8_1's sum term) and the values.
#[derive(Clone, Copy)]
pub struct Q8Block {
    pub(super) d: f32,
    pub(super) s: f32,
    pub(super) qs: [i8; 32],
}

/// A 256-value activation block (Q8_K): f32 scale, values and sums of each 16.
#[derive(Clone, Copy)]
pub struct Q8KBlock {
    pub(super) d: f32,
    pub(super) qs: [i8; 256],
    pub(super) bsums: [i16; 16],
}

/// An activation row quantized for one weight type.
pub enum Activations {
    /// Float weights take the row as is.
    F32(Vec<f32>),
    /// Q8_0 or Q8_1 blocks of 32.
    Q8(Vec<Q8Block>),
    /// Q8_K blocks of 256.
    Q8K(Vec<Q8KBlock>),
}

#[inline(always)]
fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Quantizes `x` (a whole number of the type's blocks) for dot products with `ty` rows.
pub fn quantize_activations(ty: GgmlType, x: &[f32]) -> Activations {
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => Activations::F32(x.to_vec()),
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4_1 | GgmlType::Q5_1 => {
            let mut blocks = vec![Q8Block { d: 0.0, s: 0.0, qs: [0; 32] }; x.len() / 32];
            quantize_q8(x, &mut blocks);
            Activations::Q8(blocks)
        }
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q6K => {
            let mut blocks = vec![Q8KBlock { d: 0.0, qs: [0; 256], bsums: [0; 16] }; x.len() / 256];
            quantize_q8k(x, &mut blocks);
            Activations::Q8K(blocks)
        }
    }
}

multiversion! {
/// Q8_0/Q8_1 blocks of `x` into `out` (compiled per code path, so that rounding is one
/// instruction rather than a library call).
fn quantize_q8(x: &[f32], out: &mut [Q8Block]) {
    out.iter_mut().zip(x.chunks_exact(32)).for_each(|(o, x)| *o = q8_block(x));
}
}

multiversion! {
/// Q8_K blocks of `x` into `out`, compiled per code path.
fn quantize_q8k(x: &[f32], out: &mut [Q8KBlock]) {
    out.iter_mut().zip(x.chunks_exact(256)).for_each(|(o, x)| *o = q8k_block(x));
}
}

/// Q8_0/Q8_1 as llama.cpp's AVX2 `quantize_row_q8_1`: scale amax/127 kept as f16, values
/// rounded half to even, `s = d · Σ q` as f16.
#[inline(always)]
fn q8_block(x: &[f32]) -> Q8Block {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; 32];
    qs.iter_mut().zip(x).for_each(|(q, v)| *q = (v * id).round_ties_even() as i8);
    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
    Q8Block { d: f16_round(d), s: f16_round(d * sum as f32), qs }
}

/// Q8_K as llama.cpp's `quantize_row_q8_K_ref`: scale −max/127 signed by the value of
/// largest magnitude, values rounded to nearest (ties to even), at most 127.
#[inline(always)]
fn q8k_block(x: &[f32]) -> Q8KBlock {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    let mut block = Q8KBlock { d: 0.0, qs: [0; 256], bsums: [0; 16] };
    if amax == 0.0 {
        return block;
    }
    let iscale = -127.0 / max;
    block.qs.iter_mut().zip(x).for_each(|(q, v)| *q = ((iscale * v).round_ties_even() as i32).min(127) as i8);
    for (sum, chunk) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
        *sum = chunk.iter().map(|&q| q as i16).sum();
    }
    block.d = 1.0 / iscale;
    block
}

/// The dot product of one weight row (`row`, type `ty`) with quantized activations made by
/// [`quantize_activations`] for the same type and length.
pub fn dot_row(ty: GgmlType, row: &[u8], acts: &Activations) -> f32 {
    match (ty, acts) {
        (GgmlType::F32, Activations::F32(x)) => {
            row.chunks_exact(4).zip(x).map(|(b, x)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * x).sum()
        }
        (GgmlType::F16, Activations::F32(x)) => {
            row.chunks_exact(2).zip(x).map(|(b, x)| f16(b, 0) * f16_round(*x)).sum()
        }
        (GgmlType::BF16, Activations::F32(x)) => {
            let bf16 = |b: &[u8]| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
            let round = |x: f32| half::bf16::from_f32(x).to_f32();
            row.chunks_exact(2).zip(x).map(|(b, x)| bf16(b) * round(*x)).sum()
        }
        (_, Activations::Q8(a)) => {
            let size = ty.block_bytes();
            row.chunks_exact(size).zip(a).map(|(w, a)| block_dot_q8(ty, w, a)).sum()
        }
        (_, Activations::Q8K(a)) => {
            let size = ty.block_bytes();
            row.chunks_exact(size).zip(a).map(|(w, a)| block_dot_q8k(ty, w, a)).sum()
        }
        _ => unreachable!("activations quantized for another type"),
    }
}

/// `Σ q_j · a_j` over a 32-block whose values `walk` produces.
fn int_dot(qs: &[i8; 32], walk: impl FnOnce(&mut dyn FnMut(usize, i32))) -> i32 {
    let mut sum = 0;
    walk(&mut |j, q| sum += q * qs[j] as i32);
    sum
}

fn block_dot_q8(ty: GgmlType, w: &[u8], a: &Q8Block) -> f32 {
    let qh = |at: usize| u32::from_le_bytes([w[at], w[at + 1], w[at + 2], w[at + 3]]);
    match ty {
        GgmlType::Q8_0 => {
            f16(w, 0) * a.d * int_dot(&a.qs, |f| (0..32).for_each(|j| f(j, w[2 + j] as i8 as i32))) as f32
        }
        GgmlType::Q4_0 => f16(w, 0) * a.d * int_dot(&a.qs, |f| four_bit(&w[2..18], |j, q| f(j, q - 8))) as f32,
        GgmlType::Q4_1 => f16(w, 0) * a.d * int_dot(&a.qs, |f| four_bit(&w[4..20], f)) as f32 + f16(w, 2) * a.s,
        GgmlType::Q5_0 => f16(w, 0) * a.d * int_dot(&a.qs, |f| five_bit(qh(2), &w[6..22], |j, q| f(j, q - 16))) as f32,
        GgmlType::Q5_1 => f16(w, 0) * a.d * int_dot(&a.qs, |f| five_bit(qh(4), &w[8..24], f)) as f32 + f16(w, 2) * a.s,
        _ => unreachable!("{ty:?} pairs with Q8_K or f32 activations"),
    }
}

fn block_dot_q8k(ty: GgmlType, w: &[u8], a: &Q8KBlock) -> f32 {
    match ty {
        GgmlType::Q4K | GgmlType::Q5K => {
            let (qs, qh) = if ty == GgmlType::Q4K { (&w[16..144], None) } else { (&w[48..176], Some(&w[16..48])) };
            let mut dots = [0i32; 8];
            k_values(qs, qh, |i, q| dots[i / 32] += q * a.qs[i] as i32);
            let (mut sumi, mut mins) = (0i32, 0i32);
            for (sub, dot) in dots.iter().enumerate() {
                let (sc, mn) = scale_min_k4(sub, &w[4..16]);
                sumi += sc as i32 * dot;
                mins += mn as i32 * (a.bsums[2 * sub] as i32 + a.bsums[2 * sub + 1] as i32);
            }
            f16(w, 0) * a.d * sumi as f32 - f16(w, 2) * a.d * mins as f32
        }
        GgmlType::Q6K => {
            let mut dots = [0i32; 16];
            q6k_values(w, |i, q| dots[i / 16] += q * a.qs[i] as i32);
            let sumi: i32 = dots.iter().enumerate().map(|(s, dot)| q6k_scale(w, 16 * s) * dot).sum();
            f16(w, 208) * a.d * sumi as f32
        }
        _ => unreachable!("{ty:?} pairs with Q8 or f32 activations"),
    }
}
