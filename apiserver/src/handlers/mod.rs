//! The HTTP edge: the router, the one generic resource handler that every kind goes through,
//! and the non-resource endpoints (discovery, OpenAPI, health, metrics, version).

pub mod list;
pub mod namespace;
pub mod objects;
pub mod proxy;
pub mod request;
pub mod subresource;
pub mod typed;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::patch::{self, PatchType};
use crate::storage::Store;
use crate::watchcache::WatchCaches;
use objects::{DeleteOptions, ObjectRef, UpdateScope};
use request::{ApiRequest, Verb};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How much of an oversized body is read and dropped before the connection is given up.
const DRAIN_LIMIT: usize = 4 * MAX_BODY;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The persistence backend.
    pub store: Arc<dyn Store>,
    /// Watch caches per storage prefix.
    pub caches: Arc<WatchCaches>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Address advertised in `/api` (host:port).
    pub server_address: Arc<str>,
    /// Client for kubelets (logs, exec, attach); set by the server at start.
    pub kubelet: Option<Arc<proxy::KubeletClient>>,
}

impl ApiState {
    /// Builds the state and starts the watch caches.
    pub fn new(store: Arc<dyn Store>, server_address: &str) -> Self {
        let caches = Arc::new(WatchCaches::start(store.clone()));
        Self {
            store,
            caches,
            metrics: Metrics::new(),
            server_address: server_address.into(),
            kubelet: None,
        }
    }

    /// A handle for background tasks.
    pub fn clone_handle(&self) -> ApiState {
        self.clone()
    }
}

/// A JSON response with a status code.
pub fn json_response(code: u16, body: &Value) -> Response {
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::to_vec(body).expect("JSON values always encode"),
        ))
        .expect("valid response")
}

/// The API router. Authentication is layered on by the server.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { axum::Json(crate::discovery::version_info()) }),
        )
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(health))
        .route("/metrics", get(metrics))
        .route("/api", get(api_versions))
        .route(
            "/apis",
            get(|| async { axum::Json(crate::discovery::api_group_list()) }),
        )
        .route(
            "/openapi/v3",
            get(|| async { axum::Json(crate::openapi::v3_index()) }),
        )
        .route("/openapi/v3/{*path}", get(openapi_doc))
        .fallback(resource)
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let counts = state.caches.watcher_counts();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(&counts),
    )
        .into_response()
}

async fn api_versions(State(state): State<ApiState>) -> Response {
    axum::Json(crate::discovery::api_versions(&state.server_address)).into_response()
}

/// Shares a cached document with the response body without copying it.
struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

async fn openapi_doc(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    match crate::openapi::v3_document(&path) {
        Some(doc) => (
            [(header::CONTENT_TYPE, "application/json")],
            bytes::Bytes::from_owner(ArcBytes(doc)),
        )
            .into_response(),
        None => ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into_response(),
    }
}

/// Serves discovery under `/api/v1`, `/apis/<g>`, `/apis/<g>/<v>`, else a resource request.
async fn resource(State(state): State<ApiState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if req.method() == Method::GET {
        let doc = match segs.as_slice() {
            ["api", v] => crate::discovery::resource_list("", v),
            ["apis", g] => crate::discovery::api_group(g),
            ["apis", g, v] => crate::discovery::resource_list(g, v),
            _ => None,
        };
        if let Some(d) = doc {
            return json_response(200, &d);
        }
        if matches!(segs.as_slice(), ["api", _] | ["apis", _] | ["apis", _, _]) {
            return ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
            .into_response();
        }
    }
    let started = Instant::now();
    let method = req.method().clone();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let parsed = match request::parse(&method, &path, query.as_deref(), &headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let verb = parsed.verb;
    let plural = parsed.resource.plural;
    let user = req.extensions().get::<crate::auth::UserInfo>().cloned();
    let sub = parsed.subresource.clone();
    let resp = if proxy::handles(&parsed) {
        proxy::serve(&state, parsed, req).await
    } else {
        match read_body(req, &headers).await {
            Ok(body) => dispatch(&state, parsed, &headers, body, user.as_ref())
                .await
                .unwrap_or_else(IntoResponse::into_response),
            Err(e) => e.into_response(),
        }
    };
    state.metrics.observe(
        verb.as_str(),
        plural,
        sub.as_deref().unwrap_or(""),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn read_body(req: Request, headers: &HeaderMap) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = req.into_body();
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    // Over the limit, the rest is read and dropped (up to DRAIN_LIMIT) so the client, still
    // writing, receives the 413 instead of a broken connection.
    let too_large = declared.is_some_and(|l| l > MAX_BODY);
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len();
            if too_large || seen > MAX_BODY {
                if seen > DRAIN_LIMIT {
                    break;
                }
                buf.clear();
                continue;
            }
            buf.extend_from_slice(&data);
        }
    }
    if too_large || seen > MAX_BODY {
        return Err(ApiError::too_large(MAX_BODY));
    }
    Ok(buf.freeze())
}

/// Parses a create/update body: JSON or YAML by Content-Type.
fn parse_object(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let base = ct.split(';').next().unwrap_or("").trim();
    let v: Value = match base {
        "application/json" | "" | "*/*" => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?,
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode_request(body)?,
        other => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {other:?})"
                ),
            ));
        }
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    Ok(v)
}

