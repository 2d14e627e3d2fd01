//! `GET /v1/models/{m}[/versions/{v}|/labels/{l}]/monitoring`: the drift of a version's live
//! inputs and outputs against its training statistics, measured now on the explanation
//! threads.

use axum::response::Response;
use lathe_runtime::Selector;
use lathe_types::{ApiError, ErrorKind};
use serde_json::json;

use crate::body::json_ok;
use crate::error::HttpResult;
use crate::state::AppState;

/// Features listed in the answer (largest PSI first).
const LISTED_FEATURES: usize = 20;

/// The monitoring answer of the version `selector` picks.
pub async fn monitoring(st: &AppState, name: &str, selector: &Selector) -> HttpResult<Response> {
    let loaded = st.manager.resolve(name, selector)?;
    let monitor = st.observe.monitor(&loaded, st.manager.repository().root()).await;
    let (model, version) = (loaded.name.clone(), loaded.version);
    if st.observe.config.window_rows == 0 {
        return Ok(json_ok(&json!({
            "model_name": model,
            "model_version": version.to_string(),
            "alert": false,
            "message": "drift is not monitored on this server (--drift-window 0)",
        })));
    }
    if !monitor.has_statistics() {
        return Ok(json_ok(&json!({
            "model_name": model,
            "model_version": version.to_string(),
            "statistics": false,
            "alert": false,
            "message": format!(
                "version {version} has no training statistics (it was imported, or trained before Lathe recorded \
                 them), so its drift is not measured"
            ),
        })));
    }
    let config = st.observe.config.drift;
    let (m, v) = (model.clone(), version);
    let rx = st.observe.drift_pool.submit(move || monitor.measure(&config, &m, v))?;
    let report = rx
        .await
        .map_err(|_| ApiError::new(ErrorKind::Internal, "the measuring thread stopped"))?
        .ok_or_else(|| ApiError::new(ErrorKind::Internal, "the statistics disappeared"))?;
    let listed: Vec<_> = report.features.iter().take(LISTED_FEATURES).collect();
    Ok(json_ok(&json!({
        "model_name": model,
        "model_version": version.to_string(),
        "statistics": true,
        "window_rows": st.observe.config.window_rows,
        "rows": report.rows,
        "min_rows": config.min_rows,
        "score": report.score,
        "alert": report.alert,
        "psi_threshold": report.psi_threshold,
        "drifted_features": report.drifted_features,
        "feature_count": report.features.len(),
        "features": listed,
        "outputs": report.outputs,
    })))
}
