//! The one place where error kinds become HTTP status codes.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lathe_types::{ApiError, ErrorKind};

/// HTTP status of an error kind (docs/protocols.md §5e).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorKind::OverLimit => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// OpenAI's error `type` for a kind (the stable string clients branch on; `code` carries the
/// integer status, as OpenAI and vLLM send it).
pub fn openai_type_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Unauthenticated => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::ResourceExhausted => "rate_limit_error",
        ErrorKind::Internal | ErrorKind::Unavailable | ErrorKind::DeadlineExceeded => "server_error",
        ErrorKind::InvalidArgument
        | ErrorKind::MethodNotAllowed
        | ErrorKind::UnsupportedMediaType
        | ErrorKind::OverLimit
        | ErrorKind::PayloadTooLarge
        | ErrorKind::Unimplemented
        | ErrorKind::Conflict => "invalid_request_error",
    }
}

/// An error rendered as `{"error": "<message>"}`, the shape TF Serving, KServe V1 and the Open
/// Inference Protocol share; 429 carries `Retry-After`.
#[derive(Debug)]
pub struct HttpError(pub ApiError);

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> Self {
        HttpError(e)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = status_of(self.0.kind);
        let body = serde_json::to_vec(&serde_json::json!({ "error": self.0.message })).expect("error serialises");
        let mut resp = (status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.0.kind == ErrorKind::Unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Result type of handlers.
pub type HttpResult<T> = Result<T, HttpError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status_and_openai_type() {
        let table = [
            (ErrorKind::InvalidArgument, 400, "invalid_request_error"),
            (ErrorKind::Unauthenticated, 401, "authentication_error"),
            (ErrorKind::PermissionDenied, 403, "permission_error"),
            (ErrorKind::NotFound, 404, "not_found_error"),
            (ErrorKind::MethodNotAllowed, 405, "invalid_request_error"),
            (ErrorKind::Conflict, 409, "invalid_request_error"),
            (ErrorKind::PayloadTooLarge, 413, "invalid_request_error"),
            (ErrorKind::UnsupportedMediaType, 415, "invalid_request_error"),
            (ErrorKind::OverLimit, 422, "invalid_request_error"),
            (ErrorKind::ResourceExhausted, 429, "rate_limit_error"),
            (ErrorKind::Internal, 500, "server_error"),
            (ErrorKind::Unimplemented, 501, "invalid_request_error"),
            (ErrorKind::Unavailable, 503, "server_error"),
            (ErrorKind::DeadlineExceeded, 504, "server_error"),
        ];
        assert_eq!(table.len(), ErrorKind::ALL.len(), "the table covers every kind");
        for (kind, status, openai) in table {
            assert_eq!(status_of(kind).as_u16(), status, "{kind:?}");
            assert_eq!(openai_type_of(kind), openai, "{kind:?}");
        }
    }

    #[test]
    fn responses_carry_the_headers_their_status_needs() {
        let response = HttpError(ApiError::new(ErrorKind::Unauthenticated, "no key")).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        for kind in [ErrorKind::ResourceExhausted, ErrorKind::Unavailable] {
            let response = HttpError(ApiError::new(kind, "busy")).into_response();
            assert_eq!(response.headers()[header::RETRY_AFTER], "1", "{kind:?}");
        }
        let response = HttpError(ApiError::new(ErrorKind::PermissionDenied, "scope")).into_response();
        assert!(response.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
