//! Opening GGUF files: the shared models' headers and tensors, and the errors of broken files.

mod common;

use common::shared;

use lathe_generation::{GgufError, GgufFile};
use lathe_kernels::quant::{dequantize, GgmlType};

#[test]
fn smollm2_header_and_tensors() {
    let f = GgufFile::open(&shared("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    assert_eq!(f.string("general.architecture").unwrap(), "llama");
    assert_eq!(f.unsigned("llama.block_count").unwrap(), 30);
    assert_eq!(f.unsigned("llama.embedding_length").unwrap(), 576);
    assert_eq!(f.float_opt("llama.rope.freq_base").unwrap(), Some(100000.0));
    assert_eq!(f.bool_opt("tokenizer.ggml.add_bos_token").unwrap(), Some(false));
    assert_eq!(f.array("tokenizer.ggml.tokens").unwrap().len(), 49152);
    assert_eq!(f.tensors().len(), 272);
    let (embd, bytes) = f.tensor("token_embd.weight").unwrap();
    assert_eq!((embd.ty, embd.dims.as_slice(), embd.rows()), (GgmlType::Q8_0, &[576, 49152][..], 49152));
    assert_eq!(bytes.len(), 49152 * 576 / 32 * 34);
    assert_eq!(f.tensor("blk.0.attn_q.weight").unwrap().0.ty, GgmlType::Q4_1);
    assert_eq!(f.tensor("output_norm.weight").unwrap().0.ty, GgmlType::F32);
    let count = |ty| f.tensors().values().filter(|t| t.ty == ty).count();
    assert_eq!((count(GgmlType::Q4_1), count(GgmlType::F32)), (210, 61));
    // The last row of the embeddings decodes to finite values of a sensible size.
    let row = &bytes[bytes.len() - 576 / 32 * 34..];
    let mut out = vec![0.0; 576];
    dequantize(GgmlType::Q8_0, row, &mut out).unwrap();
    assert!(out.iter().all(|x| x.is_finite() && x.abs() < 10.0) && out.iter().any(|x| *x != 0.0));
    assert!(matches!(f.unsigned("llama.nope"), Err(GgufError::Metadata { .. })));
    let wrong = f.unsigned("general.architecture").unwrap_err().to_string();
    assert!(wrong.contains("general.architecture: expected a non-negative integer"), "{wrong}");
}

#[test]
fn every_quantized_file_of_tiny_llama_256_opens() {
    let cases = [
        ("f32", GgmlType::F32),
        ("f16", GgmlType::F16),
        ("bf16", GgmlType::BF16),
        ("q8_0", GgmlType::Q8_0),
        ("q6_k", GgmlType::Q6K),
        ("q5_k_m", GgmlType::Q5K),
        ("q5_1", GgmlType::Q5_1),
        ("q5_0", GgmlType::Q5_0),
        ("q4_k_m", GgmlType::Q4K),
        ("q4_0", GgmlType::Q4_0),
    ];
    for (name, ty) in cases {
        let f = GgufFile::open(&shared(&format!("models/tiny-llama-256/model-{name}.gguf"))).unwrap();
        let q = f.tensor("blk.0.attn_q.weight").unwrap().0;
        assert_eq!(q.ty, ty, "{name}");
    }
}

/// A GGUF file with one key and one tensor `t` of type id `ty` and `columns` values.
fn tiny_gguf(ty: u32, columns: u64, data: usize) -> Vec<u8> {
    let string = |s: &str| [(s.len() as u64).to_le_bytes().to_vec(), s.as_bytes().to_vec()].concat();
    let mut b = b"GGUF".to_vec();
    b.extend(3u32.to_le_bytes());
    b.extend(1u64.to_le_bytes()); // tensors
    b.extend(1u64.to_le_bytes()); // keys
    b.extend(string("general.architecture"));
    b.extend(8u32.to_le_bytes()); // string
    b.extend(string("llama"));
    b.extend(string("t"));
    b.extend(1u32.to_le_bytes());
    b.extend(columns.to_le_bytes());
    b.extend(ty.to_le_bytes());
    b.extend(0u64.to_le_bytes());
    b.resize(b.len().div_ceil(32) * 32 + data, 0);
    b
}

fn open_bytes(bytes: &[u8]) -> Result<GgufFile, GgufError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    std::fs::write(&path, bytes).unwrap();
    GgufFile::open(&path)
}

#[test]
fn broken_files_get_one_clear_error() {
    // A well-formed tiny file opens.
    let ok = open_bytes(&tiny_gguf(8, 32, 34)).unwrap();
    assert_eq!(ok.tensor("t").unwrap().1.len(), 34);
    let cases: [(Vec<u8>, &str); 6] = [
        (tiny_gguf(8, 32, 20), "truncated: tensor \"t\" needs bytes 128..162, the file has 148"),
        (tiny_gguf(10, 256, 84), "tensor \"t\": unsupported tensor type 10 (Q2_K)"),
        (tiny_gguf(16, 256, 66), "not a valid GGUF file: unsupported tensor type 16 (IQ2_XXS)"),
        (tiny_gguf(8, 33, 34), "tensor \"t\": shape [33] does not fit Q8_0 blocks of 32 values"),
        (b"GGML and then some".to_vec(), "not a valid GGUF file"),
        (tiny_gguf(8, 32, 34)[..40].to_vec(), "not a valid GGUF file"),
    ];
    for (bytes, want) in cases {
        let e = open_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains(want), "expected {want:?} in {e:?}");
        assert!(e.contains("model.gguf"), "the error names the file: {e}");
    }
}

#[test]
fn a_truncated_real_model_is_refused() {
    let bytes = std::fs::read(shared("models/tiny-llama-random/model-f32.gguf")).unwrap();
    let e = open_bytes(&bytes[..bytes.len() - 100]).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
}
