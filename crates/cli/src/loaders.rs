//! The loader `serve` uses: each manifest kind goes to its engine.

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{Loader, Servable};
use lathe_formats::Manifest;

/// Dispatches on `manifest.kind`: native sequential models, sentence embeddings and causal
/// language models.
pub struct KindLoader {
    /// Encoder backend for sentence-embedding models.
    pub embedding_backend: lathe_embedding::Backend,
}

impl Loader for KindLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        match manifest.kind() {
            lathe_sequential::SEQUENTIAL_KIND => lathe_sequential::SequentialLoader.load(dir, manifest),
            lathe_embedding::EMBEDDING_KIND => {
                lathe_embedding::EmbeddingLoader { backend: self.embedding_backend }.load(dir, manifest)
            }
            lathe_formats::CAUSAL_LM_KIND => lathe_generation::CausalLmLoader.load(dir, manifest),
            other => Err(format!("no engine serves model kind {other:?}")),
        }
    }
}
