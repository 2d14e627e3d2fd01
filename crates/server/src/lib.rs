//! Lathe's HTTP server: TF Serving REST, KServe V1 and the Open Inference Protocol V2 over
//! the runtime's version router, plus repository control, statistics, Prometheus metrics
//! and health probes, on one port.
//!
//! This crate is the only place where error kinds become status codes ([`error`]); handlers
//! decode the protocol, hand tensors to the runtime, and encode the answer. Compute never
//! runs here: requests wait on the runtime's compute threads through a oneshot channel.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod admin;
pub mod auth;
mod body;
pub mod content_encoding;
mod debug;
pub mod embed;
pub mod error;
pub mod explain;
mod generation_metrics;
mod infer;
pub mod llm;
mod manage;
pub mod metrics;
pub mod model_upload;
mod monitoring;
pub mod observe;
pub mod oip;
pub mod oip_codec;
mod oip_embed;
pub mod openai;
pub mod openapi;
mod preprocessing_metadata;
pub mod promotion;
mod repository;
pub mod request_log;
pub mod routes;
mod state;
pub mod tensors;
pub mod tfs;
pub mod tfs_codec;
pub mod ui;

use std::future::Future;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use lathe_types::{ApiError, ErrorKind};
use serde_json::json;

pub use metrics::ServerMetrics;
pub use state::{AppState, Limits};

use crate::body::json_ok;
use crate::error::HttpError;

/// Builds the router with every route.
pub fn router(state: AppState) -> Router {
    routes::mount(Router::new())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), request_log::record))
        .layer(middleware::from_fn_with_state(state.clone(), content_encoding::decode_request))
        .layer(middleware::from_fn_with_state(state.clone(), auth::authorize))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    summary = "KServe V1 liveness",
    responses(
        (status = 200, description = "`{status: alive}`"),
    ),
)]
async fn alive() -> Response {
    json_ok(&json!({ "status": "alive" }))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (docs/metrics.md)",
    responses(
        (status = 200, description = "Text exposition format"),
    ),
)]
async fn metrics_text(State(st): State<AppState>) -> Response {
    let mut text = st.metrics.render(&st.manager);
    text.push_str(&st.observe.render());
    let mut r = text.into_response();
    let content_type = format!("{}; charset=utf-8", metrics::TEXT_FORMAT);
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(&content_type).expect("a valid header"));
    r
}

async fn not_found(req: Request) -> Response {
    HttpError(ApiError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    let message = format!("method {} is not allowed on {}", req.method(), req.uri().path());
    HttpError(ApiError::new(ErrorKind::MethodNotAllowed, message)).into_response()
}

/// One structured log line per request (target `lathe::access`, level info).
async fn access_log(req: Request, next: Next) -> Response {
    if !tracing::enabled!(target: "lathe::access", tracing::Level::INFO) {
        return next.run(req).await;
    }
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let started = Instant::now();
    let response = next.run(req).await;
    tracing::info!(
        target: "lathe::access",
        %method,
        path,
        status = response.status().as_u16(),
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    response
}

/// Serves `state` on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

/// PEM files of the server's certificate chain and private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: std::path::PathBuf,
    /// Private key, PEM.
    pub key: std::path::PathBuf,
}

/// Transport options of [`serve_with`].
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Origins allowed by CORS (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Serve HTTPS with these files (rustls).
    pub tls: Option<TlsFiles>,
}

/// Adds CORS for `origins` (the outermost layer, so preflight requests need no key).
pub fn with_cors(router: Router, origins: &[String]) -> Result<Router, String> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return Ok(router);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| format!("invalid CORS origin {o:?}")))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            axum::http::Method::GET,
            axum::http::Method::POST,
            axum::http::Method::PUT,
            axum::http::Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            axum::http::HeaderName::from_static("inference-header-content-length"),
            axum::http::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([axum::http::HeaderName::from_static("inference-header-content-length")]);
    Ok(router.layer(layer))
}

/// Like [`serve`], with CORS and optional TLS.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = with_cors(router(state), &options.cors_origins).map_err(std::io::Error::other)?;
    let Some(tls) = options.tls else {
        return axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| std::io::Error::other(format!("TLS files {} / {}: {e}", tls.cert.display(), tls.key.display())))?;
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
    });
    let std_listener = listener.into_std()?;
    axum_server::from_tcp_rustls(std_listener, config).handle(handle).serve(app.into_make_service()).await
}
