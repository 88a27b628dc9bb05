//! `skiff agent` wiring: build the API client from a server URL and token or a kubeconfig,
//! wait for the node's pod CIDR, build the runtime over it (real or fake), start the node's
//! HTTPS server (logs, exec, attach) and run the kubelet; plus [`run_hollow_nodes`], many
//! fake-runtime kubelets in one process.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use skiff_runtime::image::ImageStore;
use skiff_runtime::pod::{RuntimeConfig, SkiffRuntime};

use crate::Kubelet;
use crate::config::KubeletConfig;
use crate::fake::FakeRuntime;
use crate::host::HostFacts;
use crate::images::{FakeImages, StoreImages};
use crate::node::NodeAgent;
use crate::server::NodeServer;
use crate::server::credentials::CredentialSources;
use crate::server::serving_csr::{ServingRequest, obtain_until_issued, unix_now};
use crate::server::tls::RotatingCert;

/// Which container runtime the agent drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// The built-in runtime (namespaces, cgroups, overlayfs).
    #[default]
    Real,
    /// A hollow node: pods "run" with no processes.
    Fake,
}

/// Options of `skiff agent`.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// API server URL (with `token`).
    pub server: Option<String>,
    /// Bearer token (with `server`).
    pub token: Option<String>,
    /// CA bundle for the server; without one the server certificate is not verified.
    pub ca_file: Option<PathBuf>,
    /// A kubeconfig instead of server and token.
    pub kubeconfig: Option<PathBuf>,
    /// Node name (the hostname by default).
    pub node_name: Option<String>,
    /// Kubelet root (images, volumes, root filesystems): `/var/lib/skiff/agent`.
    pub root_dir: PathBuf,
    /// Runtime state (sandboxes, containers, IPAM): `/run/skiff`.
    pub state_dir: PathBuf,
    /// Real or fake runtime.
    pub runtime: RuntimeKind,
    /// Maximum pods.
    pub max_pods: Option<u32>,
    /// Allow privileged containers.
    pub allow_privileged: bool,
    /// Cluster DNS address for pods.
    pub cluster_dns: Option<Ipv4Addr>,
    /// Cluster domain.
    pub cluster_domain: String,
    /// The node's address.
    pub node_ip: Option<Ipv4Addr>,
    /// Port of the node's HTTPS server (10250).
    pub kubelet_port: u16,
    /// A directory holding the cluster's `ca.crt` and `ca.key` (`<data-dir>/tls` of
    /// `skiff server`): the node server's certificate is issued from it.
    pub tls_dir: Option<PathBuf>,
    /// The cluster CA key (with the CA certificate from `ca_file` or the kubeconfig), to
    /// issue the node server's certificate.
    pub ca_key_file: Option<PathBuf>,
    /// A node serving certificate already signed by the cluster CA (with `kubelet_key_file`).
    pub kubelet_cert_file: Option<PathBuf>,
    /// Its key.
    pub kubelet_key_file: Option<PathBuf>,
    /// The node bridge (`skiff0`); tests give each node its own.
    pub bridge: Option<String>,
    /// The nftables table for pod masquerade (`skiff_pods`).
    pub nft_table: Option<String>,
    /// The cgroup subtree under the agent's own cgroup (`skiff`).
    pub cgroup_subtree: Option<String>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            server: None,
            token: None,
            ca_file: None,
            kubeconfig: None,
            node_name: None,
            root_dir: PathBuf::from(skiff_runtime::image::DEFAULT_ROOT),
            state_dir: PathBuf::from("/run/skiff"),
            runtime: RuntimeKind::Real,
            max_pods: None,
            allow_privileged: false,
            cluster_dns: None,
            cluster_domain: "cluster.local".into(),
            node_ip: None,
            kubelet_port: crate::server::DEFAULT_PORT,
            tls_dir: None,
            ca_key_file: None,
            kubelet_cert_file: None,
            kubelet_key_file: None,
            bridge: None,
            nft_table: None,
            cgroup_subtree: None,
        }
    }
}

impl AgentOptions {
    /// Where the node server's TLS credentials come from.
    pub fn credential_sources(&self) -> CredentialSources {
        CredentialSources {
            tls_dir: self.tls_dir.clone(),
            ca_cert: self.ca_file.clone(),
            ca_key: self.ca_key_file.clone(),
            kubeconfig: self.kubeconfig.clone(),
            cert: self.kubelet_cert_file.clone(),
            key: self.kubelet_key_file.clone(),
        }
    }

    /// The runtime's settings for pod CIDR `cidr`.
    pub fn runtime_config(&self, cidr: skiff_runtime::ipnet::Ipv4Net) -> RuntimeConfig {
        let mut rc = RuntimeConfig::new(&self.state_dir, cidr);
        if let Some(b) = &self.bridge {
            rc.network.bridge = b.clone();
        }
        if let Some(t) = &self.nft_table {
            rc.network.nft_table = t.clone();
        }
        if let Some(c) = &self.cgroup_subtree {
            rc.cgroup_subtree = Some(c.clone());
        }
        if let Some(dns) = self.cluster_dns {
            rc.network.dns = skiff_runtime::network::DnsConfig {
                servers: vec![dns.into()],
                searches: vec![
                    format!("svc.{}", self.cluster_domain),
                    self.cluster_domain.clone(),
                ],
                options: vec!["ndots:5".into()],
            };
        }
        rc
    }
}

