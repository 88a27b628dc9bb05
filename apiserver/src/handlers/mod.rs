//! The HTTP edge: the router, the one generic resource handler that every kind goes through,
//! and the non-resource endpoints (discovery, OpenAPI, health, metrics, version).

mod body;
pub mod create;
pub mod delete;
pub mod eviction;
mod get;
pub mod hooks;
pub mod list;
pub mod namespace;
pub mod node_relay;
pub mod object;
mod patch;
pub mod port_forward;
pub mod request;
pub mod subresource;
pub mod token;
pub mod update;

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
use crate::registry::Registry;
use crate::storage::Store;
use crate::watchcache::WatchCaches;
use delete::DeleteOptions;
use object::ObjectRef;
use request::{Action, ApiRequest, Subresource};

/// Largest request body accepted (Kubernetes' limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;
/// How much of an oversized body is read and dropped before the connection is given up.
const DRAIN_LIMIT: usize = 4 * MAX_BODY;

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The persistence backend.
    pub store: Arc<dyn Store>,
    /// The served kinds, as of when this state was taken (see [`ApiState::current`]).
    pub kinds: Arc<Registry>,
    /// The kinds served now: the built-in ones and those of established CRDs, replaced whole
    /// by the CRD controller.
    pub served: Arc<std::sync::RwLock<Arc<Registry>>>,
    /// Watch caches per storage prefix.
    pub caches: Arc<WatchCaches>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Address advertised in `/api` (host:port).
    pub server_address: Arc<str>,
    /// Client for kubelets (logs, exec, attach); set by the server at start.
    pub kubelet: Option<Arc<node_relay::NodeRelay>>,
    /// Node and pod usage for `metrics.k8s.io`, kept in memory by the scraper.
    pub resource_metrics: Arc<crate::metrics_api::ResourceMetrics>,
    /// Storage decorations of the kinds that have one (Service address allocation).
    pub hooks: Arc<hooks::WriteHooks>,
    /// The Service address allocator behind the Service hook.
    pub services: crate::alloc::ServiceAllocator,
    /// The RBAC authorizer, over the watch caches.
    pub authz: Arc<crate::authz::Authorizer>,
    /// The service-account signing key (set by the server at start): TokenRequests are
    /// refused without one.
    pub service_account_key: Option<Arc<crate::auth::service_account::SigningKey>>,
    /// The static tokens (set by the server at start), for TokenReviews.
    pub authn: Option<Arc<crate::auth::Authenticator>>,
}

/// The write hooks of every kind that has one.
fn write_hooks(
    net: &crate::alloc::ServiceNetwork,
    store: Arc<dyn Store>,
    authz: &Arc<crate::authz::Authorizer>,
) -> (crate::alloc::ServiceAllocator, hooks::WriteHooks) {
    let (services, mut hooks) = crate::alloc::service_hooks(net, store);
    for (plural, hook) in crate::authz::escalation::hooks(authz) {
        hooks.insert(crate::strategy::RBAC_GROUP, plural, hook);
    }
    (services, hooks)
}

impl ApiState {
    /// Builds the state and starts the watch caches.
    pub fn new(store: Arc<dyn Store>, server_address: &str) -> Self {
        let kinds = crate::registry::builtin().clone();
        let caches = Arc::new(WatchCaches::start(store.clone()));
        let authz = Arc::new(crate::authz::Authorizer::new(caches.clone()));
        let (services, hooks) = write_hooks(
            &crate::alloc::ServiceNetwork::default(),
            store.clone(),
            &authz,
        );
        Self {
            store,
            served: Arc::new(std::sync::RwLock::new(kinds.clone())),
            kinds,
            caches,
            metrics: Metrics::new(),
            server_address: server_address.into(),
            kubelet: None,
            resource_metrics: Default::default(),
            hooks: Arc::new(hooks),
            services,
            authz,
            service_account_key: None,
            authn: None,
        }
    }

    /// The same state allocating Service addresses from `net`.
    pub fn with_service_network(mut self, net: &crate::alloc::ServiceNetwork) -> Self {
        let (services, hooks) = write_hooks(net, self.store.clone(), &self.authz);
        self.services = services;
        self.hooks = Arc::new(hooks);
        self
    }

    /// This state with the kinds served now (requests take it once, so one request sees one
    /// registry throughout).
    pub fn current(&self) -> ApiState {
        let mut s = self.clone();
        s.kinds = self.served.read().expect("served kinds lock").clone();
        s
    }

