//! The node's HTTPS server (Kubernetes' kubelet port, 10250 by default): container logs,
//! exec and attach over WebSocket, stats summary and health, for the API server only.
//!
//! Authentication: TLS with the node's serving certificate; every client must present a
//! certificate signed by the cluster CA whose common name is `kube-apiserver-kubelet-client`
//! or whose organization is `system:masters` (see [`tls`]). Other clients get 403.

pub mod channel;
pub mod credentials;
pub mod exec;
pub mod logs;
pub mod portforward;
pub mod portforward_ws;
pub mod serving_csr;
pub mod spdy;
pub mod stats;
#[cfg(test)]
mod tests;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use skiff_runtime::container::{ProcessSpec, Status};
use skiff_runtime::pod::PodRuntime;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt;

pub use tls::NodeTls;

/// Kubernetes' kubelet port.
pub const DEFAULT_PORT: u16 = 10250;

/// `PATH` for exec'd commands when the kubelet does not supply the container's env.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the server needs from the kubelet: which container a (namespace, pod, container)
/// names now, and the runtime that runs it (and answers exec, attach, logs and stats).
pub trait ContainerLookup: Send + Sync {
    /// Id of the current instance of `container` in pod `namespace/pod`.
    fn container_id(&self, namespace: &str, pod: &str, container: &str) -> Option<String>;
    /// Id of the last terminated instance (for `previous=true` logs), if it still exists.
    fn previous_container_id(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        let _ = (namespace, pod, container);
        None
    }
    /// The node's runtime.
    fn runtime(&self) -> Arc<dyn PodRuntime>;
    /// The kubelet's Prometheus metrics, served on `/metrics`.
    fn metrics(&self) -> Option<Arc<crate::metrics::KubeletMetrics>> {
        None
    }
}

/// The process an exec of `command` runs when the runtime knows no settings for the
/// container: root in `/` with a standard PATH.
pub(crate) fn default_exec_process(command: Vec<String>) -> ProcessSpec {
    ProcessSpec {
        args: command,
        env: vec![DEFAULT_PATH.into()],
        cwd: "/".into(),
        user: Default::default(),
        rlimits: Vec::new(),
    }
}

/// Errors of the node server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or accepting failed.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// TLS setup failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// An error answered to the client as a Kubernetes `Status`.
#[derive(Debug)]
pub struct HttpError {
    code: StatusCode,
    reason: &'static str,
    pub(crate) message: String,
}

impl HttpError {
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: message.into(),
        }
    }
    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message: message.into(),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code.as_u16(),
        });
        (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct NodeState {
    /// The kubelet's view of containers.
    pub lookup: Arc<dyn ContainerLookup>,
    /// This node's name.
    pub node_name: Arc<str>,
    /// CPU samples for usage rates in the stats summary.
    pub cpu_samples: Arc<crate::stats::CpuSamples>,
}

impl NodeState {
    /// Resolves a container or answers 404 the way the kubelet words it.
    fn container(&self, ns: &str, pod: &str, container: &str) -> Result<String, HttpError> {
        self.lookup.container_id(ns, pod, container).ok_or_else(|| {
            HttpError::not_found(format!(
                "container {container:?} in pod \"{ns}/{pod}\" is not available"
            ))
        })
    }
}

/// The node server's routes.
pub fn router(state: NodeState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route(
            "/exec/{ns}/{pod}/{container}",
            get(exec::exec).post(exec::exec),
        )
        .route(
            "/attach/{ns}/{pod}/{container}",
            get(exec::attach).post(exec::attach),
        )
        .route(
            "/portForward/{ns}/{pod}",
            get(portforward::port_forward).post(portforward::port_forward),
        )
        .route("/stats/summary", get(stats::summary))
        .route("/metrics/resource", get(stats::resource_metrics))
        .route("/metrics", get(kubelet_metrics))
        .with_state(state)
}

/// The kubelet's own metrics; a node server without a kubelet behind it has none to show.
async fn kubelet_metrics(State(state): State<NodeState>) -> Response {
    let body = state
        .lookup
        .metrics()
        .map_or_else(|| "# EOF\n".to_string(), |m| m.render());
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

async fn container_logs(
    State(state): State<NodeState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, HttpError> {
    let opts = logs::LogOptions::from_query(&params, jiff::Timestamp::now())
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
    let id = if opts.previous {
        state
            .lookup
            .previous_container_id(&ns, &pod, &container)
            .ok_or_else(|| {
                HttpError::bad_request(format!(
                    "previous terminated container {container:?} in pod {pod:?} not found"
                ))
            })?
    } else {
        state.container(&ns, &pod, &container)?
    };
    let runtime = state.lookup.runtime();
    let path = runtime
        .log_path(&id)
        .await
        .map_err(|e| HttpError::internal(format!("log of container {container:?}: {e}")))?;
    let (tx, mut rx) = mpsc::channel::<(logs::Stream, Bytes)>(32);
    if tokio::fs::metadata(&path).await.is_ok() {
        tokio::spawn(async move {
            let running = || async {
                matches!(runtime.container_status(&id).await, Ok(s) if s.status == Status::Running)
            };
            if let Err(e) = logs::stream_log(&path, &opts, running, tx).await {
                tracing::warn!(pod = %pod, container = %container, error = %e, "log stream failed");
            }
        });
    }
    let body = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|c| c.map(|(_, b)| Ok::<_, std::convert::Infallible>(b)))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(body),
    )
        .into_response())
}

/// A bound node server, not serving yet.
pub struct NodeServer {
    listener: TcpListener,
    tls: tokio_rustls::TlsAcceptor,
    app: Router,
}

impl NodeServer {
    /// Binds `addr` (port 0 picks one) with the node's TLS credentials.
    pub async fn bind(
        addr: SocketAddr,
        tls: &NodeTls,
        node_name: &str,
        lookup: Arc<dyn ContainerLookup>,
    ) -> Result<Self, ServerError> {
        let cert = tls::RotatingCert::new(tls)?;
        Self::bind_rotating(addr, &tls.client_ca_pem, cert, node_name, lookup).await
    }

    /// [`NodeServer::bind`] with a serving certificate that may be replaced while serving.
    pub async fn bind_rotating(
        addr: SocketAddr,
        client_ca_pem: &str,
        cert: Arc<tls::RotatingCert>,
        node_name: &str,
        lookup: Arc<dyn ContainerLookup>,
    ) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        let acceptor =
            tokio_rustls::TlsAcceptor::from(tls::rotating_server_config(client_ca_pem, cert)?);
        let state = NodeState {
            lookup,
            node_name: node_name.into(),
            cpu_samples: Default::default(),
        };
        Ok(Self {
            listener,
            tls: acceptor,
            app: router(state),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves. Connections in flight (follows, execs) continue
    /// until they end on their own.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!(error = %e, "node server accept failed"); continue; }
                },
            };
            let _ = tcp.set_nodelay(true);
            let (tls, app) = (self.tls.clone(), self.app.clone());
            tokio::spawn(async move {
                let stream = match tls.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "node server TLS handshake failed");
                        return;
                    }
                };
                let allowed = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .is_some_and(tls::client_allowed);
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        async move {
                            if !allowed {
                                return Ok(forbidden(req.uri().path()));
                            }
                            app.oneshot(req.map(Body::new)).await
                        }
                    },
                );
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "node server connection ended with error");
                }
            });
        }
    }
}

fn forbidden(path: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": format!("forbidden: only the API server may use {path}"),
    });
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
