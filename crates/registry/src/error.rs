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
    /// The files of a new version failed the publisher's check before the version appeared.
    #[error("{path}: {message}")]
    Check {
        /// The version's temporary folder.
        path: String,
        /// What the check found.
        message: String,
    },
    /// The object store failed or refused a call.
    #[error("{url}: {message}")]
    Remote {
        /// The store (`s3://bucket/prefix`).
        url: String,
        /// The key involved and what went wrong.
        message: String,
    },
    /// The shared store of labels and traffic policies failed.
    #[error("shared {document}: {message}")]
    Shared {
        /// `model/file`.
        document: String,
        /// What went wrong.
        message: String,
    },
    /// A repository location (`--repo`) that cannot be used.
    #[error("{location}: {message}")]
    Location {
        /// The location as given.
        location: String,
        /// What is wrong and what was expected.
        message: String,
    },
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

impl lathe_types::HasErrorKind for RegistryError {
    fn error_kind(&self) -> lathe_types::ErrorKind {
        use lathe_types::ErrorKind;
        match self {
            RegistryError::ModelNotFound { .. } | RegistryError::VersionNotFound { .. } => ErrorKind::NotFound,
            RegistryError::InUse(_) => ErrorKind::Conflict,
            RegistryError::InvalidName(_)
            | RegistryError::Manifest { .. }
            | RegistryError::Check { .. }
            | RegistryError::Location { .. } => ErrorKind::InvalidArgument,
            RegistryError::Remote { .. } | RegistryError::Shared { .. } => ErrorKind::Unavailable,
            RegistryError::Io { .. } => ErrorKind::Internal,
        }
    }

    fn to_api_error(&self) -> lathe_types::ApiError {
        match self {
            // Callers of the API name the file; "invalid manifest" would mislead for traffic
            // and label files.
            RegistryError::Manifest { path, message } => lathe_types::ApiError::invalid(format!("{path}: {message}")),
            RegistryError::InUse(message) => lathe_types::ApiError::new(self.error_kind(), message.clone()),
            other => lathe_types::ApiError::new(other.error_kind(), other.to_string()),
        }
    }
}
