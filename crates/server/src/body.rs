//! Reading request bodies under the size limit, and small response helpers.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lathe_types::{ApiError, ErrorKind};

/// Reads a whole body; over `limit` bytes is a 413 that names the limit.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::new(ErrorKind::PayloadTooLarge, format!("request body is larger than the limit of {limit} bytes"))
        } else {
            ApiError::invalid(format!("cannot read the request body: {e}"))
        }
    })
}

/// Whether reading stopped at the body size limit (`http_body_util::LengthLimitError`
/// somewhere in the error's source chain).
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// A JSON response with status 200.
pub fn json_response(bytes: Vec<u8>) -> Response {
    json_with_status(StatusCode::OK, bytes)
}

/// A JSON response with a status.
pub fn json_with_status(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut r = (status, bytes).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Serialises a value as a 200 JSON response.
pub fn json_ok<T: serde::Serialize>(v: &T) -> Response {
    json_response(serde_json::to_vec(v).expect("response serialises"))
}

/// Parses a version path segment.
pub fn parse_version(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::invalid(format!("invalid version {s:?}: expected a positive integer")))
}