/// The host's name, lowercased (a valid node name on ordinary hosts).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

/// An API client from the options: a kubeconfig file, or server URL plus token.
pub async fn client(opts: &AgentOptions) -> anyhow::Result<kube::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kc = match (&opts.kubeconfig, &opts.server) {
        (Some(path), _) => Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?,
        (None, Some(server)) => {
            let mut cluster = serde_json::json!({"server": server});
            match &opts.ca_file {
                Some(ca) => cluster["certificate-authority"] = ca.display().to_string().into(),
                None => cluster["insecure-skip-tls-verify"] = true.into(),
            }
            let doc = serde_json::json!({
                "apiVersion": "v1", "kind": "Config", "current-context": "agent",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": opts.token.clone().unwrap_or_default()}}],
                "contexts": [{"name": "agent", "context": {"cluster": "c", "user": "u"}}],
            });
            Kubeconfig::from_yaml(&serde_json::to_string(&doc)?)?
        }
        (None, None) => anyhow::bail!("the agent needs --server and --token, or --kubeconfig"),
    };
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
}

/// Builds and runs a node agent from `opts` until SIGINT/SIGTERM.
pub async fn run_agent(opts: AgentOptions) -> anyhow::Result<()> {
    run_agent_until(opts, shutdown_signal()).await
}

/// [`run_agent`] until `shutdown` completes.
pub async fn run_agent_until(
    mut opts: AgentOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let client = client(&opts).await?;
    let node_name = opts.node_name.clone().unwrap_or_else(hostname);
    let node_ip = *opts.node_ip.get_or_insert_with(crate::node::detect_node_ip);
    std::fs::create_dir_all(&opts.root_dir)
        .with_context(|| format!("creating {}", opts.root_dir.display()))?;
    // Credentials first: a misconfigured certificate should fail the agent at once.
    let sources = opts.credential_sources();
    let tls = sources
        .load(&node_name, &[IpAddr::V4(node_ip)])
        .context("node server credentials")?;
    // Without a certificate of its own, an agent that knows the cluster CA asks the cluster
    // for one; the CA is what it authenticates the API server's client certificate with.
    let client_ca = match &tls {
        Some(_) => None,
        None => sources
            .ca_cert_pem()
            .context("the cluster CA certificate")?,
    };
    let csr_client = client.clone();
    tokio::pin!(shutdown);
    let (runtime, images, require_cidr): (
        Arc<dyn skiff_runtime::pod::PodRuntime>,
        Arc<dyn crate::ImageService>,
        bool,
    ) = match opts.runtime {
        RuntimeKind::Fake => (
            Arc::new(FakeRuntime::default()),
            Arc::new(FakeImages::default()),
            false,
        ),
        RuntimeKind::Real => {
            let store = Arc::new(ImageStore::open(&opts.root_dir)?);
            let cidr = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                c = wait_for_cidr(&client, &node_name, &opts) => c?,
            };
            let rt = SkiffRuntime::new(opts.runtime_config(cidr))
                .context("starting the container runtime")?;
            (Arc::new(rt), Arc::new(StoreImages::new(store)), true)
        }
    };
    let mut cfg = KubeletConfig::new(node_name.clone(), client, runtime, images, &opts.root_dir);
    cfg.max_pods = opts.max_pods;
    cfg.allow_privileged = opts.allow_privileged;
    cfg.cluster_dns = opts.cluster_dns;
    cfg.cluster_domain = opts.cluster_domain.clone();
    cfg.node_ip = Some(node_ip);
    cfg.require_pod_cidr = require_cidr;
    cfg.kubelet_port = opts.kubelet_port;
    let kubelet = Kubelet::new(cfg);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match tls {
        Some(tls) => {
            let addr = SocketAddr::new(IpAddr::V4(node_ip), opts.kubelet_port);
            let lookup = kubelet.container_lookup();
            let server = NodeServer::bind(addr, &tls, &node_name, lookup)
                .await
                .context("starting the node server")?;
            tracing::info!(node = %node_name, addr = %server.local_addr(), "node server listening");
            Some(tokio::spawn(server.serve(async {
                let _ = server_stopped.await;
            })))
        }
        None => match client_ca {
            Some(ca) => {
                let addr = SocketAddr::new(IpAddr::V4(node_ip), opts.kubelet_port);
                let lookup = kubelet.container_lookup();
                let mut dns_names = vec![node_name.clone()];
                let host = hostname();
                if host != node_name {
                    dns_names.push(host);
                }
                let req = ServingRequest {
                    node_name: node_name.clone(),
                    dns_names,
                    ips: vec![IpAddr::V4(node_ip)],
                    dir: opts.root_dir.join("pki"),
                };
                Some(tokio::spawn(serve_with_csr(
                    csr_client,
                    req,
                    ca,
                    addr,
                    lookup,
                    async {
                        let _ = server_stopped.await;
                    },
                )))
            }
            None => {
                tracing::warn!(
                    node = %node_name,
                    "no cluster-CA-signed serving certificate and no cluster CA certificate to \
                     request one with (give --ca-file, --tls-dir, --ca-key-file, or \
                     --kubelet-cert-file/--kubelet-key-file): logs, exec and attach for this \
                     node are unavailable"
                );
                None
            }
        },
    };
    let result = kubelet.run(shutdown).await;
    let _ = stop_server.send(());
    if let Some(s) = server {
        let _ = s.await;
    }
    result
}

