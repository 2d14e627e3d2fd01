//! The route table: every endpoint with the scope it needs, declared once.
//!
//! The router ([`crate::router`]), the authorization middleware ([`crate::auth::authorize`]),
//! the `security` entries of the OpenAPI document ([`crate::openapi`]) and the security test
//! all read [`ENDPOINTS`], so a route cannot be added without saying who may call it.
//!
//! TF Serving's paths put the model, version or label and the verb in one path
//! (`/v1/models/mnist/versions/2:predict`), which the router serves with one catch-all route
//! per method. The table lists each form served by a catch-all as its own endpoint
//! ([`Serve::Within`]) so that each form declares its own scope.

use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::auth::Scope;
use crate::state::AppState;
use crate::{admin, llm, manage, model_upload, oip, openai, repository, tfs, ui};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key (health probes).
    Open,
    /// A key holding this scope or one that implies it (`admin` implies all, `infer` implies
    /// `read`).
    Needs(Scope),
    /// A catch-all route whose forms ([`Serve::Within`] entries) each declare their scope;
    /// a path matching none of them needs `admin`.
    ByForm,
}

/// How the router serves an endpoint.
#[derive(Clone, Copy)]
pub enum Serve {
    /// Its own route: [`Endpoint::path`] is the router's pattern, served by this handler.
    Route(fn(MethodFilter) -> MethodRouter<AppState>),
    /// One form of the catch-all route with this pattern (an [`Access::ByForm`] endpoint of
    /// the same method).
    Within(&'static str),
}

/// One method on one path.
#[derive(Clone)]
pub struct Endpoint {
    /// The HTTP method (`GET` also answers `HEAD`).
    pub method: Method,
    /// The path as clients write it; `{name}` is a parameter (one or more characters other
    /// than `/`), `{*name}` a catch-all (the rest of the path).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// How the router serves it.
    pub serve: Serve,
}

const fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
) -> Endpoint {
    Endpoint { method, path, access, serve: Serve::Route(handler) }
}

