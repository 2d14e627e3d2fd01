//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` annotations.
//! `docs/openapi.json` is this document; a test fails when it is stale
//! (`lathe openapi > docs/openapi.json` refreshes it).

use axum::http::Method;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::OpenApi;

use crate::routes::{self, Access};

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
        crate::oip::explain_model,
        crate::oip::explain_version,
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
        crate::openai::embeddings,
        crate::llm::chat::completions,
        crate::llm::completions::completions,
        crate::llm::tokenize::tokenize,
        crate::llm::tokenize::detokenize,
        crate::llm::triton::generate,
        crate::llm::triton::generate_version,
        crate::llm::triton::generate_stream,
        crate::llm::triton::generate_stream_version,
        crate::admin::list_datasets,
        crate::admin::upload,
        crate::model_upload::upload_onnx,
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
        crate::ui::redirect,
        crate::ui::config,
        crate::ui::file,
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON (what `docs/openapi.json` holds).
pub fn openapi_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = "1".into();
    doc.info.license = None;
    doc.info.contact = None;
    add_security(&mut doc);
    doc.to_pretty_json().expect("the document serialises") + "\n"
}

/// The name of the bearer-key security scheme.
const BEARER: &str = "bearer";

/// Declares the bearer scheme and gives each operation the scopes [`routes::ENDPOINTS`] says
/// it needs (OpenAPI 3.1 role names); operations of catch-all routes also list each form's
/// scope in their description.
fn add_security(doc: &mut utoipa::openapi::OpenApi) {
    let scheme = SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
    doc.components.get_or_insert_with(Default::default).add_security_scheme(BEARER, scheme);
    for (path, item) in doc.paths.paths.iter_mut() {
        let mount = path.replace("{rest}", "{*rest}");
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, op) in operations {
            if let Some(op) = op {
                secure(op, &method, &mount);
            }
        }
    }
}

fn secure(op: &mut Operation, method: &Method, mount: &str) {
    let scopes = routes::scopes_of(method, mount);
    if scopes.is_empty() {
        return;
    }
    let names = scopes.iter().map(|s| s.name());
    op.security = Some(vec![SecurityRequirement::new(BEARER, names)]);
    let forms: Vec<String> = routes::forms_of(method, mount)
        .filter_map(|e| match e.access {
            Access::Needs(scope) => Some(format!("`{}` needs `{}`", e.path, scope.name())),
            _ => None,
        })
        .collect();
    if !forms.is_empty() {
        let text = format!("Scopes: {}.", forms.join("; "));
        op.description = Some(match op.description.take() {
            Some(d) => format!("{d}\n\n{text}"),
            None => text,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::routes::{Serve, ENDPOINTS};

    #[test]
    fn the_document_and_the_route_table_list_the_same_operations() {
        let doc: serde_json::Value = serde_json::from_str(&super::openapi_json()).unwrap();
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push(format!("{} {}", method.to_uppercase(), path.replace("{rest}", "{*rest}")));
            }
        }
        let mut routed: Vec<String> = ENDPOINTS
            .iter()
            .filter(|e| matches!(e.serve, Serve::Route(_)))
            .map(|e| format!("{} {}", e.method, e.path))
            .collect();
        documented.sort();
        routed.sort();
        // The health aliases are documented in the summaries of the V2 probes, `/ui/` in `/ui`'s.
        let aliases = ["GET /healthz", "GET /livez", "GET /ping", "GET /readyz", "GET /ui/"];
        routed.retain(|r| !aliases.contains(&r.as_str()));
        assert_eq!(documented, routed);
        let infer = &doc["paths"]["/v2/models/{m}/infer"]["post"]["security"];
        assert_eq!(infer, &serde_json::json!([{"bearer": ["infer"]}]));
        assert!(doc["paths"]["/healthz"]["get"].get("security").is_none());
        let predict = &doc["paths"]["/v1/models/{rest}"]["post"];
        assert_eq!(predict["security"], serde_json::json!([{"bearer": ["infer", "admin"]}]));
        assert!(predict["description"].as_str().unwrap().contains("`/v1/models/{m}/rollback` needs `admin`"));
    }

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
