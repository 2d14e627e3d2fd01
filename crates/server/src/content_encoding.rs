//! Compressed request bodies: `Content-Encoding: gzip` and `deflate` (zlib, or the raw DEFLATE
//! some clients send) decoded for every route, under the body limit on the decoded size; any
//! other coding is refused with 415. The decoding is a pure function over bytes, fuzzable on
//! its own ([`decode_body`]); [`decode_request`] is the middleware.

use std::io::Read;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use lathe_types::{ApiError, ErrorKind};

use crate::body::read_body;
use crate::error::HttpError;
use crate::state::AppState;

/// Codings this server decodes, as a 415 names them.
const SUPPORTED: &str = "identity, gzip, deflate";

/// Decodes `body` sent with the `Content-Encoding` value `encoding` (codings listed in the order
/// they were applied, RFC 9110 §8.4); the decoded size may not exceed `limit` bytes.
///
/// # Errors
/// 415 for a coding other than identity, gzip, x-gzip and deflate; 413 when the decoded body
/// is larger than `limit`; 400 when the bytes are not valid data of their coding.
pub fn decode_body(encoding: &str, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    let codings: Vec<String> =
        encoding.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()).collect();
    if let Some(other) = codings.iter().find(|c| !matches!(c.as_str(), "identity" | "gzip" | "x-gzip" | "deflate")) {
        return Err(ApiError::new(
            ErrorKind::UnsupportedMediaType,
            format!("Content-Encoding {other:?} is not supported; send one of {SUPPORTED}"),
        ));
    }
    let mut body = body;
    for coding in codings.iter().rev() {
        body = match coding.as_str() {
            "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&body[..]), "gzip", limit)?,
            "deflate" if is_zlib(&body) => inflate(flate2::read::ZlibDecoder::new(&body[..]), "deflate", limit)?,
            "deflate" => inflate(flate2::read::DeflateDecoder::new(&body[..]), "deflate", limit)?,
            _ => body,
        };
    }
    Ok(body)
}

/// Whether `data` starts with a zlib header (RFC 1950: method 8, header checksum).
fn is_zlib(data: &[u8]) -> bool {
    matches!(data, [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0)
}

/// Reads a decoder to its end, at most `limit` bytes.
fn inflate(decoder: impl Read, coding: &str, limit: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    decoder.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| {
        ApiError::invalid(format!("Content-Encoding {coding}: the body is not valid {coding} data: {e}"))
    })?;
    if out.len() > limit {
        return Err(ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes once decoded ({coding})"),
        ));
    }
    Ok(Bytes::from(out))
}

/// Middleware: replaces a compressed request body by its decoded bytes (and drops
/// `Content-Encoding` and `Content-Length`), or answers the error in the route's shape.
pub async fn decode_request(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(encoding) = req.headers().get(header::CONTENT_ENCODING).cloned() else {
        return next.run(req).await;
    };
    let openai = is_openai_path(req.uri().path());
    let (mut parts, body) = req.into_parts();
    let limit = st.limits.max_body_bytes;
    let decoded = async {
        let text = encoding
            .to_str()
            .map_err(|_| ApiError::new(ErrorKind::UnsupportedMediaType, "Content-Encoding: expected ASCII"))?;
        let raw = read_body(body, limit).await?;
        decode_body(text, raw, limit)
    }
    .await;
    match decoded {
        Ok(bytes) => {
            parts.headers.remove(header::CONTENT_ENCODING);
            parts.headers.remove(header::CONTENT_LENGTH);
            next.run(Request::from_parts(parts, Body::from(bytes))).await
        }
        Err(e) if openai => crate::openai::openai_error(&e, None),
        Err(e) => HttpError(e).into_response(),
    }
}

/// Routes that answer in OpenAI's error envelope.
fn is_openai_path(path: &str) -> bool {
    ["/v1/chat/", "/v1/completions", "/v1/embeddings"].iter().any(|p| path.starts_with(p))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode() {
        let text = br#"{"instances": [[1, 2]]}"#;
        assert_eq!(&decode_body("gzip", gzip(text), 100).unwrap()[..], text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(text).unwrap();
        assert_eq!(&decode_body("deflate", Bytes::from(z.finish().unwrap()), 100).unwrap()[..], text);
        let mut d = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        d.write_all(text).unwrap();
        assert_eq!(&decode_body("Deflate", Bytes::from(d.finish().unwrap()), 100).unwrap()[..], text);
        assert_eq!(&decode_body("identity", Bytes::from_static(text), 100).unwrap()[..], text);
    }

    #[test]
    fn limits_codings_and_garbage_are_refused() {
        let e = decode_body("gzip", gzip(&[b' '; 5000]), 1000).unwrap_err();
        assert_eq!(e.kind, ErrorKind::PayloadTooLarge);
        let e = decode_body("br", Bytes::from_static(b"x"), 1000).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (
                ErrorKind::UnsupportedMediaType,
                "Content-Encoding \"br\" is not supported; send one of identity, gzip, deflate"
            )
        );
        let e = decode_body("gzip", Bytes::from_static(b"{\"a\": 1}"), 1000).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.starts_with("Content-Encoding gzip: the body is not valid gzip data"), "{e:?}");
    }
}
