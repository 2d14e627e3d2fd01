use lathe_types::{ErrorKind, HasErrorKind};

/// Why an ONNX file cannot be imported or a version cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The file cannot be read.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The bytes are not an ONNX model (not a protobuf `ModelProto`, truncated, or no graph).
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
    /// The model uses something tract does not run: operators, an operator set, data types.
    #[error("{0}")]
    Unsupported(String),
    /// The graph is ONNX but cannot be prepared for its declared shapes.
    #[error("the graph does not load: {0}")]
    Graph(String),
    /// What was asked at import does not fit the graph (batching, class names).
    #[error("{0}")]
    Request(String),
    /// A run failed on valid inputs.
    #[error("running the graph: {0}")]
    Run(String),
}

impl HasErrorKind for OnnxError {
    fn error_kind(&self) -> ErrorKind {
        match self {
            // A run fails on inputs that passed the signature's checks (an index out of a
            // table's range, say): the request's values are at fault, not the server.
            OnnxError::NotOnnx(_)
            | OnnxError::Unsupported(_)
            | OnnxError::Graph(_)
            | OnnxError::Request(_)
            | OnnxError::Run(_) => ErrorKind::InvalidArgument,
            OnnxError::File { .. } => ErrorKind::Internal,
        }
    }
}

/// tract's error with its causes, outermost first (`a: b: c`).
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    format!("{e:#}")
}