/// The node server with a certificate from a CertificateSigningRequest: waits for the
/// first one (the rest of the agent runs meanwhile), serves, and swaps in a renewed one at
/// 80% of each certificate's lifetime without closing the listener.
async fn serve_with_csr(
    client: kube::Client,
    req: ServingRequest,
    client_ca: String,
    addr: SocketAddr,
    lookup: Arc<dyn crate::server::ContainerLookup>,
    stop: impl Future<Output = ()>,
) -> Result<(), crate::server::ServerError> {
    tokio::pin!(stop);
    let mut current = tokio::select! {
        s = obtain_until_issued(&req, &client) => s,
        _ = &mut stop => return Ok(()),
    };
    let cert = RotatingCert::new(&current.tls(&client_ca))?;
    let server =
        NodeServer::bind_rotating(addr, &client_ca, cert.clone(), &req.node_name, lookup).await?;
    tracing::info!(node = %req.node_name, addr = %server.local_addr(), "node server listening");
    let renew = async {
        loop {
            let wait = (current.validity.renew_at() - unix_now()).max(1);
            tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(1))).await;
            tracing::info!(node = %req.node_name, "renewing the serving certificate");
            let next = obtain_until_issued(&req, &client).await;
            match cert.set(&next.tls(&client_ca)) {
                Ok(()) => current = next,
                Err(e) => {
                    tracing::error!(node = %req.node_name, error = %e, "the renewed serving certificate is unusable");
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
            }
        }
    };
    tokio::select! {
        r = server.serve(stop) => r,
        _ = renew => Ok(()),
    }
}

/// Registers the node (reporting NotReady and renewing its lease meanwhile) and waits for
/// its `spec.podCIDR`.
async fn wait_for_cidr(
    client: &kube::Client,
    node_name: &str,
    opts: &AgentOptions,
) -> anyhow::Result<skiff_runtime::ipnet::Ipv4Net> {
    let ip = opts.node_ip.unwrap_or_else(crate::node::detect_node_ip);
    let mut facts = HostFacts::detect(ip, &format!("skiff://{}", env!("CARGO_PKG_VERSION")));
    facts.kubelet_port = opts.kubelet_port;
    let agent = NodeAgent::new(
        node_name,
        client.clone(),
        facts,
        Default::default(),
        opts.root_dir.clone(),
        opts.max_pods,
    );
    loop {
        match agent.register().await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(node = node_name, error = %e, "node registration failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    let (_tx, rx) = tokio::sync::watch::channel(Some(
        "network not ready: waiting for the node's pod CIDR".to_string(),
    ));
    let status = tokio::spawn(agent.clone().status_loop(
        Duration::from_secs(10),
        Duration::from_secs(60),
        rx,
    ));
    let lease = tokio::spawn(agent.clone().lease_loop(Duration::from_secs(10)));
    tracing::info!(node = node_name, "waiting for the node's pod CIDR");
    let cidr = agent.wait_pod_cidr(Duration::from_secs(1)).await;
    status.abort();
    lease.abort();
    cidr.parse()
        .with_context(|| format!("node {node_name} has an invalid podCIDR {cidr:?}"))
}

/// Runs `count` hollow kubelets (fake runtime, fake images) named `<prefix>-<i>` until
/// `shutdown`; `client_for` gives each node its API client.
pub async fn run_hollow_nodes(
    count: usize,
    client_for: impl Fn(&str) -> kube::Client,
    prefix: &str,
    root_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..count {
        let name = format!("{prefix}-{i}");
        let mut cfg = KubeletConfig::new(
            name.clone(),
            client_for(&name),
            Arc::new(FakeRuntime::default()),
            Arc::new(FakeImages::default()),
            root_dir.join(&name),
        );
        cfg.require_pod_cidr = false;
        cfg.node_ip = Some(Ipv4Addr::new(10, 255, (i / 250) as u8, (i % 250) as u8 + 1));
        cfg.max_pods = Some(110);
        // Fake containers never exit on their own, so there is nothing for a 1 s re-check
        // to notice; every change still wakes the pod worker at once. (Kubernetes' own
        // kubelet re-syncs a pod every minute.)
        cfg.timers.sync_interval = Duration::from_secs(10);
        tasks.spawn(async move { Kubelet::new(cfg).run(std::future::pending()).await });
    }
    shutdown.await;
    tasks.abort_all();
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