const fn form(method: Method, path: &'static str, scope: Scope) -> Endpoint {
    Endpoint { method, path, access: Access::Needs(scope), serve: Serve::Within(V1_MODELS) }
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;
const OPEN: Access = Access::Open;
const READ: Access = Access::Needs(Scope::Read);
const INFER: Access = Access::Needs(Scope::Infer);
const ADMIN: Access = Access::Needs(Scope::Admin);

/// The catch-all route of TF Serving's and KServe V1's model paths.
pub const V1_MODELS: &str = "/v1/models/{*rest}";

/// Every endpoint, in the order the OpenAPI document and `docs/` present them.
pub static ENDPOINTS: &[Endpoint] = &[
    // Open Inference Protocol V2.
    route(GET, "/v2", READ, |f| on(f, oip::server_metadata)),
    route(GET, "/v2/health/live", OPEN, |f| on(f, oip::live)),
    route(GET, "/v2/health/ready", OPEN, |f| on(f, oip::ready)),
    route(GET, "/v2/models/stats", READ, |f| on(f, oip::all_stats)),
    route(GET, "/v2/models/{m}", READ, |f| on(f, oip::model_metadata)),
    route(GET, "/v2/models/{m}/ready", READ, |f| on(f, oip::model_ready)),
    route(POST, "/v2/models/{m}/infer", INFER, |f| on(f, oip::infer_model)),
    route(GET, "/v2/models/{m}/config", READ, |f| on(f, oip::model_config)),
    route(GET, "/v2/models/{m}/stats", READ, |f| on(f, oip::model_stats)),
    route(GET, "/v2/models/{m}/versions/{v}", READ, |f| on(f, oip::version_metadata)),
    route(GET, "/v2/models/{m}/versions/{v}/ready", READ, |f| on(f, oip::version_ready)),
    route(POST, "/v2/models/{m}/versions/{v}/infer", INFER, |f| on(f, oip::infer_version)),
    route(POST, "/v2/models/{m}/explain", INFER, |f| on(f, oip::explain_model)),
    route(POST, "/v2/models/{m}/versions/{v}/explain", INFER, |f| on(f, oip::explain_version)),
    route(GET, "/v2/models/{m}/versions/{v}/config", READ, |f| on(f, oip::version_config)),
    route(GET, "/v2/models/{m}/versions/{v}/stats", READ, |f| on(f, oip::version_stats)),
    route(POST, "/v2/models/{m}/generate", INFER, |f| on(f, llm::triton::generate)),
    route(POST, "/v2/models/{m}/generate_stream", INFER, |f| on(f, llm::triton::generate_stream)),
    route(POST, "/v2/models/{m}/versions/{v}/generate", INFER, |f| on(f, llm::triton::generate_version)),
    route(POST, "/v2/models/{m}/versions/{v}/generate_stream", INFER, |f| on(f, llm::triton::generate_stream_version)),
    route(POST, "/v2/repository/index", ADMIN, |f| on(f, repository::index)),
    route(POST, "/v2/repository/models/{m}/load", ADMIN, |f| on(f, repository::load)),
    route(POST, "/v2/repository/models/{m}/unload", ADMIN, |f| on(f, repository::unload)),
    // TF Serving REST and KServe V1.
    route(GET, "/v1/models", READ, |f| on(f, tfs::list)),
    route(POST, "/v1/embeddings", INFER, |f| on(f, openai::embeddings)),
    // OpenAI and vLLM text generation.
    route(POST, "/v1/chat/completions", INFER, |f| on(f, llm::chat::completions)),
    route(POST, "/v1/completions", INFER, |f| on(f, llm::completions::completions)),
    route(POST, "/tokenize", INFER, |f| on(f, llm::tokenize::tokenize)),
    route(POST, "/detokenize", INFER, |f| on(f, llm::tokenize::detokenize)),
    route(GET, V1_MODELS, Access::ByForm, |f| on(f, tfs::get)),
    form(GET, "/v1/models/{m}", Scope::Read),
    form(GET, "/v1/models/{m}/metadata", Scope::Read),
    form(GET, "/v1/models/{m}/versions/{v}", Scope::Read),
    form(GET, "/v1/models/{m}/versions/{v}/metadata", Scope::Read),
    form(GET, "/v1/models/{m}/labels/{l}", Scope::Read),
    form(GET, "/v1/models/{m}/labels/{l}/metadata", Scope::Read),
    form(GET, "/v1/models/{m}/traffic", Scope::Read),
    form(GET, "/v1/models/{m}/monitoring", Scope::Read),
    form(GET, "/v1/models/{m}/versions/{v}/monitoring", Scope::Read),
    form(GET, "/v1/models/{m}/labels/{l}/monitoring", Scope::Read),
    form(GET, "/v1/models/{m}/manifest", Scope::Read),
    form(GET, "/v1/models/{m}/versions/{v}/manifest", Scope::Read),
    form(GET, "/v1/models/{m}/labels/{l}/manifest", Scope::Read),
    route(POST, V1_MODELS, Access::ByForm, |f| on(f, tfs::post)),
    form(POST, "/v1/models/{m}:{verb}", Scope::Infer),
    form(POST, "/v1/models/{m}/versions/{v}:{verb}", Scope::Infer),
    form(POST, "/v1/models/{m}/labels/{l}:{verb}", Scope::Infer),
    form(POST, "/v1/models/{m}/rollback", Scope::Admin),
    form(POST, "/v1/models/{m}/debug", Scope::Admin),
    form(POST, "/v1/models/{m}/versions/{v}/debug", Scope::Admin),
    // Any other `…:{verb}` path goes to the inference handler, which answers 400 for it.
    form(POST, "/v1/models/{*target}:{verb}", Scope::Infer),
    route(PUT, V1_MODELS, Access::ByForm, |f| on(f, manage::put)),
    form(PUT, "/v1/models/{m}/traffic", Scope::Admin),
    form(PUT, "/v1/models/{m}/labels/{l}", Scope::Admin),
    route(DELETE, V1_MODELS, Access::ByForm, |f| on(f, manage::delete)),
    form(DELETE, "/v1/models/{m}/traffic", Scope::Admin),
    form(DELETE, "/v1/models/{m}/labels/{l}", Scope::Admin),
    form(DELETE, "/v1/models/{m}/versions/{v}", Scope::Admin),
    route(GET, "/v1/admin/models", ADMIN, |f| on(f, manage::list_models)),
    route(PUT, "/v1/admin/models/{name}/onnx", ADMIN, |f| on(f, model_upload::upload_onnx)),
    // Lifecycle API.
    route(GET, "/v1/datasets", ADMIN, |f| on(f, admin::list_datasets)),
    route(GET, "/v1/datasets/{name}", ADMIN, |f| on(f, admin::describe)),
    route(DELETE, "/v1/datasets/{name}", ADMIN, |f| on(f, admin::delete_dataset)),
    route(PUT, "/v1/datasets/{name}/files/{file}", ADMIN, |f| on(f, admin::upload)),
    route(GET, "/v1/jobs", ADMIN, |f| on(f, admin::list_jobs)),
    route(POST, "/v1/jobs", ADMIN, |f| on(f, admin::submit_job)),
    route(GET, "/v1/jobs/{id}", ADMIN, |f| on(f, admin::get_job)),
    route(POST, "/v1/jobs/{id}/cancel", ADMIN, |f| on(f, admin::cancel_job)),
    route(GET, "/v1/jobs/{id}/events", ADMIN, |f| on(f, admin::job_events)),
    route(GET, "/v1/admin/audit", ADMIN, |f| on(f, admin::audit_log)),
    route(GET, "/v1/evaluations", ADMIN, |f| on(f, admin::list_evaluations)),
    route(POST, "/v1/evaluations", ADMIN, |f| on(f, admin::evaluate)),
    route(GET, "/v1/evaluations/compare", ADMIN, |f| on(f, admin::compare)),
    // Operations.
    route(GET, "/metrics", READ, |f| on(f, crate::metrics_text)),
    route(GET, "/", OPEN, |f| on(f, crate::alive)),
    route(GET, "/healthz", OPEN, |f| on(f, oip::live)),
    route(GET, "/livez", OPEN, |f| on(f, oip::live)),
    route(GET, "/ping", OPEN, |f| on(f, oip::live)),
    route(GET, "/readyz", OPEN, |f| on(f, oip::ready)),
    // The web dashboard: public pages whose API calls carry the user's key.
    route(GET, "/ui", OPEN, |f| on(f, ui::redirect)),
    route(GET, "/ui/", OPEN, |f| on(f, ui::index)),
    route(GET, "/ui/config.json", OPEN, |f| on(f, ui::config)),
    route(GET, "/ui/{*rest}", OPEN, |f| on(f, ui::file)),
];

/// Mounts every [`Serve::Route`] endpoint of [`ENDPOINTS`].
pub fn mount(router: Router<AppState>) -> Router<AppState> {
    ENDPOINTS.iter().fold(router, |router, e| match e.serve {
        Serve::Route(handler) => {
            let filter = MethodFilter::try_from(e.method.clone()).expect("table methods are standard");
            router.route(e.path, handler(filter))
        }
        Serve::Within(_) => router,
    })
}

/// What a request needs: the table's access for the route pattern the router matched
/// (`routed`, absent when no route matched) and the method; for catch-all routes, the
/// access of the form `path` matches.
///
/// Requests no endpoint answers need `read` for `GET`/`HEAD` and `admin` otherwise, except on
/// open paths, so that 404 and 405 are only shown to callers who could have called something.
pub fn access_for(method: &Method, routed: Option<&str>, path: &str) -> Access {
    let method = if *method == Method::HEAD { &Method::GET } else { method };
    let mounted = |e: &&Endpoint| matches!(e.serve, Serve::Route(_)) && Some(e.path) == routed;
    if let Some(e) = ENDPOINTS.iter().filter(mounted).find(|e| e.method == method) {
        if e.access != Access::ByForm {
            return e.access;
        }
        // Handlers see the catch-all percent-decoded, so forms are matched on the decoded path.
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        return forms_of(method, e.path).find(|f| path_matches(f.path, &decoded)).map_or(ADMIN, |f| f.access);
    }
    if ENDPOINTS.iter().filter(mounted).any(|e| e.access == OPEN) {
        return OPEN;
    }
    if *method == Method::GET {
        READ
    } else {
        ADMIN
    }
}

/// The forms of `method` served by the catch-all route `mount`, in table order.
pub fn forms_of<'a>(method: &'a Method, mount: &'a str) -> impl Iterator<Item = &'static Endpoint> + 'a {
    ENDPOINTS.iter().filter(move |e| e.method == method && matches!(e.serve, Serve::Within(m) if m == mount))
}

