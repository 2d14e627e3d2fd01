use lathe_formats::SpecError;
use lathe_sequential::EngineError;

/// Why training, evaluation or data loading failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The data is missing or malformed; the message names the file and the problem.
    #[error("{0}")]
    Data(String),
    /// The spec is invalid or does not fit the data.
    #[error("{0}")]
    Spec(#[from] SpecError),
    /// The engine rejected the model.
    #[error("{0}")]
    Engine(#[from] EngineError),
    /// The user interrupted training; nothing was published.
    #[error("training interrupted at a batch boundary; nothing was published")]
    Interrupted,
    /// A checkpoint could not be written or read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// Shorthand for data errors.
pub(crate) fn data_err(msg: impl Into<String>) -> TrainError {
    TrainError::Data(msg.into())
}
