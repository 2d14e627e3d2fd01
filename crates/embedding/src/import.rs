//! Turning a Hugging Face sentence-transformers folder into the files and manifest of a
//! Lathe version.

use std::collections::BTreeMap;
use std::path::Path;

use lathe_formats::Manifest;
use serde_json::json;

use crate::{embedding_signature, EmbedError, Embedder, Pooling, EMBEDDING_KIND};

/// Files copied from the folder when present (paths inside the version).
const FILES: [&str; 8] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
];

/// Files of a version: path inside it, bytes.
pub type VersionFiles = Vec<(String, Vec<u8>)>;

/// Reads and validates `dir` (it must load and embed), returning the files to publish and the
/// manifest (without digests; publishing adds them).
pub fn import_hf(dir: &Path, name: &str, created_at: &str) -> Result<(VersionFiles, Manifest), EmbedError> {
    for required in ["config.json", "model.safetensors", "tokenizer.json"] {
        if !dir.join(required).is_file() {
            return Err(EmbedError::File { path: dir.join(required).display().to_string(), message: "missing".into() });
        }
    }
    let embedder = Embedder::load(dir)?;
    embedder.embed(&["check"])?;
    let mut files = Vec::new();
    for f in FILES {
        let p = dir.join(f);
        if p.is_file() {
            let bytes = std::fs::read(&p)
                .map_err(|e| EmbedError::File { path: p.display().to_string(), message: e.to_string() })?;
            files.push((f.to_string(), bytes));
        }
    }
    let pooling = match embedder.pooling() {
        Pooling::Mean => "mean",
        Pooling::Cls => "cls",
        Pooling::LastToken => "last_token",
    };
    let manifest = Manifest {
        format: lathe_formats::MANIFEST_FORMAT,
        name: name.to_string(),
        kind: EMBEDDING_KIND.to_string(),
        created_at: created_at.to_string(),
        lathe_version: env!("CARGO_PKG_VERSION").to_string(),
        spec: json!({
            "source": dir.display().to_string(),
            "architecture": "bert",
            "dim": embedder.dim(),
            "max_tokens": embedder.max_tokens(),
            "pooling": pooling,
            "normalize": embedder.normalizes(),
        }),
        signature: embedding_signature(embedder.dim()),
        preprocessing: lathe_formats::Preprocessing::None,
        class_names: Vec::new(),
        feature_names: Vec::new(),
        metrics: Default::default(),
        history: Vec::new(),
        data: Default::default(),
        seed: 0,
        training: Default::default(),
        job: None,
        files: BTreeMap::new(),
    };
    Ok((files, manifest))
}
