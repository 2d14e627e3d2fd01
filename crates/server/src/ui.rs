//! The web dashboard at `/ui`: static pages embedded in the binary (no CDN, works offline).
//!
//! The pages are public; the API calls they make from the browser carry the key the user types
//! once (kept in the tab's session storage), so every figure they show passes the same scope
//! checks as any other client. Nothing is built: the files are embedded as written.
//!
//! Chart.js (MIT, `ui/vendor/chart.js-LICENSE.md`) is vendored as published:
//! `dist/chart.umd.min.js` of the npm package `chart.js@4.6.1` (sha256 `87364cc2…c6925d2`),
//! without its last line, the `sourceMappingURL` comment naming a map that is not shipped.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use lathe_types::ApiError;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::auth::bearer_token;
use crate::body::json_ok;
use crate::error::HttpResult;
use crate::state::AppState;

/// One embedded file: its path under `/ui/`, media type and bytes.
struct Asset {
    path: &'static str,
    media_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $media_type:expr) => {
        Asset { path: $path, media_type: $media_type, body: include_bytes!(concat!("../ui/", $path)) }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("models.js", JS),
    asset!("operations.js", JS),
    asset!("digits.js", JS),
    asset!("text.js", JS),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("vendor/chart.umd.min.js", JS),
    asset!("vendor/chart.js-LICENSE.md", "text/markdown; charset=utf-8"),
];

/// Scripts and styles only from the server itself (element styles set from script are allowed).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /ui`: redirects to `/ui/`, so that the pages' relative links resolve under it.
#[utoipa::path(
    get,
    path = "/ui",
    tag = "operations",
    summary = "Web dashboard (redirects to `/ui/`, whose page is also served at `/ui/index.html`)",
    responses(
        (status = 308, description = "To `/ui/`"),
    ),
)]
pub async fn redirect() -> Response {
    // Relative, so that it also holds behind a proxy that serves Lathe under a path prefix.
    Redirect::permanent("ui/").into_response()
}

/// `GET /ui/config.json`: what the pages need before their first API call: whether the server
/// asks for API keys, and the holder and scopes of the key sent (`"key": null` without one,
/// `"invalid"` for a key the server does not accept), so that a page asks for a key or says
/// which scope it lacks instead of collecting 401s and 403s.
#[utoipa::path(
    get,
    path = "/ui/config.json",
    tag = "operations",
    summary = "The dashboard's settings: whether keys are required and the sent key's scopes",
    responses(
        (status = 200, description = "`{auth_required, key: null | \"invalid\" | {name, scopes}}`"),
    ),
)]
pub async fn config(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let key = match bearer_token(&headers).filter(|_| st.keys.is_enabled()) {
        None => Value::Null,
        Some(token) => match st.keys.check(token) {
            Some((name, scopes)) => {
                json!({ "name": name, "scopes": scopes.iter().map(|s| s.name()).collect::<Vec<_>>() })
            }
            None => json!("invalid"),
        },
    };
    json_ok(&json!({ "auth_required": st.keys.is_enabled(), "key": key }))
}

/// `GET /ui/`: the dashboard's page.
pub async fn index(headers: HeaderMap) -> Response {
    serve(find("index.html").expect("index.html is embedded"), &headers)
}

/// `GET /ui/{*rest}`: one embedded file; 404 naming the path for anything else.
#[utoipa::path(
    get,
    path = "/ui/{rest}",
    tag = "operations",
    summary = "A file of the web dashboard (pages, scripts, styles, the vendored chart library and its licence)",
    params(("rest" = String, Path, description = "`index.html`, `app.js`, `vendor/chart.umd.min.js`, …")),
    responses(
        (status = 200, description = "The file"),
        (status = 404, description = "No such file"),
    ),
)]
pub async fn file(Path(rest): Path<String>, headers: HeaderMap) -> HttpResult<Response> {
    let index = find(&rest).ok_or_else(|| ApiError::not_found(format!("no dashboard file {rest:?} under /ui/")))?;
    Ok(serve(index, &headers))
}

/// The index in [`ASSETS`] of the file at `path`.
fn find(path: &str) -> Option<usize> {
    ASSETS.iter().position(|a| a.path == path)
}

/// The strong entity tag of each asset (sha256 of its bytes, in [`ASSETS`] order).
fn etags() -> &'static [HeaderValue] {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                HeaderValue::from_str(&format!("\"{hex}\"")).expect("hex is a valid header value")
            })
            .collect()
    })
}

/// The asset at `index` of [`ASSETS`], or 304 when the request's `If-None-Match` already names
/// its entity tag.
fn serve(index: usize, request: &HeaderMap) -> Response {
    let (asset, etag) = (&ASSETS[index], etags()[index].clone());
    let cached = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag.to_str().unwrap_or_default() || t.trim() == "*"));
    let mut r =
        if cached { StatusCode::NOT_MODIFIED.into_response() } else { (StatusCode::OK, asset.body).into_response() };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    // Assets change with the binary: revalidate (a 304 when unchanged) rather than cache blindly.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::ETAG, etag);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if asset.media_type == HTML {
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_media_type_and_a_body() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(a.media_type.contains('/'), "{}", a.path);
        }
        assert!(find("vendor/chart.umd.min.js").is_some_and(|i| ASSETS[i].media_type == JS));
    }

    #[test]
    fn every_file_of_the_ui_folder_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
        let mut files = Vec::new();
        for dir in [root.clone(), root.join("vendor")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    files.push(path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"));
                }
            }
        }
        files.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        embedded.sort();
        assert_eq!(files, embedded);
    }

    #[test]
    fn an_unchanged_file_is_answered_304() {
        let asset = find("app.js").unwrap();
        let tag = etags()[asset].clone();
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, tag.clone());
        assert_eq!(serve(asset, &request).status(), StatusCode::NOT_MODIFIED);
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        let fresh = serve(asset, &request);
        assert_eq!((fresh.status(), fresh.headers().get(header::ETAG)), (StatusCode::OK, Some(&tag)));
    }
}