    /// Replaces the served kinds.
    pub fn serve(&self, kinds: Registry) {
        *self.served.write().expect("served kinds lock") = Arc::new(kinds);
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
            get(|State(state): State<ApiState>| async move {
                axum::Json(crate::discovery::api_group_list(&state.current().kinds))
            }),
        )
        .route(
            "/openapi/v3",
            get(|State(state): State<ApiState>| async move {
                axum::Json(state.current().kinds.openapi().index())
            }),
        )
        .route("/openapi/v3/{*path}", get(openapi_doc))
        .route(
            crate::auth::service_account::DISCOVERY_PATH,
            get(openid_configuration),
        )
        .route(crate::auth::service_account::JWKS_PATH, get(jwks))
        .fallback(resource)
        .with_state(state)
}

/// The service-account issuer's OIDC discovery document (404 without a signing key).
async fn openid_configuration(State(state): State<ApiState>) -> Response {
    match state.service_account_key {
        Some(_) => json_response(200, &crate::auth::service_account::openid_configuration()),
        None => ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into_response(),
    }
}

/// The service-account issuer's public keys (JWKS).
async fn jwks(State(state): State<ApiState>) -> Response {
    match &state.service_account_key {
        Some(k) => Response::builder()
            .status(200)
            .header(header::CONTENT_TYPE, "application/jwk-set+json")
            .body(Body::from(k.jwks().to_string()))
            .expect("valid response"),
        None => ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .into_response(),
    }
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

async fn openapi_doc(
    State(state): State<ApiState>,
    axum::extract::Path(path): axum::extract::Path<String>,
) -> Response {
    let state = state.current();
    match state.kinds.openapi().document(&path) {
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
    let state = state.current();
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    if let Some(resp) =
        crate::metrics_api::serve::serve(&state, req.method(), &segs, req.uri().query()).await
    {
        return resp;
    }
    if req.method() == Method::GET {
        let doc = match segs.as_slice() {
            ["api", v] => crate::discovery::resource_list(&state.kinds, "", v),
            ["apis", g] => crate::discovery::api_group(&state.kinds, g),
            ["apis", g, v] => crate::discovery::resource_list(&state.kinds, g, v),
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
    let parsed = match request::parse(&state.kinds, &method, &path, query.as_deref(), &headers) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let verb = parsed.verb;
    let plural = parsed.kind.info.plural;
    let user = req.extensions().get::<crate::auth::UserInfo>().cloned();
    let sub = parsed.subresource;
    let resp = if let Action::NodeRelay(stream) = parsed.action {
        node_relay::serve(&state, parsed, stream, req).await
    } else {
        match body::read(req, &headers).await {
            Ok(body) => dispatch(&state, parsed, &headers, body, user.as_ref())
                .await
                .unwrap_or_else(IntoResponse::into_response),
            Err(e) => e.into_response(),
        }
    };
    state.metrics.observe(
        verb.as_str(),
        plural,
        sub.map(Subresource::as_str).unwrap_or(""),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

async fn dispatch(
    state: &ApiState,
    req: ApiRequest,
    headers: &HeaderMap,
    body: bytes::Bytes,
    user: Option<&crate::auth::UserInfo>,
) -> Result<Response, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    let at = ObjectRef::new(&state.kinds, &req.kind, req.namespace.as_deref(), &name);
    let dry = req.query.dry_run;
    let object = || body::parse_object(&state.kinds, headers, &body);
    match req.action {
        Action::List => list::list(state, &req).await,
        Action::Watch => list::watch(state, req).await,
        Action::Get => get::serve(state, &req, &at).await,
        Action::GetScale => get::serve_scale(state, &at).await,
        Action::Create => create::serve(state, &req, object()?, user).await,
        Action::Bind => {
            let out = subresource::bind(state, &at, object()?, dry).await?;
            Ok(json_response(201, &out))
        }
        Action::Evict => {
            let out = eviction::evict(state, &at, object()?, dry).await?;
            Ok(json_response(201, &out))
        }
        Action::RequestToken => {
            let out = token::request_token(state, &at, object()?, dry).await?;
            Ok(json_response(201, &out))
        }
        Action::Update(scope) => update::serve(state, &req, &at, object()?, scope).await,
        Action::UpdateScale => {
            let by = req.field_write("UpdateOptions", crate::managed::Operation::Update)?;
            let scale = subresource::update_scale(state, &at, object()?, dry, Some(&by)).await?;
            Ok(json_response(200, &scale))
        }
        Action::Patch(scope) => {
            patch::serve(
                state,
                &req,
                &at,
                headers,
                &body,
                patch::Target::Object(scope),
                user,
            )
            .await
        }
        Action::PatchScale => {
            patch::serve(state, &req, &at, headers, &body, patch::Target::Scale, user).await
        }
        Action::Delete => delete::serve(state, &req, &at, &body).await,
        Action::DeleteCollection => {
            let opts = DeleteOptions::from_request(&state.kinds, &req, &body)?;
            list::delete_collection(state, &req, &opts).await
        }
        Action::Review => {
            let out = crate::authz::review::serve(state, &req, object()?, user).await?;
            Ok(json_response(201, &out))
        }
        Action::NodeRelay(_) => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}
