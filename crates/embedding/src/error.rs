/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file is missing or unreadable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tensor computation failed.
    #[error("model: {0}")]
    Model(String),
    /// Caller-supplied token ids are unusable.
    #[error("input[{index}]: {message}")]
    BadTokens {
        /// Which input.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// An input is longer than the model accepts and truncation is off.
    #[error("input {index} has {tokens} tokens, more than the model's limit of {limit}")]
    TooLong {
        /// Which input.
        index: usize,
        /// Its token count.
        tokens: usize,
        /// The limit.
        limit: usize,
    },
}

impl From<candle_core::Error> for EmbedError {
    fn from(e: candle_core::Error) -> Self {
        EmbedError::Model(e.to_string())
    }
}

impl lathe_types::HasErrorKind for EmbedError {
    fn error_kind(&self) -> lathe_types::ErrorKind {
        match self {
            EmbedError::TooLong { .. } => lathe_types::ErrorKind::OverLimit,
            EmbedError::Tokenizer(_) | EmbedError::BadTokens { .. } => lathe_types::ErrorKind::InvalidArgument,
            EmbedError::File { .. } | EmbedError::Model(_) => lathe_types::ErrorKind::Internal,
        }
    }
}
