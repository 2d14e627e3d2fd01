/// What kind of failure an error is; the server maps each kind to HTTP and gRPC codes from
/// one table, so every surface agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller sent something invalid.
    InvalidArgument,
    /// No credentials, or credentials that are not valid (HTTP 401).
    Unauthenticated,
    /// Valid credentials without the permission the operation needs (HTTP 403).
    PermissionDenied,
    /// The route exists but not for this method (HTTP 405).
    MethodNotAllowed,
    /// The body's media type is not one the route reads (HTTP 415).
    UnsupportedMediaType,
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

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::MethodNotAllowed,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::OverLimit,
        ErrorKind::NotFound,
        ErrorKind::PayloadTooLarge,
        ErrorKind::ResourceExhausted,
        ErrorKind::Unavailable,
        ErrorKind::DeadlineExceeded,
        ErrorKind::Unimplemented,
        ErrorKind::Conflict,
        ErrorKind::Internal,
    ];
}

/// A domain error that knows what kind of failure it is. Libraries implement it for their
/// `thiserror` enums; the server turns any of them into a response through the one status
/// table, so no caller matches on variants or message text to pick a status.
pub trait HasErrorKind: std::error::Error {
    /// What kind of failure this is.
    fn error_kind(&self) -> ErrorKind;

    /// The error as a caller sees it: its kind and its message.
    fn to_api_error(&self) -> ApiError {
        ApiError::new(self.error_kind(), self.to_string())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("model {0:?} not found")]
    struct Missing(&'static str);

    impl HasErrorKind for Missing {
        fn error_kind(&self) -> ErrorKind {
            ErrorKind::NotFound
        }
    }

    #[test]
    fn a_domain_error_becomes_an_api_error_of_its_kind() {
        let e = Missing("mnist").to_api_error();
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::NotFound, "model \"mnist\" not found"));
    }
}
