//! Turning a Hugging Face sentence-transformers folder into the files and manifest of a
//! Lathe version.

use std::collections::BTreeMap;
use std::path::Path;

use lathe_formats::{EmbeddingSection, EmbeddingSpec, Manifest, ModelSection};

use crate::{embedding_signature, EmbedError, Embedder};

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
    let manifest = Manifest {
        format: lathe_formats::MANIFEST_FORMAT,
        name: name.to_string(),
        created_at: created_at.to_string(),
        lathe_version: env!("CARGO_PKG_VERSION").to_string(),
        signature: embedding_signature(embedder.dim()),
        model: ModelSection::SentenceEmbedding(EmbeddingSection {
            spec: EmbeddingSpec {
                source: dir.display().to_string(),
                architecture: "bert".into(),
                dim: embedder.dim(),
                max_tokens: embedder.max_tokens(),
                pooling: embedder.pooling(),
                normalize: embedder.normalizes(),
            },
            untrained: Default::default(),
        }),
        files: BTreeMap::new(),
    };
    Ok((files, manifest))
}