async fn dispatch(
    state: &ApiState,
    req: ApiRequest,
    headers: &HeaderMap,
    body: bytes::Bytes,
    user: Option<&crate::auth::UserInfo>,
) -> Result<Response, ApiError> {
    let r = req.resource;
    let name = req.name.clone().unwrap_or_default();
    let at = ObjectRef {
        resource: r,
        namespace: req.namespace.as_deref(),
        name: &name,
    };
    let dry = req.query.dry_run;
    let sub = req.subresource.as_deref();
    match (req.verb, sub) {
        (Verb::List, _) => list::list(state, &req).await,
        (Verb::Watch, _) => list::watch(state, req).await,
        (Verb::Get, None | Some("status") | Some("approval")) => {
            let (obj, _) = objects::read(state, &at).await?;
            Ok(json_response(200, &list::render_one(&req, obj)?))
        }
        (Verb::Get, Some("scale")) => {
            let (obj, _) = objects::read(state, &at).await?;
            Ok(json_response(200, &subresource::scale_of(&obj)))
        }
        (Verb::Create, None) => {
            let mut obj =
                objects::decode_body(r, parse_object(headers, &body)?, req.query.field_validation)?;
            crate::strategy::strategy_for(objects::storage_of(r)).set_requestor(&mut obj, user);
            let out = objects::create(state, r, obj, req.namespace.as_deref(), dry).await?;
            Ok(json_response(201, &objects::to_served(r, out)?))
        }
        (Verb::Create, Some("binding")) => {
            let b = parse_object(headers, &body)?;
            let out = subresource::bind(state, &at, b, dry).await?;
            Ok(json_response(201, &out))
        }
        (Verb::Create, Some("eviction")) => {
            let e = parse_object(headers, &body)?;
            let out = subresource::evict(state, &at, e, dry).await?;
            Ok(json_response(201, &out))
        }
        (Verb::Update, None | Some("status") | Some("approval")) => {
            let obj =
                objects::decode_body(r, parse_object(headers, &body)?, req.query.field_validation)?;
            let scope = update_scope(sub);
            let out = objects::update(state, &at, obj, scope, dry, None).await?;
            Ok(json_response(200, &objects::to_served(r, out)?))
        }
        (Verb::Update, Some("scale")) => {
            let scale = parse_object(headers, &body)?;
            Ok(json_response(
                200,
                &subresource::update_scale(state, &at, scale, dry).await?,
            ))
        }
        (Verb::Patch, None | Some("status") | Some("approval") | Some("scale")) => {
            patch_object(state, &req, &at, headers, &body, user).await
        }
        (Verb::Delete, None) => {
            let opts = DeleteOptions::parse(
                &body,
                req.query.propagation_policy.clone(),
                req.query.grace_period_seconds,
                dry,
            )?;
            let (obj, gone) = objects::delete(state, &at, &opts).await?;
            Ok(json_response(
                if gone { 200 } else { 202 },
                &objects::to_served(r, obj)?,
            ))
        }
        (Verb::DeleteCollection, None) => {
            let opts = DeleteOptions::parse(
                &body,
                req.query.propagation_policy.clone(),
                req.query.grace_period_seconds,
                dry,
            )?;
            list::delete_collection(state, &req, &opts).await
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

/// Which part of the object a write to `sub` may change.
fn update_scope(sub: Option<&str>) -> UpdateScope {
    match sub {
        Some("status") => UpdateScope::Status,
        Some("approval") => UpdateScope::Approval,
        _ => UpdateScope::Main,
    }
}

/// PATCH: read, patch the served form, then update as a PUT would. Retries on conflicts
/// when the patch carries no resourceVersion precondition.
async fn patch_object(
    state: &ApiState,
    req: &ApiRequest,
    at: &ObjectRef<'_>,
    headers: &HeaderMap,
    body: &[u8],
    user: Option<&crate::auth::UserInfo>,
) -> Result<Response, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let kind =
        PatchType::from_content_type(ct).ok_or_else(|| ApiError::unsupported_media_type(ct))?;
    let r = req.resource;
    let sub = req.subresource.as_deref();
    let dry = req.query.dry_run;
    for _ in 0..5 {
        let current = match objects::read(state, at).await {
            Ok(c) => c,
            Err(e) if e.code == 404 && kind == PatchType::Apply && sub.is_none() => {
                let obj = patch::parse_apply_body(body)?;
                let mut obj = objects::decode_body(r, obj, req.query.field_validation)?;
                crate::strategy::strategy_for(objects::storage_of(r)).set_requestor(&mut obj, user);
                let out = objects::create(state, r, obj, at.namespace, dry).await?;
                return Ok(json_response(201, &objects::to_served(r, out)?));
            }
            Err(e) => return Err(e),
        };
        if sub == Some("scale") {
            let view = subresource::scale_of(&current.0);
            let patched = patch::apply_patch(kind, &view, body)?;
            return Ok(json_response(
                200,
                &subresource::update_scale(state, at, patched, dry).await?,
            ));
        }
        let served = objects::to_served(r, current.0.clone())?;
        let patched = patch::apply_patch(kind, &served, body)?;
        let precondition_in_patch = patched.pointer("/metadata/resourceVersion")
            != served.pointer("/metadata/resourceVersion");
        let obj = objects::decode_body(r, patched, req.query.field_validation)?;
        let scope = update_scope(sub);
        match objects::update(state, at, obj, scope, dry, Some(current)).await {
            Err(e) if e.code == 409 && e.reason == "Conflict" && !precondition_in_patch => continue,
            Err(e) => return Err(e),
            Ok(out) => return Ok(json_response(200, &objects::to_served(r, out)?)),
        }
    }
    Err(ApiError::conflict(
        r.group,
        r.plural,
        at.name,
        "the object kept changing while the patch was applied; try again",
    ))
}
