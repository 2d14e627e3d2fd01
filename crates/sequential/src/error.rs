use lathe_formats::SpecError;

/// Why a native model could not be built or loaded.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    Spec(SpecError),
    /// A layer's input has the wrong shape.
    #[error("{0}")]
    Shape(String),
    /// The weights do not match the spec.
    #[error("weights do not match the spec: {0}")]
    Weights(String),
    /// The manifest is unusable.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}

impl lathe_types::HasErrorKind for EngineError {
    fn error_kind(&self) -> lathe_types::ErrorKind {
        match self {
            EngineError::Spec(_) | EngineError::Shape(_) => lathe_types::ErrorKind::InvalidArgument,
            EngineError::Weights(_) | EngineError::Manifest(_) | EngineError::Io { .. } => {
                lathe_types::ErrorKind::Internal
            }
        }
    }
}
