/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The model name is not usable.
    #[error(transparent)]
    InvalidName(#[from] lathe_types::ModelRefError),
    /// No model of that name.
    #[error("model {name:?} not found in {root}")]
    ModelNotFound {
        /// The name asked for.
        name: String,
        /// The repository root.
        root: String,
    },
    /// The model exists but not that version.
    #[error("model {name:?} has no version {version}; available: {available:?}")]
    VersionNotFound {
        /// Model name.
        name: String,
        /// The version asked for.
        version: u64,
        /// Versions that exist.
        available: Vec<u64>,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The version is still referenced.
    #[error("{0}")]
    InUse(String),
    /// A manifest is unreadable.
    #[error("{path}: invalid manifest: {message}")]
    Manifest {
        /// The manifest file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl RegistryError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
        move |source| RegistryError::Io { path: path.display().to_string(), source }
    }
}
