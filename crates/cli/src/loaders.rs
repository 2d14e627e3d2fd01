//! The loader `serve` uses (each manifest kind goes to its engine) and the importer of model
//! files made elsewhere (`lathe import onnx` and the lifecycle API's uploads).

use std::path::Path;
use std::sync::Arc;

use lathe_engine::{ImportOptions, Importer, Loader, PreparedImport, Servable};
use lathe_formats::Manifest;
use lathe_types::{ApiError, ErrorKind, HasErrorKind};

/// Dispatches on `manifest.kind`: native sequential models, sentence embeddings, causal
/// language models and ONNX graphs.
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
            lathe_onnx::ONNX_KIND => lathe_onnx::OnnxLoader.load(dir, manifest),
            other => Err(format!("no engine serves model kind {other:?}")),
        }
    }
}

/// Imports ONNX graphs (format `onnx`) with the ONNX engine.
pub struct FileImporter;

impl Importer for FileImporter {
    fn prepare(
        &self,
        format: &str,
        file: &Path,
        name: &str,
        options: &ImportOptions,
    ) -> Result<PreparedImport, ApiError> {
        if format != "onnx" {
            return Err(ApiError::new(
                ErrorKind::Unimplemented,
                format!("no importer reads {format:?}; expected onnx"),
            ));
        }
        let import =
            lathe_onnx::prepare(file, name, options.class_names.clone(), options.batching, &options.created_at)
                .map_err(|e| ApiError::new(e.error_kind(), e.to_string()))?;
        Ok(PreparedImport { files: import.files, manifest: import.manifest })
    }

    fn check_copy(&self, dir: &Path, manifest: &Manifest) -> Result<(), String> {
        let copy = lathe_onnx::OnnxModel::load(&dir.join(lathe_formats::ONNX_FILE)).map_err(|e| e.to_string())?;
        let same = copy.signature() == &manifest.signature;
        same.then_some(()).ok_or_else(|| "the copied graph has another signature".to_string())
    }
}