/// The endpoints clients call: every entry except the catch-alls (whose forms are listed).
pub fn client_endpoints() -> impl Iterator<Item = &'static Endpoint> {
    ENDPOINTS.iter().filter(|e| e.access != Access::ByForm)
}

/// The scopes of `method` on `mount`, one per distinct scope of its forms for catch-alls;
/// empty for open endpoints. Used for the OpenAPI `security` entries.
pub fn scopes_of(method: &Method, mount: &str) -> Vec<Scope> {
    let routed =
        ENDPOINTS.iter().filter(|e| e.method == method && matches!(e.serve, Serve::Route(_)) && e.path == mount);
    let mut scopes = Vec::new();
    for e in routed.chain(forms_of(method, mount)) {
        if let Access::Needs(s) = e.access {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
    }
    scopes
}

/// Whether `path` is an instance of `pattern` (`{name}`: one or more characters other than
/// `/`; `{*name}`: one or more characters of any kind).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.find('{') {
        None => pattern == path,
        Some(open) => {
            let (literal, rest) = pattern.split_at(open);
            let Some(path) = path.strip_prefix(literal) else { return false };
            let close = rest.find('}').expect("table patterns close their braces");
            let after = &rest[close + 1..];
            let limit = match rest[1..].starts_with('*') {
                true => path.len(),
                false => path.find('/').unwrap_or(path.len()),
            };
            (1..=limit).rev().any(|n| path.is_char_boundary(n) && path_matches(after, &path[n..]))
        }
    }
}

