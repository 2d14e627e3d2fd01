use lathe_formats::SpecError;
use lathe_sequential::EngineError;

/// Why training, evaluation or data loading failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data is missing or malformed; the message names the file and the problem.
    #[error("{0}")]
    Data(String),
    /// The spec is invalid or does not fit the data.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The engine rejected the model.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The user interrupted training; nothing was published.
    #[error("training interrupted at a batch boundary; nothing was published")]
    Interrupted,
    /// A checkpoint could not be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A training thread died (a bug, not the data's fault).
    #[error("{0}")]
    Thread(String),
}

impl lathe_types::HasErrorKind for TrainError {
    fn error_kind(&self) -> lathe_types::ErrorKind {
        use lathe_types::ErrorKind;
        match self {
            TrainError::Data(_) | TrainError::Spec(_) => ErrorKind::InvalidArgument,
            TrainError::Engine(e) => e.error_kind(),
            TrainError::Interrupted => ErrorKind::Conflict,
            TrainError::Checkpoint(_) | TrainError::Thread(_) => ErrorKind::Internal,
        }
    }
}

/// Shorthand for data errors.
pub(crate) fn data_err(msg: impl Into<String>) -> TrainError {
    TrainError::Data(msg.into())
}
