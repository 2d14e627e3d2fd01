//! Portable dequantization of one block of each quantized type: the reference that the SIMD
//! dot products are tested against. Formulas and evaluation order as llama.cpp's
//! `dequantize_row_*` (`ggml/src/ggml-quants.c`), so results match it and gguf-py bit for bit.

/// The f16 at byte `at`, as f32.
pub(super) fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

fn lo(b: u8) -> i32 {
    (b & 15) as i32
}

fn hi(b: u8) -> i32 {
    (b >> 4) as i32
}

/// Q4_0 (18 bytes): d f16, qs[16]; x = (q − 8)·d.
pub(super) fn q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16(b, 0);
    for (j, &q) in b[2..18].iter().enumerate() {
        out[j] = (lo(q) - 8) as f32 * d;
        out[j + 16] = (hi(q) - 8) as f32 * d;
    }
}

/// Q4_1 (20 bytes): d, m f16, qs[16]; x = q·d + m.
pub(super) fn q4_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    for (j, &q) in b[4..20].iter().enumerate() {
        out[j] = lo(q) as f32 * d + m;
        out[j + 16] = hi(q) as f32 * d + m;
    }
}

/// The 5-bit values of Q5_0 and Q5_1: 4 low bits from `qs`, the fifth from `qh`.
fn five_bit(qh: u32, qs: &[u8], mut each: impl FnMut(usize, i32)) {
    for (j, &q) in qs.iter().enumerate() {
        each(j, lo(q) | (((qh >> j) & 1) << 4) as i32);
        each(j + 16, hi(q) | (((qh >> (j + 16)) & 1) << 4) as i32);
    }
}

/// Q5_0 (22 bytes): d f16, qh u32, qs[16]; x = (q − 16)·d.
pub(super) fn q5_0(b: &[u8], out: &mut [f32]) {
    let d = f16(b, 0);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    five_bit(qh, &b[6..22], |i, q| out[i] = (q - 16) as f32 * d);
}

/// Q5_1 (24 bytes): d, m f16, qh u32, qs[16]; x = q·d + m.
pub(super) fn q5_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    five_bit(qh, &b[8..24], |i, q| out[i] = q as f32 * d + m);
}

/// Q8_0 (34 bytes): d f16, qs[32] i8; x = q·d.
pub(super) fn q8_0(b: &[u8], out: &mut [f32]) {
    let d = f16(b, 0);
    for (o, &q) in out.iter_mut().zip(&b[2..34]) {
        *o = q as i8 as f32 * d;
    }
}

/// Scale and min of sub-block `k` (0..8) from the 12 packed bytes `s` of Q4_K and Q5_K
/// (llama.cpp's `get_scale_min_k4`).
pub fn scale_min_k4(k: usize, s: &[u8]) -> (u8, u8) {
    if k < 4 {
        (s[k] & 63, s[k + 4] & 63)
    } else {
        ((s[k + 4] & 15) | ((s[k - 4] >> 6) << 4), (s[k + 4] >> 4) | ((s[k] >> 6) << 4))
    }
}

/// Q4_K (144 bytes): d, dmin f16, scales[12], qs[128]; x = d·sc·q − dmin·mn per sub-block.
pub(super) fn q4_k(b: &[u8], out: &mut [f32]) {
    k_quant(b, &b[16..144], None, out);
}

/// Q5_K (176 bytes): d, dmin f16, scales[12], qh[32], qs[128]; like Q4_K with a fifth bit.
pub(super) fn q5_k(b: &[u8], out: &mut [f32]) {
    k_quant(b, &b[48..176], Some(&b[16..48]), out);
}

fn k_quant(b: &[u8], qs: &[u8], qh: Option<&[u8]>, out: &mut [f32]) {
    let (d, dmin, scales) = (f16(b, 0), f16(b, 2), &b[4..16]);
    for c in 0..4 {
        let (sc1, m1) = scale_min_k4(2 * c, scales);
        let (sc2, m2) = scale_min_k4(2 * c + 1, scales);
        let (d1, min1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, min2) = (d * sc2 as f32, dmin * m2 as f32);
        for l in 0..32 {
            let q = qs[32 * c + l];
            let (high1, high2) = match qh {
                Some(qh) => (((qh[l] >> (2 * c)) & 1) as i32 * 16, ((qh[l] >> (2 * c + 1)) & 1) as i32 * 16),
                None => (0, 0),
            };
            out[64 * c + l] = d1 * (lo(q) + high1) as f32 - min1;
            out[64 * c + 32 + l] = d2 * (hi(q) + high2) as f32 - min2;
        }
    }
}

/// Q6_K (210 bytes): ql[128], qh[64], scales[16] i8, d f16; x = d·scale·(q − 32).
pub(super) fn q6_k(b: &[u8], out: &mut [f32]) {
    let d = f16(b, 208);
    for h in 0..2 {
        let (ql, qh, sc) = (&b[64 * h..64 * h + 64], &b[128 + 32 * h..160 + 32 * h], &b[192 + 8 * h..200 + 8 * h]);
        for l in 0..32 {
            for g in 0..4 {
                let low = ql[l + 32 * (g & 1)];
                let low = if g < 2 { lo(low) } else { hi(low) };
                let q = low | (((qh[l] >> (2 * g)) & 3) << 4) as i32;
                out[128 * h + 32 * g + l] = d * sc[l / 16 + 2 * g] as i8 as f32 * (q - 32) as f32;
            }
        }
    }
}
