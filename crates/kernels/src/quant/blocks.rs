//! Portable dequantization of one block of each quantized type, and the walks over a block's
//! integer values that dequantization and the dot products ([`super::dot`]) share. Formulas
//! and evaluation order as llama.cpp's `dequantize_row_*` (`ggml/src/ggml-quants.c`), so
//! results match it and gguf-py bit for bit.

/// The f16 at byte `at`, as f32.
pub(super) fn f16(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

/// The 4-bit values of a 32-block's 16 bytes `qs`: value `j` is the low nibble of `qs[j]`,
/// value `j + 16` the high one.
pub(super) fn four_bit(qs: &[u8], mut each: impl FnMut(usize, i32)) {
    for (j, &q) in qs.iter().enumerate() {
        each(j, (q & 15) as i32);
        each(j + 16, (q >> 4) as i32);
    }
}

/// The 5-bit values of Q5_0 and Q5_1: 4 low bits from `qs`, the fifth from `qh`.
pub(super) fn five_bit(qh: u32, qs: &[u8], mut each: impl FnMut(usize, i32)) {
    four_bit(qs, |i, q| each(i, q | (((qh >> i) & 1) << 4) as i32));
}

/// The values of a Q4_K (`qh` absent) or Q5_K block: chunk `c` of `qs` holds elements
/// `64c..64c+32` in its low nibbles and `64c+32..64c+64` in its high ones; Q5_K adds 16 when
/// bit `element / 32` of `qh[element % 32]` is set. The sub-block of an element is `element / 32`.
pub(super) fn k_values(qs: &[u8], qh: Option<&[u8]>, mut each: impl FnMut(usize, i32)) {
    for c in 0..4 {
        for l in 0..32 {
            let q = qs[32 * c + l];
            for (i, low) in [(64 * c + l, q & 15), (64 * c + 32 + l, q >> 4)] {
                let fifth = qh.map_or(0, |qh| ((qh[l] >> (i / 32)) & 1) as i32 * 16);
                each(i, low as i32 + fifth);
            }
        }
    }
}

/// The values of a Q6_K block, offset by −32: half `h` reads `ql` from `64h` and `qh` from
/// `128 + 32h`; element `128h + 32g + l` takes 4 low bits from `ql[l + 32(g & 1)]` (low nibble
/// for `g < 2`) and 2 high bits `(qh[l] >> 2g) & 3`. Its scale is `scales[element / 16]`.
pub(super) fn q6k_values(b: &[u8], mut each: impl FnMut(usize, i32)) {
    for h in 0..2 {
        let (ql, qh) = (&b[64 * h..64 * h + 64], &b[128 + 32 * h..160 + 32 * h]);
        for l in 0..32 {
            for g in 0..4 {
                let low = ql[l + 32 * (g & 1)];
                let low = if g < 2 { low & 15 } else { low >> 4 } as i32;
                each(128 * h + 32 * g + l, (low | (((qh[l] >> (2 * g)) & 3) << 4) as i32) - 32);
            }
        }
    }
}

/// The signed 8-bit scale of Q6_K element `i`.
pub(super) fn q6k_scale(b: &[u8], i: usize) -> i32 {
    b[192 + i / 16] as i8 as i32
}

/// Q4_0 (18 bytes): d f16, qs[16]; x = (q − 8)·d.
pub(super) fn q4_0(b: &[u8], out: &mut [f32]) {
    let d = f16(b, 0);
    four_bit(&b[2..18], |i, q| out[i] = (q - 8) as f32 * d);
}

/// Q4_1 (20 bytes): d, m f16, qs[16]; x = q·d + m.
pub(super) fn q4_1(b: &[u8], out: &mut [f32]) {
    let (d, m) = (f16(b, 0), f16(b, 2));
    four_bit(&b[4..20], |i, q| out[i] = q as f32 * d + m);
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
pub(super) fn scale_min_k4(k: usize, s: &[u8]) -> (u8, u8) {
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
    let (d, dmin) = (f16(b, 0), f16(b, 2));
    let sub: [(f32, f32); 8] = std::array::from_fn(|k| {
        let (sc, mn) = scale_min_k4(k, &b[4..16]);
        (d * sc as f32, dmin * mn as f32)
    });
    k_values(qs, qh, |i, q| out[i] = sub[i / 32].0 * q as f32 - sub[i / 32].1);
}

/// Q6_K (210 bytes): ql[128], qh[64], scales[16] i8, d f16; x = d·scale·(q − 32).
pub(super) fn q6_k(b: &[u8], out: &mut [f32]) {
    let d = f16(b, 208);
    q6k_values(b, |i, q| out[i] = d * q6k_scale(b, i) as f32 * q as f32);
}
