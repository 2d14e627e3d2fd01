//! Parity with sentence-transformers: the reference embeddings of all-MiniLM-L6-v2
//! (../shared/models/all-MiniLM-L6-v2/reference-embeddings.json, made by make_reference.py).

use std::path::{Path, PathBuf};

use lathe_embedding::{Backend, Embedder, EmbeddingLoader};
use lathe_engine::Loader;
use lathe_formats::Manifest;
use lathe_kernels::{bf16, cpu};
use lathe_types::{Tensor, TensorData};
use serde_json::Value;

fn model_dir() -> PathBuf {
    let shared = std::env::var_os("LATHE_TEST_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("models/all-MiniLM-L6-v2");
    assert!(dir.join("model.safetensors").is_file(), "missing test model {} (set LATHE_TEST_DATA)", dir.display());
    dir
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Lathe's encoder in every precision the CPU runs at the current code path.
fn own_encoders() -> Vec<Backend> {
    let mut all = vec![Backend::EncoderF32];
    if bf16::supported() {
        all.push(Backend::EncoderBf16);
    }
    all
}

#[test]
fn token_ids_and_embeddings_match_sentence_transformers() {
    // Lathe's encoder on every code path of lathe-kernels (portable first), printed as it runs.
    cpu::for_each_level("parity", |level| {
        for backend in own_encoders() {
            println!("parity: {backend} at {level}");
            parity(backend);
        }
    });
    // candle picks its own kernels.
    parity(Backend::Candle);
}

fn parity(backend: Backend) {
    let dir = model_dir();
    let reference: Value =
        serde_json::from_slice(&std::fs::read(dir.join("reference-embeddings.json")).unwrap()).unwrap();
    let sentences: Vec<&str> = reference["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let embedder = Embedder::load_with(&dir, backend).unwrap();
    assert_eq!(embedder.backend(), backend);
    assert_eq!((embedder.dim(), embedder.max_tokens()), (384, 256));
    let batch = embedder.tokenize(&sentences, true).unwrap();
    for (i, want) in reference["input_ids"].as_array().unwrap().iter().enumerate() {
        let want: Vec<u32> = want.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(batch.ids[i], want, "token ids of sentence {i} ({:?})", sentences[i]);
    }
    // All at once (padded batch) and one by one must both match.
    let together = embedder.embed_ids(&batch.ids).unwrap();
    for (i, want) in reference["embeddings"].as_array().unwrap().iter().enumerate() {
        let want: Vec<f64> = want.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        let alone = embedder.embed(&[sentences[i]]).unwrap().remove(0);
        for (how, got) in [("batched", &together[i]), ("alone", &alone)] {
            let c = cosine(got, &want);
            assert!(c >= 0.9999, "{backend}: sentence {i} ({:?}) {how}: cosine {c}", sentences[i]);
            let norm: f32 = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "L2-normalised: {norm}");
        }
    }
}

#[test]
fn over_long_inputs_are_truncated_or_refused() {
    let embedder = Embedder::load(&model_dir()).unwrap();
    let long = "word ".repeat(400);
    let batch = embedder.tokenize(&[&long, "short"], true).unwrap();
    assert_eq!((batch.ids[0].len(), batch.truncated[0], batch.truncated[1]), (256, true, false));
    assert_eq!(batch.full_lengths[0], 402);
    // The cut matches the Hugging Face tokenizer's own truncation.
    let mut hf = tokenizers::Tokenizer::from_file(model_dir().join("tokenizer.json")).unwrap();
    hf.with_truncation(Some(tokenizers::TruncationParams { max_length: 256, ..Default::default() })).unwrap();
    assert_eq!(hf.encode(long.as_str(), true).unwrap().get_ids(), batch.ids[0].as_slice());
    let e = embedder.tokenize(&["short", &long], false).unwrap_err().to_string();
    assert!(e.starts_with("input 1 has 402 tokens, more than the model's limit of 256"), "{e}");
}

#[test]
fn a_version_published_before_the_typed_manifest_loads_and_embeds() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/manifest-sentence-embedding.json");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
    // A version folder as `lathe import hf` wrote it: the model's files (linked in place) and
    // that manifest, whose digests are those of the shared model.
    let version = tempfile::tempdir().unwrap();
    for file in manifest.files.keys() {
        let to = version.path().join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(model_dir().join(file), &to).unwrap();
    }
    let servable = EmbeddingLoader { backend: Backend::Auto }.load(version.path(), &manifest).unwrap();
    let text = Tensor { name: "text".into(), shape: vec![1], data: TensorData::Bytes(vec![b"hello".to_vec()]) };
    let outputs = servable.infer(&[text]).unwrap();
    assert_eq!(outputs[0].shape, vec![1, 384]);
}
