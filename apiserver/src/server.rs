//! Starting the API server: credentials, store, bootstrap objects, and the TLS listener with
//! authentication in front of the router.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::CertificateDer;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::auth::authn::{Authenticator, UserInfo};
use crate::auth::kubeconfig::{KubeconfigUser, write_kubeconfig};
use crate::auth::pki::Pki;
use crate::auth::tokens::Tokens;
use crate::error::ApiError;
use crate::handlers::{self, ApiState, create};
use crate::storage::{self, StoreConfig};

/// Namespaces that exist from the first start.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Directory for credentials, the embedded store and kubeconfigs.
    pub data_dir: PathBuf,
    /// etcd endpoints; empty selects the embedded store.
    pub etcd_endpoints: Vec<String>,
    /// Address to listen on.
    pub bind_address: IpAddr,
    /// TLS port.
    pub secure_port: u16,
    /// How long Events live after they were last seen (kube-apiserver's `--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// How often `metrics.k8s.io` figures are collected from the kubelets
    /// (metrics-server's `--metric-resolution`).
    pub metric_resolution: std::time::Duration,
    /// Service CIDRs and node port range (`--service-cidr`, `--service-node-port-range`).
    pub services: crate::alloc::ServiceNetwork,
    /// The address other servers and pods reach this one at (`--advertise-address`); by
    /// default the bind address, or when that is unspecified the host's first
    /// non-loopback address.
    pub advertise_address: Option<IpAddr>,
}

/// The address this server advertises in the `kubernetes` Service's endpoints.
pub fn advertise_address(cfg: &ServerConfig) -> IpAddr {
    if let Some(a) = cfg.advertise_address {
        return a;
    }
    if !cfg.bind_address.is_unspecified() {
        return cfg.bind_address;
    }
    // The source address of the default route: a UDP connect picks it without sending.
    let probe = |target: &str| {
        let sock = std::net::UdpSocket::bind((cfg.bind_address, 0)).ok()?;
        sock.connect(target).ok()?;
        sock.local_addr()
            .ok()
            .map(|a| a.ip())
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    };
    let target = if cfg.bind_address.is_ipv6() {
        "[2001:db8::1]:9"
    } else {
        "192.0.2.1:9"
    };
    probe(target).unwrap_or(if cfg.bind_address.is_ipv6() {
        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
    })
}

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a started server exposes to its caller.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// Path of the admin kubeconfig.
    pub admin_kubeconfig: PathBuf,
    /// Path of the in-process scheduler's kubeconfig (user `system:kube-scheduler`).
    pub scheduler_kubeconfig: PathBuf,
    /// The node join token.
    pub join_token: String,
    /// The API state (for in-process components).
    pub state: ApiState,
}