/// `pattern` with each `{name}` replaced by `value(name)`.
pub fn instantiate(pattern: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest.find('}').expect("table patterns close their braces");
        out.push_str(&rest[..open]);
        out.push_str(&value(rest[open + 1..close].trim_start_matches('*')));
        rest = &rest[close + 1..];
    }
    out + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(method: Method, routed: &str, path: &str) -> Access {
        access_for(&method, Some(routed), path)
    }

    #[test]
    fn patterns_match_like_the_router() {
        assert!(path_matches("/v1/models/{m}:{verb}", "/v1/models/mnist:predict"));
        assert!(path_matches("/v1/models/{m}/versions/{v}:{verb}", "/v1/models/a/versions/2:classify"));
        assert!(!path_matches("/v1/models/{m}:{verb}", "/v1/models/a/versions/2:classify"));
        assert!(!path_matches("/v1/models/{m}", "/v1/models/a/metadata"));
        assert!(!path_matches("/v1/models/{m}", "/v1/models/"));
        assert!(path_matches("/v1/models/{*rest}", "/v1/models/a/b"));
        assert!(path_matches("/v1/models/{*target}:{verb}", "/v1/models/a/b/c:predict"));
        assert!(!path_matches("/v1/models/{*target}:{verb}", "/v1/models/x:/rollback"));
        assert!(path_matches("/v1/models/{m}", "/v1/models/é"));
        assert_eq!(
            instantiate("/v1/models/{m}/versions/{v}:{verb}", |n| n.to_uppercase()),
            "/v1/models/M/versions/V:VERB"
        );
    }

    #[test]
    fn each_route_declares_its_scope() {
        assert_eq!(needs(GET, "/v2/health/ready", "/v2/health/ready"), OPEN);
        assert_eq!(needs(POST, "/v2/models/{m}/infer", "/v2/models/m/infer"), INFER);
        assert_eq!(needs(GET, "/v2/models/{m}", "/v2/models/m"), READ);
        assert_eq!(needs(Method::HEAD, "/v2/models/{m}", "/v2/models/m"), READ);
        assert_eq!(needs(POST, "/v2/repository/index", "/v2/repository/index"), ADMIN);
        assert_eq!(needs(POST, "/v1/embeddings", "/v1/embeddings"), INFER);
        assert_eq!(needs(GET, "/metrics", "/metrics"), READ);
        assert_eq!(needs(GET, "/v1/jobs/{id}", "/v1/jobs/7"), ADMIN);
    }

    #[test]
    fn catch_all_forms_declare_their_own_scopes() {
        assert_eq!(needs(POST, V1_MODELS, "/v1/models/m/labels/x:predict"), INFER);
        assert_eq!(needs(POST, V1_MODELS, "/v1/models/m:bogus"), INFER);
        assert_eq!(needs(POST, V1_MODELS, "/v1/models/m/rollback"), ADMIN);
        assert_eq!(needs(POST, V1_MODELS, "/v1/models/x:%2Frollback"), ADMIN, "decoded as the handler decodes it");
        assert_eq!(needs(POST, V1_MODELS, "/v1/models/m/versions/1/labels/x:predict"), INFER);
        assert_eq!(needs(POST, V1_MODELS, "/v1/models/m/elsewhere"), ADMIN);
        assert_eq!(needs(GET, V1_MODELS, "/v1/models/m/versions/2/metadata"), READ);
        assert_eq!(needs(GET, V1_MODELS, "/v1/models/m/traffic"), READ);
        assert_eq!(needs(PUT, V1_MODELS, "/v1/models/m/traffic"), ADMIN);
        assert_eq!(needs(DELETE, V1_MODELS, "/v1/models/m/versions/3"), ADMIN);
    }

    #[test]
    fn unrouted_requests_need_a_key_except_on_open_paths() {
        assert_eq!(access_for(&GET, None, "/nowhere"), READ);
        assert_eq!(access_for(&POST, None, "/nowhere"), ADMIN);
        assert_eq!(access_for(&POST, Some("/healthz"), "/healthz"), OPEN);
        assert_eq!(needs(GET, "/v2/models/{m}/infer", "/v2/models/m/infer"), READ);
        assert_eq!(needs(DELETE, "/v2/models/{m}/infer", "/v2/models/m/infer"), ADMIN);
    }

    #[test]
    fn the_table_is_consistent() {
        let mut seen = std::collections::HashSet::new();
        for e in ENDPOINTS {
            assert!(seen.insert((e.method.clone(), e.path)), "{} {} listed twice", e.method, e.path);
            match e.serve {
                Serve::Within(mount) => assert!(
                    ENDPOINTS.iter().any(|m| m.access == Access::ByForm && m.path == mount && m.method == e.method),
                    "{} {} is within {mount}, which has no catch-all for its method",
                    e.method,
                    e.path
                ),
                Serve::Route(_) if e.access == Access::ByForm => {
                    assert!(forms_of(&e.method, e.path).next().is_some())
                }
                Serve::Route(_) => {}
            }
        }
        assert_eq!(scopes_of(&POST, V1_MODELS), vec![Scope::Infer, Scope::Admin]);
        assert!(scopes_of(&GET, "/healthz").is_empty());
    }
}
