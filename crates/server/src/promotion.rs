//! Optimistic promotion: a label or traffic change may carry `If-Match` naming the value the
//! caller expects to replace. A stale one is 409 and nothing changes; without the header the
//! last writer wins, as before.
//!
//! A label's entity tag is the version it names (`"3"`); a traffic policy's is a digest of the
//! stored policy. Both are `"none"` when there is none. The check runs inside the repository's
//! compare-and-set update (`Repository::update_labels`, `update_traffic`) on the value it is
//! about to replace, so two changes with the same `If-Match` cannot both pass, on one server or,
//! with labels shared through Postgres, across replicas.

use axum::http::{header, HeaderMap, HeaderValue};
use lathe_registry::Traffic;
use lathe_types::{ApiError, ErrorKind};
use sha2::{Digest, Sha256};

/// The entity tag of a label naming `version` (`"none"` for a missing label).
pub fn label_tag(version: Option<u64>) -> String {
    version.map_or_else(|| "\"none\"".to_string(), |v| format!("\"{v}\""))
}

/// The entity tag of a traffic policy: the first 16 bytes of the sha256 of its JSON, in hex.
pub fn traffic_tag(traffic: Option<&Traffic>) -> String {
    match traffic {
        None => "\"none\"".to_string(),
        Some(t) => {
            let digest = Sha256::digest(serde_json::to_vec(t).expect("a policy serialises"));
            format!("\"{}\"", digest[..16].iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

/// The tags an `If-Match` header accepts (quotes added where the caller left them out), or
/// None without the header.
///
/// # Errors
/// 400 when the header is not text.
pub fn expected(headers: &HeaderMap) -> Result<Option<Vec<String>>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let text = value.to_str().map_err(|_| ApiError::invalid("If-Match: expected an entity tag such as \"3\""))?;
    let tags = text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.strip_prefix("W/").unwrap_or(t))
        .map(|t| if t == "*" || t.starts_with('"') { t.to_string() } else { format!("\"{t}\"") })
        .collect();
    Ok(Some(tags))
}

/// Passes when `expected` is absent, lists `current`, or is `*` and something exists.
///
/// # Errors
/// 409 naming `what` and its current tag.
pub fn check(expected: &Option<Vec<String>>, current: &str, what: &str) -> Result<(), ApiError> {
    let Some(tags) = expected else { return Ok(()) };
    let exists = current != "\"none\"";
    if tags.iter().any(|t| t == current || (t == "*" && exists)) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::Conflict,
        format!("{what} is {current}, not {} (If-Match): reload it and retry", tags.join(", ")),
    ))
}

/// The `ETag` header value of a tag.
pub fn etag(tag: &str) -> HeaderValue {
    HeaderValue::from_str(tag).expect("tags are quoted ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_with_or_without_quotes_and_stale_ones_name_the_current_value() {
        let mut h = HeaderMap::new();
        assert_eq!(expected(&h).unwrap(), None);
        h.insert(header::IF_MATCH, HeaderValue::from_static("2, \"3\""));
        let tags = expected(&h).unwrap();
        assert!(check(&tags, &label_tag(Some(3)), "label").is_ok());
        assert!(check(&tags, &label_tag(Some(2)), "label").is_ok());
        let e = check(&tags, &label_tag(Some(4)), "label \"stable\" of model \"m\"").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert!(e.message.contains("label \"stable\" of model \"m\" is \"4\", not \"2\", \"3\""), "{}", e.message);
        h.insert(header::IF_MATCH, HeaderValue::from_static("*"));
        let any = expected(&h).unwrap();
        assert!(check(&any, &label_tag(Some(1)), "label").is_ok());
        assert!(check(&any, &label_tag(None), "label").is_err());
        let t = Traffic { routes: vec![lathe_registry::Route { target: "1".into(), weight: 1 }], shadow: None };
        assert_ne!(traffic_tag(Some(&t)), traffic_tag(None));
        assert_eq!(traffic_tag(Some(&t)), traffic_tag(Some(&t.clone())));
    }
}
