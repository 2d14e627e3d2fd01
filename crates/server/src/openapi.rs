//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations.
//! `docs/openapi.json` is this document; a test fails when it is stale
//! (`lathe openapi > docs/openapi.json` refreshes it).

use utoipa::OpenApi;

/// Every documented route.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lathe",
        description = "Train, version and serve models: TF Serving REST, KServe V1, Open Inference Protocol V2 and \
            the lifecycle API. Errors are `{\"error\": \"<message>\"}`. Send `Authorization: Bearer <key>` when the \
                server has API keys (scopes: admin, infer, read)."
    ),
    paths(
        crate::oip::server_metadata,
        crate::oip::live,
        crate::oip::ready,
        crate::oip::model_metadata,
        crate::oip::version_metadata,
        crate::oip::model_ready,
        crate::oip::version_ready,
        crate::oip::infer_model,
        crate::oip::infer_version,
        crate::oip::model_config,
        crate::oip::version_config,
        crate::oip::all_stats,
        crate::oip::model_stats,
        crate::oip::version_stats,
        crate::repository::index,
        crate::repository::load,
        crate::repository::unload,
        crate::tfs::list,
        crate::tfs::get,
        crate::tfs::post,
        crate::manage::put,
        crate::manage::delete,
        crate::manage::list_models,
        crate::admin::list_datasets,
        crate::admin::upload,
        crate::admin::describe,
        crate::admin::delete_dataset,
        crate::admin::submit_job,
        crate::admin::list_jobs,
        crate::admin::get_job,
        crate::admin::cancel_job,
        crate::admin::job_events,
        crate::admin::audit_log,
        crate::admin::evaluate,
        crate::admin::list_evaluations,
        crate::admin::compare,
        crate::metrics_text,
        crate::alive,
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = "1".into();
    doc.info.license = None;
    doc.info.contact = None;
    doc.to_pretty_json().expect("the document serialises") + "\n"
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_document_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == super::openapi_json(),
            "docs/openapi.json is stale: run `cargo run --release -- openapi > docs/openapi.json`"
        );
    }
}
