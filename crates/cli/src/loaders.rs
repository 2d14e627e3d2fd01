//! The loader `serve` uses: each manifest kind goes to its engine.

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{Loader, Servable};
use lathe_formats::Manifest;

/// Dispatches on `manifest.kind`: native sequential models and sentence embeddings.
pub struct KindLoader {
    /// Encoder backend for sentence-embedding models.
    pub embedding_backend: lathe_engine_candle::Backend,
}

impl Loader for KindLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        match manifest.kind.as_str() {
            lathe_engine_native::NATIVE_KIND => lathe_engine_native::NativeLoader.load(dir, manifest),
            lathe_engine_candle::EMBEDDING_KIND => {
                lathe_engine_candle::EmbeddingLoader { backend: self.embedding_backend }.load(dir, manifest)
            }
            other => Err(format!("no engine serves model kind {other:?}")),
        }
    }
}
