//! Block decoding of every GGUF type against gguf-py's dequantizers on random blocks
//! (fixtures/quant-blocks.json, made by fixtures/make_quant_blocks.py).

use base64::Engine as _;
use lathe_kernels::quant::{dequantize, GgmlType, SUPPORTED};

fn decode(text: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text.as_str().unwrap()).unwrap()
}

#[test]
fn every_type_decodes_like_gguf_py() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quant-blocks.json");
    let fixtures: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for ty in SUPPORTED {
        let f = &fixtures[ty.name()];
        assert!(f.is_object(), "no fixture for {}", ty.name());
        assert_eq!(f["block_elements"], ty.block_values(), "{}", ty.name());
        assert_eq!(f["block_bytes"], ty.block_bytes(), "{}", ty.name());
        let blocks = decode(&f["blocks"]);
        let want: Vec<f32> =
            decode(&f["values_f32le"]).chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        let mut got = vec![f32::NAN; want.len()];
        dequantize(ty, &blocks, &mut got).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let tolerance = 1e-6 * w.abs().max(1e-3);
            assert!((g - w).abs() <= tolerance, "{} value {i}: {g} vs gguf-py {w}", ty.name());
        }
    }
}

#[test]
fn a_q4_0_block_by_hand() {
    // d = 0.5 (f16 0x3800); qs[0] = 0x9F: x[0] = (15 − 8)·0.5, x[16] = (9 − 8)·0.5.
    let mut block = vec![0x00, 0x38];
    block.extend([0x9F; 16]);
    let mut out = vec![0.0; 32];
    dequantize(GgmlType::Q4_0, &block, &mut out).unwrap();
    assert_eq!((out[0], out[15], out[16], out[31]), (3.5, 3.5, 0.5, 0.5));
}

#[test]
fn quantized_dot_products_stay_close_to_the_decoded_weights() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quant-blocks.json");
    let fixtures: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    for ty in SUPPORTED {
        let blocks = decode(&fixtures[ty.name()]["blocks"]);
        let values = blocks.len() / ty.block_bytes() * ty.block_values();
        let row = &blocks[..ty.bytes_for(values).unwrap()];
        let mut w = vec![0.0; values];
        dequantize(ty, row, &mut w).unwrap();
        let x: Vec<f32> = (0..values).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8).collect();
        let exact: f64 = w.iter().zip(&x).map(|(a, b)| *a as f64 * *b as f64).sum();
        let scale: f64 = w.iter().zip(&x).map(|(a, b)| (*a as f64 * *b as f64).abs()).sum();
        let got = lathe_kernels::quant::dot_row(ty, row, &lathe_kernels::quant::quantize_activations(ty, &x)) as f64;
        let tolerance = if matches!(ty, GgmlType::F32) { 1e-5 } else { 0.01 } * scale;
        assert!((got - exact).abs() <= tolerance, "{}: {got} vs {exact} (scale {scale})", ty.name());
        let mut out = vec![0.0; 1];
        lathe_kernels::quant::matvec(ty, row, &x, &mut out);
        assert!((out[0] as f64 - got).abs() <= 1e-5 * scale, "{}: matvec {} vs dot_row {got}", ty.name(), out[0]);
    }
}

/// `rows` weight rows of `cols` values of `ty`, made of the fixture's random blocks in a
/// rotating order.
fn random_rows(fixtures: &serde_json::Value, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let bytes = decode(&fixtures[ty.name()]["blocks"]);
    let blocks: Vec<&[u8]> = bytes.chunks_exact(ty.block_bytes()).collect();
    let per_row = cols / ty.block_values();
    (0..rows * per_row).flat_map(|i| blocks[(i * 5 + i / per_row) % blocks.len()].iter().copied()).collect()
}

#[test]
fn every_cpu_level_computes_the_same_products() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/quant-blocks.json");
    let fixtures: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let (rows, cols, tokens) = (37, 512, 6);
    let x: Vec<f32> = (0..tokens * cols).map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.8).collect();
    for ty in SUPPORTED {
        let mut bytes = random_rows(&fixtures, ty, rows, cols);
        if matches!(ty, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32) {
            let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 31 % 97) as f32 - 48.0) / 64.0).collect();
            bytes = float_bytes(ty, &w);
        }
        let row_bytes = bytes.len() / rows;
        let mut results = Vec::new();
        lathe_kernels::cpu::for_each_level(ty.name(), |level| {
            let mut batch = vec![0.0; tokens * rows];
            lathe_kernels::quant::matmul(ty, &bytes, &x, tokens, &mut batch);
            for (i, got) in batch.iter().enumerate() {
                let (t, r) = (i / rows, i % rows);
                let acts = lathe_kernels::quant::quantize_activations(ty, &x[t * cols..(t + 1) * cols]);
                let want = lathe_kernels::quant::dot_row(ty, &bytes[r * row_bytes..(r + 1) * row_bytes], &acts);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{} {level} token {t} row {r}: {got} vs {want}",
                    ty.name()
                );
            }
            for t in 0..tokens {
                let mut single = vec![0.0; rows];
                lathe_kernels::quant::matvec(ty, &bytes, &x[t * cols..(t + 1) * cols], &mut single);
                for r in 0..rows {
                    let (a, b) = (batch[t * rows + r], single[r]);
                    assert!(
                        (a - b).abs() <= 1e-5 * a.abs().max(1.0),
                        "{} {level}: token {t} row {r}: {a} vs {b}",
                        ty.name()
                    );
                }
            }
            let acts = lathe_kernels::quant::quantize_rows(ty, &x[..cols], 1);
            let (mut first, mut second) = (vec![0.0; rows], vec![0.0; rows - 5]);
            let mut members = [
                lathe_kernels::quant::GroupMember { ty, bytes: &bytes, out: &mut first },
                lathe_kernels::quant::GroupMember { ty, bytes: &bytes[5 * row_bytes..], out: &mut second },
            ];
            lathe_kernels::quant::matvec_group(&mut members, &acts);
            assert_eq!(first, batch[..rows], "{} {level}: grouped products", ty.name());
            assert_eq!(second, batch[5..rows], "{} {level}: grouped products", ty.name());
            results.push((level, batch));
        });
        let (_, portable) = &results[0];
        for (level, got) in &results[1..] {
            for (i, (a, b)) in got.iter().zip(portable).enumerate() {
                let tolerance = 1e-4 * b.abs().max(1.0);
                assert!((a - b).abs() <= tolerance, "{} {level} output {i}: {a} vs portable {b}", ty.name());
            }
        }
    }
}

fn float_bytes(ty: GgmlType, w: &[f32]) -> Vec<u8> {
    match ty {
        GgmlType::F32 => w.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => w.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        _ => w.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
    }
}
