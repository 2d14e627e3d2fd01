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
        assert_eq!(out[0] as f64, got, "{}", ty.name());
    }
}
