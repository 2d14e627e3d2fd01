//! The loader `serve` uses: each manifest kind goes to its engine.

use std::path::Path;
use std::sync::Arc;

use lathe_formats::Manifest;
use lathe_runtime::{Loader, Servable};

/// Dispatches on `manifest.kind`: native sequential models and sentence embeddings.
pub struct KindLoader;

impl Loader for KindLoader {
    fn load(&self, dir: &Path, manifest: &Manifest) -> Result<Arc<dyn Servable>, String> {
        match manifest.kind.as_str() {
            lathe_engine_native::NATIVE_KIND => lathe_engine_native::NativeLoader.load(dir, manifest),
            lathe_engine_candle::EMBEDDING_KIND => lathe_engine_candle::EmbeddingLoader.load(dir, manifest),
            other => Err(format!("no engine serves model kind {other:?}")),
        }
    }
}