/// The client certificate a TLS connection presented, if any.
#[derive(Clone)]
struct PeerCert(Option<CertificateDer<'static>>);

fn server_url(cfg: &ServerConfig, port: u16) -> String {
    let host = if cfg.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        cfg.bind_address.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!("https://{host}:{port}")
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Creates the system namespaces that do not exist yet.
pub async fn bootstrap(state: &ApiState) -> Result<(), ApiError> {
    let nsr = state
        .kinds
        .find("", "v1", "namespaces")
        .expect("namespaces are served");
    for ns in SYSTEM_NAMESPACES {
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match create::create(state, nsr, obj, None, false).await {
            Ok(_) => tracing::info!(namespace = %ns, "created system namespace"),
            Err(e) if e.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    bootstrap_local_storage_class(state).await?;
    crate::authz::defaults::ensure_defaults(state).await
}

/// Creates the built-in default StorageClass (node-local directories provisioned by each
/// agent) unless a class of that name exists; a user's edits to it are kept.
async fn bootstrap_local_storage_class(state: &ApiState) -> Result<(), ApiError> {
    use skiff_api::storage::{IS_DEFAULT_CLASS, LOCAL_PATH_CLASS, LOCAL_PATH_PROVISIONER};
    let scr = state
        .kinds
        .find("storage.k8s.io", "v1", "storageclasses")
        .expect("storage classes are served");
    let obj = json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": LOCAL_PATH_CLASS, "annotations": {IS_DEFAULT_CLASS: "true"}},
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true,
    });
    match create::create(state, scr, obj, None, false).await {
        Ok(_) => tracing::info!(
            class = LOCAL_PATH_CLASS,
            "created the default storage class"
        ),
        Err(e) if e.code == 409 => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Starts the API server and serves until `shutdown` resolves.
pub async fn run(
    cfg: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(&Running),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)?;
    let listener = TcpListener::bind(SocketAddr::new(cfg.bind_address, cfg.secure_port)).await?;
    let local_addr = listener.local_addr()?;
    let mut sans = vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        hostname(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if !cfg.bind_address.is_unspecified() {
        sans.push(cfg.bind_address.to_string());
    }
    let pki = Pki::load_or_create(&cfg.data_dir, &sans)?;
    let tokens = Tokens::load_or_create(&cfg.data_dir)?;
    let admin_kubeconfig = cfg.data_dir.join("admin.kubeconfig");
    let scheduler_kubeconfig = cfg.data_dir.join("scheduler.kubeconfig");
    for (path, token) in [
        (&admin_kubeconfig, &tokens.admin),
        (&scheduler_kubeconfig, &tokens.scheduler),
    ] {
        write_kubeconfig(
            path,
            &server_url(&cfg, local_addr.port()),
            &pki.ca_cert_pem,
            KubeconfigUser::Token(token.clone()),
        )?;
    }
    let store_cfg = if cfg.etcd_endpoints.is_empty() {
        let dir = cfg.data_dir.join("db");
        std::fs::create_dir_all(&dir)?;
        StoreConfig::Embedded { path: dir }
    } else {
        StoreConfig::Etcd {
            endpoints: cfg.etcd_endpoints.clone(),
        }
    };
    let store = storage::open(&store_cfg).await?;
    let mut state =
        ApiState::new(store, &local_addr.to_string()).with_service_network(&cfg.services);
    state.kubelet = Some(Arc::new(handlers::node_relay::NodeRelay::new(&pki)?));
    state.service_account_key = Some(Arc::new(
        crate::auth::service_account::SigningKey::load_or_create(&*state.store)
            .await
            .map_err(|e| anyhow::anyhow!("the service-account signing key: {e}"))?,
    ));
    bootstrap(&state)
        .await
        .map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?;
    handlers::namespace::resume_finalizers(&state).await?;
    // The built-in Services' addresses are taken before anyone else can ask for them.
    let me = crate::system_services::ApiEndpoint {
        address: advertise_address(&cfg),
        port: local_addr.port(),
    };
    if me.address.is_loopback() {
        tracing::info!(address = %me.address,
            "the server advertises a loopback address, which no pod can reach: the kubernetes Service gets no endpoints for it (give --advertise-address)");
    }
    crate::system_services::reserve(&state)
        .await
        .map_err(|e| anyhow::anyhow!("reserving the built-in service addresses: {e}"))?;
    if let Err(e) = crate::system_services::reconcile_once(&state, me).await {
        // Retried every few seconds by the reconcile loop.
        tracing::warn!(error = %e, "creating the built-in services failed");
    }
    let reaper = tokio::spawn(crate::event_ttl::run(state.clone(), cfg.event_ttl));
    // Background tasks end with the server, whichever way `run` returns.
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _reaper = AbortOnDrop(reaper);
    let _metrics_scraper = AbortOnDrop(tokio::spawn(crate::metrics_api::scrape::run(
        state.clone(),
        cfg.metric_resolution,
    )));
    let _repair = AbortOnDrop(tokio::spawn(crate::alloc::repair::run(
        state.clone(),
        crate::alloc::repair::DEFAULT_INTERVAL,
        crate::alloc::repair::DEFAULT_LEAK_GRACE,
    )));
    let _system_services =
        AbortOnDrop(tokio::spawn(crate::system_services::run(state.clone(), me)));
    let _custom_resources = AbortOnDrop(tokio::spawn(crate::custom::run(state.clone())));

    let static_tokens = Arc::new(Authenticator::new(&tokens));
    state.authn = Some(static_tokens.clone());
    let authn = Authentication {
        tokens: static_tokens,
        state: state.clone(),
    };
    // Layers run outermost last: authentication, then authorization, then the handlers.
    let app = handlers::router(state.clone())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::authz::middleware,
        ))
        .layer(middleware::from_fn_with_state(authn, authenticate));
    let tls = tokio_rustls::TlsAcceptor::from(crate::auth::tls::server_config(&pki)?);
    let state_for_shutdown = state.clone();
    ready(&Running {
        local_addr,
        admin_kubeconfig,
        scheduler_kubeconfig,
        join_token: tokens.node_join.clone(),
        state,
    });

    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => {
                crate::system_services::drop_lease(&state_for_shutdown, me).await;
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let stream = match tls.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let cert = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.clone().into_owned());
            let peer_cert = PeerCert(cert);
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer_cert.clone());
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        });
    }
}

/// Paths anyone may read, as Kubernetes' `system:public-info-viewer` allows.
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
}

/// What authenticates requests: the static tokens and client certificates, and the
/// service-account tokens, which need the API state to check.
#[derive(Clone)]
struct Authentication {
    tokens: Arc<Authenticator>,
    state: ApiState,
}

async fn authenticate(
    axum::extract::State(authn): axum::extract::State<Authentication>,
    mut req: Request,
    next: Next,
) -> Response {
    let cert = req.extensions().get::<PeerCert>().and_then(|p| p.0.clone());
    let mut user = authn.tokens.authenticate(req.headers(), cert.as_ref());
    if user.is_none()
        && let Some(token) = crate::auth::authn::bearer_token(req.headers())
            .filter(|t| crate::auth::service_account::looks_like_jwt(t))
    {
        user = handlers::token::authenticate(&authn.state.current(), token).await;
    }
    match user {
        Some(user) => {
            req.extensions_mut().insert::<UserInfo>(user);
            next.run(req).await
        }
        None if public(req.uri().path()) => next.run(req).await,
        None => ApiError::unauthorized().into_response(),
    }
}
