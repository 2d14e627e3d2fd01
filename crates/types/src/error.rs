/// What kind of failure an error is; the server maps each kind to HTTP and gRPC codes from
/// one table, so every surface agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller sent something invalid.
    InvalidArgument,
    /// Well-formed, but over a model limit (too many inputs, too many tokens).
    OverLimit,
    /// Unknown model, version or label.
    NotFound,
    /// The request body is over the limit.
    PayloadTooLarge,
    /// A queue is full; retry later.
    ResourceExhausted,
    /// The model or server is not ready (loading, unloading, shutting down).
    Unavailable,
    /// The request took longer than allowed.
    DeadlineExceeded,
    /// The operation is not supported.
    Unimplemented,
    /// A conflicting state (e.g. loading while unloading).
    Conflict,
    /// Our fault.
    Internal,
}

/// An error with its kind and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The kind.
    pub kind: ErrorKind,
    /// What was expected and what arrived.
    pub message: String,
}

impl ApiError {
    /// An error of `kind`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }

    /// An invalid-argument error.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidArgument, message)
    }

    /// A not-found error.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::NotFound, message)
    }
}
