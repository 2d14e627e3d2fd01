//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use lathe_runtime::Manager;

use crate::metrics::ServerMetrics;

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Longest a request may take (504 after); text generation is not limited by it.
    pub request_timeout: Duration,
    /// Most choices (`n`) per generation request.
    pub max_n: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_body_bytes: 32 << 20, request_timeout: Duration::from_secs(30), max_n: 8 }
    }
}

/// Shared state of the HTTP server.
#[derive(Clone)]
pub struct AppState {
    /// The version router.
    pub manager: Arc<Manager>,
    /// Request metrics.
    pub metrics: Arc<ServerMetrics>,
    /// Request limits.
    pub limits: Limits,
    /// Accepted API keys.
    pub keys: Arc<crate::auth::KeyRing>,
    /// The lifecycle API (datasets, jobs), when enabled.
    pub admin: Option<Arc<crate::admin::Admin>>,
    /// Explanations, drift monitoring and the request log.
    pub observe: Arc<crate::observe::Observability>,
}
