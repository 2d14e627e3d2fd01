//! AVX2 dot products of quantized weight rows with 8-bit activations, after llama.cpp's
//! `ggml_vec_dot_*_q8_*` for AVX2 (`ggml-cpu/arch/x86/quants.c`): a weight block is unpacked
//! to 32 bytes, multiplied with the activation bytes by `vpmaddubsw` (unsigned × signed, the
//! sign moved onto the activations for signed weights), widened by `vpmaddwd` and scaled once
//! per block with an FMA.
//!
//! Every kernel takes a tile of `T` activation rows so that a weight block is unpacked once
//! and used `T` times (prompt processing); `T = 1` is the matrix-vector product. The integer
//! sums equal the portable path's exactly; only the order of the float additions differs.

use std::arch::x86_64::*;

use super::blocks::scale_min_k4;
use super::dot::{Q8Block, Q8KBlock};
use super::GgmlType;

/// f32 values of every f16 bit pattern: a scale is one load, with no conversion that the
/// compiler could merge into a live vector register (which would chain every block to the
/// previous block's accumulation).
fn f16_table() -> &'static [f32; 65536] {
    static TABLE: std::sync::OnceLock<Box<[f32; 65536]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0f32; 65536]);
        t.iter_mut().enumerate().for_each(|(i, v)| *v = half::f16::from_bits(i as u16).to_f32());
        t
    })
}

/// The f16 at byte `at` of `b`.
#[inline]
fn f16(table: &[f32; 65536], b: &[u8], at: usize) -> f32 {
    table[u16::from_le_bytes([b[at], b[at + 1]]) as usize]
}

/// Loads 32 bytes; panics (bounds check) when `b` is shorter.
#[inline]
#[target_feature(enable = "avx2")]
fn load32(b: &[u8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` holds 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// Loads 16 bytes; panics (bounds check) when `b` is shorter.
#[inline]
#[target_feature(enable = "avx2")]
fn load16(b: &[u8]) -> __m128i {
    let b = &b[..16];
    // SAFETY: `b` holds 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load_i8(q: &[i8]) -> __m256i {
    let q = &q[..32];
    // SAFETY: `q` holds 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(q.as_ptr().cast()) }
}

/// The 32 nibbles of 16 bytes: low nibbles in bytes 0..16, high ones in 16..32.
#[inline]
#[target_feature(enable = "avx2")]
fn nibbles(qs: &[u8]) -> __m256i {
    let x = load16(qs);
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(x), x);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// Byte `j` is 0xFF where bit `j` of `bits` is set, else 0 (llama.cpp's `bytes_from_bits_32`).
#[inline]
#[target_feature(enable = "avx2")]
fn bytes_from_bits(bits: u32) -> __m256i {
    let spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(bits as i32), spread);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum(v: __m256) -> f32 {
    let x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    let x = _mm_add_ss(x, _mm_movehdup_ps(x));
    _mm_cvtss_f32(x)
}

/// One 32-value weight block unpacked: its bytes, whether they are signed, scale and min.
struct Unpacked {
    q: __m256i,
    signed: bool,
    d: f32,
    m: f32,
}

#[inline]
#[target_feature(enable = "avx2,f16c")]
fn unpack32<const K: u8>(w: &[u8], table: &[f32; 65536]) -> Unpacked {
    let f16 = |at: usize| f16(table, w, at);
    let qh = |at: usize| u32::from_le_bytes([w[at], w[at + 1], w[at + 2], w[at + 3]]);
    match K {
        Q4_0 => {
            Unpacked { q: _mm256_sub_epi8(nibbles(&w[2..18]), _mm256_set1_epi8(8)), signed: true, d: f16(0), m: 0.0 }
        }
        Q4_1 => Unpacked { q: nibbles(&w[4..20]), signed: false, d: f16(0), m: f16(2) },
        Q5_0 => {
            let high = _mm256_andnot_si256(bytes_from_bits(qh(2)), _mm256_set1_epi8(0xF0u8 as i8));
            Unpacked { q: _mm256_or_si256(nibbles(&w[6..22]), high), signed: true, d: f16(0), m: 0.0 }
        }
        Q5_1 => {
            let high = _mm256_and_si256(bytes_from_bits(qh(4)), _mm256_set1_epi8(0x10));
            Unpacked { q: _mm256_or_si256(nibbles(&w[8..24]), high), signed: false, d: f16(0), m: f16(2) }
        }
        _ => Unpacked { q: load32(&w[2..34]), signed: true, d: f16(0), m: 0.0 },
    }
}

const Q4_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;
const Q8_0: u8 = 4;

/// The 16 products of `vpmaddubsw` (unsigned × signed bytes, adjacent pairs summed) for a
/// weight block and an activation block.
#[inline]
#[target_feature(enable = "avx2")]
fn pair_products(u: &Unpacked, y: __m256i) -> __m256i {
    if u.signed {
        _mm256_maddubs_epi16(_mm256_sign_epi8(u.q, u.q), _mm256_sign_epi8(y, u.q))
    } else {
        _mm256_maddubs_epi16(u.q, y)
    }
}

/// `out[t] = row · acts[t]` for a row of 32-value blocks of kind `K`.
///
/// For 4- and 5-bit weights the 16 pair products of a block fit i16 twice over, so the two
/// 128-bit halves are added before widening: one 128-bit `vpmaddwd`, conversion and FMA per
/// block instead of 256-bit ones (8-bit weights would overflow and take the wide path).
#[target_feature(enable = "avx2,fma,f16c")]
fn tile32<const K: u8, const T: usize>(row: &[u8], block_bytes: usize, acts: [&[Q8Block]; T]) -> [f32; T] {
    let table = f16_table();
    let mut wide = [_mm256_setzero_ps(); T];
    let mut narrow = [_mm_setzero_ps(); T];
    let mut mins = [0.0f32; T];
    for (b, w) in row.chunks_exact(block_bytes).enumerate() {
        if K == Q4_0 || K == Q4_1 {
            nibble_block::<K, T>(w, table, b, &acts, &mut narrow, &mut mins);
            continue;
        }
        let u = unpack32::<K>(w, table);
        for t in 0..T {
            let a = &acts[t][b];
            let p = pair_products(&u, load_i8(&a.qs));
            if K == Q8_0 {
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
                wide[t] = _mm256_fmadd_ps(_mm256_set1_ps(u.d * a.d), sums, wide[t]);
            } else {
                let folded = _mm_add_epi16(_mm256_castsi256_si128(p), _mm256_extracti128_si256::<1>(p));
                let sums = _mm_cvtepi32_ps(_mm_madd_epi16(folded, _mm_set1_epi16(1)));
                narrow[t] = _mm_fmadd_ps(_mm_set1_ps(u.d * a.d), sums, narrow[t]);
            }
            if K == Q4_1 || K == Q5_1 {
                mins[t] += u.m * a.s;
            }
        }
    }
    std::array::from_fn(|t| hsum(wide[t]) + hsum128(narrow[t]) + mins[t])
}

/// Q4_0 and Q4_1 blocks in 128-bit halves (low nibbles are values 0..16, high ones 16..32):
/// no lane crossing at all, the two halves' pair products added before widening.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn nibble_block<const K: u8, const T: usize>(
    w: &[u8],
    table: &[f32; 65536],
    b: usize,
    acts: &[&[Q8Block]; T],
    narrow: &mut [__m128; T],
    mins: &mut [f32; T],
) {
    let at = if K == Q4_0 { 2 } else { 4 };
    let x = load16(&w[at..at + 16]);
    let mask = _mm_set1_epi8(0x0F);
    let (mut lo, mut hi) = (_mm_and_si128(x, mask), _mm_and_si128(_mm_srli_epi16::<4>(x), mask));
    if K == Q4_0 {
        (lo, hi) = (_mm_sub_epi8(lo, _mm_set1_epi8(8)), _mm_sub_epi8(hi, _mm_set1_epi8(8)));
    }
    let d = f16(table, w, 0);
    for t in 0..T {
        let a = &acts[t][b];
        let (a_lo, a_hi) = (load16_i8(&a.qs[..16]), load16_i8(&a.qs[16..]));
        let p = if K == Q4_0 {
            let p_lo = _mm_maddubs_epi16(_mm_sign_epi8(lo, lo), _mm_sign_epi8(a_lo, lo));
            _mm_add_epi16(p_lo, _mm_maddubs_epi16(_mm_sign_epi8(hi, hi), _mm_sign_epi8(a_hi, hi)))
        } else {
            _mm_add_epi16(_mm_maddubs_epi16(lo, a_lo), _mm_maddubs_epi16(hi, a_hi))
        };
        let sums = _mm_cvtepi32_ps(_mm_madd_epi16(p, _mm_set1_epi16(1)));
        narrow[t] = _mm_fmadd_ps(_mm_set1_ps(d * a.d), sums, narrow[t]);
        if K == Q4_1 {
            mins[t] += f16(table, w, 2) * a.s;
        }
    }
}

#[inline]
#[target_feature(enable = "avx2")]
fn load16_i8(q: &[i8]) -> __m128i {
    let q = &q[..16];
    // SAFETY: `q` holds 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(q.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn hsum128(x: __m128) -> f32 {
    let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    _mm_cvtss_f32(_mm_add_ss(x, _mm_movehdup_ps(x)))
}

/// Scales and mins of the 8 sub-blocks of a Q4_K/Q5_K block.
fn k4_scales(w: &[u8]) -> ([i16; 8], [i32; 8]) {
    let mut sc = [0i16; 8];
    let mut mn = [0i32; 8];
    for k in 0..8 {
        let (s, m) = scale_min_k4(k, &w[4..16]);
        (sc[k], mn[k]) = (s as i16, m as i32);
    }
    (sc, mn)
}

/// `out[t] = row · acts[t]` for Q4_K (`FIVE = false`) or Q5_K rows.
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_k45<const FIVE: bool, const T: usize>(row: &[u8], acts: [&[Q8KBlock]; T]) -> [f32; T] {
    let size = if FIVE { 176 } else { 144 };
    let mut acc = [_mm256_setzero_ps(); T];
    let mut mins = [0.0f32; T];
    let table = f16_table();
    for (b, w) in row.chunks_exact(size).enumerate() {
        let (d, dmin) = (f16(table, w, 0), f16(table, w, 2));
        let (sc, mn) = k4_scales(w);
        let qs = if FIVE { &w[48..176] } else { &w[16..144] };
        let qh = if FIVE { load32(&w[16..48]) } else { _mm256_setzero_si256() };
        let mut sums = [_mm256_setzero_si256(); T];
        for j in 0..4 {
            let bits = load32(&qs[32 * j..]);
            let mut lo = _mm256_and_si256(bits, _mm256_set1_epi8(0x0F));
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), _mm256_set1_epi8(0x0F));
            if FIVE {
                let fifth = |bit: i32| {
                    let m = _mm256_set1_epi8((1 << bit) as i8);
                    _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, m), m), _mm256_set1_epi8(16))
                };
                lo = _mm256_or_si256(lo, fifth(2 * j as i32));
                hi = _mm256_or_si256(hi, fifth(2 * j as i32 + 1));
            }
            let (s_lo, s_hi) = (_mm256_set1_epi16(sc[2 * j]), _mm256_set1_epi16(sc[2 * j + 1]));
            for t in 0..T {
                let a = &acts[t][b].qs;
                let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load_i8(&a[64 * j..])), s_lo);
                let p_hi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load_i8(&a[64 * j + 32..])), s_hi);
                sums[t] = _mm256_add_epi32(sums[t], _mm256_add_epi32(p_lo, p_hi));
            }
        }
        for t in 0..T {
            let a = &acts[t][b];
            let m: i32 = (0..8).map(|s| mn[s] * (a.bsums[2 * s] as i32 + a.bsums[2 * s + 1] as i32)).sum();
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(sums[t]), acc[t]);
            mins[t] -= dmin * a.d * m as f32;
        }
    }
    std::array::from_fn(|t| hsum(acc[t]) + mins[t])
}

/// `out[t] = row · acts[t]` for Q6_K rows: values `q − 32` computed as `q·a − 32·Σa`.
#[target_feature(enable = "avx2,fma,f16c")]
fn tile_q6k<const T: usize>(row: &[u8], acts: [&[Q8KBlock]; T]) -> [f32; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    let (m4, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    let table = f16_table();
    for (b, w) in row.chunks_exact(210).enumerate() {
        let d = f16(table, w, 208);
        let scales: [i16; 16] = std::array::from_fn(|i| w[192 + i] as i8 as i16);
        let mut sums = [_mm256_setzero_si256(); T];
        for h in 0..2 {
            let (ql0, ql1, qh) = (load32(&w[64 * h..]), load32(&w[64 * h + 32..]), load32(&w[128 + 32 * h..]));
            let groups = [
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m30)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m30)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4), _mm256_and_si256(qh, m30)),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                    _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m30),
                ),
            ];
            for (g, q) in groups.into_iter().enumerate() {
                let s = 8 * h + 2 * g;
                let scale = _mm256_set_m128i(_mm_set1_epi16(scales[s + 1]), _mm_set1_epi16(scales[s]));
                for t in 0..T {
                    let a = load_i8(&acts[t][b].qs[128 * h + 32 * g..]);
                    sums[t] = _mm256_add_epi32(sums[t], _mm256_madd_epi16(_mm256_maddubs_epi16(q, a), scale));
                }
            }
        }
        for t in 0..T {
            let a = &acts[t][b];
            let offset: i32 = (0..16).map(|s| scales[s] as i32 * a.bsums[s] as i32).sum::<i32>() * 32;
            let total = _mm256_sub_epi32(sums[t], _mm256_setr_epi32(offset, 0, 0, 0, 0, 0, 0, 0));
            acc[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * a.d), _mm256_cvtepi32_ps(total), acc[t]);
        }
    }
    std::array::from_fn(|t| hsum(acc[t]))
}

/// The blocks of each activation row of a tile, as `pick` finds them, or `None` when a row
/// has another representation.
fn tile_rows<'a, B, const T: usize>(
    acts: [&'a super::Activations; T],
    pick: impl Fn(&'a super::Activations) -> Option<&'a [B]>,
) -> Option<[&'a [B]; T]> {
    let mut out = [&[][..]; T];
    for (o, a) in out.iter_mut().zip(acts) {
        *o = pick(a)?;
    }
    Some(out)
}

fn q8_rows<const T: usize>(acts: [&super::Activations; T]) -> Option<[&[Q8Block]; T]> {
    tile_rows(acts, |a| if let super::Activations::Q8(b) = a { Some(&b[..]) } else { None })
}

fn q8k_rows<const T: usize>(acts: [&super::Activations; T]) -> Option<[&[Q8KBlock]; T]> {
    tile_rows(acts, |a| if let super::Activations::Q8K(b) = a { Some(&b[..]) } else { None })
}

/// `row · acts[t]` for each `t` on AVX2, or `None` where this file has no kernel for `ty`
/// (float types).
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_tile<const T: usize>(ty: GgmlType, row: &[u8], acts: [&super::Activations; T]) -> Option<[f32; T]> {
    let size = ty.block_bytes();
    Some(match ty {
        GgmlType::Q4_0 => tile32::<Q4_0, T>(row, size, q8_rows(acts)?),
        GgmlType::Q4_1 => tile32::<Q4_1, T>(row, size, q8_rows(acts)?),
        GgmlType::Q5_0 => tile32::<Q5_0, T>(row, size, q8_rows(acts)?),
        GgmlType::Q5_1 => tile32::<Q5_1, T>(row, size, q8_rows(acts)?),
        GgmlType::Q8_0 => tile32::<Q8_0, T>(row, size, q8_rows(acts)?),
        GgmlType::Q4K => tile_k45::<false, T>(row, q8k_rows(acts)?),
        GgmlType::Q5K => tile_k45::<true, T>(row, q8k_rows(acts)?),
        GgmlType::Q6K => tile_q6k::<T>(row, q8k_rows(acts)?),
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => return None,
    })
}
