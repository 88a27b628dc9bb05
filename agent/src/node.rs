//! The node's shared pieces, built once per agent: API client, node name and address, the
//! node server's credentials, and the container runtime with its image store (the real
//! one only once the node has a pod CIDR to give pods addresses from).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skiff_kubelet::host::HostFacts;
use skiff_kubelet::node::NodeAgent;
use skiff_kubelet::server::NodeTls;
use skiff_kubelet::{FakeImages, FakeRuntime, ImageService, Kubelet, KubeletConfig, StoreImages};
use skiff_runtime::image::ImageStore;
use skiff_runtime::pod::{PodRuntime, SkiffRuntime};

use crate::{AgentOptions, RuntimeKind};

/// What every component of one node agent shares.
pub struct NodePieces {
    /// The options the agent was started with (node IP filled in).
    pub opts: AgentOptions,
    /// API client.
    pub client: kube::Client,
    /// The node's name.
    pub node_name: String,
    /// The node's address.
    pub node_ip: Ipv4Addr,
    /// The node server's own certificate, when it has one.
    pub tls: Option<NodeTls>,
    /// Without one, the cluster CA to authenticate the API server with while a
    /// certificate is requested from the cluster.
    pub client_ca: Option<String>,
    /// The container runtime.
    pub runtime: Arc<dyn PodRuntime>,
    /// The node's images.
    pub images: Arc<dyn ImageService>,
    /// Whether pods wait for the node's pod CIDR (real runtimes).
    pub require_pod_cidr: bool,
    /// The node's pod CIDR, once known (real runtimes).
    /// The node's pod CIDR (real runtimes).
    pub pod_cidr: Option<skiff_runtime::ipnet::Ipv4Net>,
}

impl NodePieces {
    /// Builds the pieces from `opts`; `None` when `shutdown` came first (while waiting for
    /// the node's pod CIDR).
    pub async fn build(
        mut opts: AgentOptions,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> anyhow::Result<Option<NodePieces>> {
        let client = crate::client(&opts).await?;
        let node_name = opts.node_name.clone().unwrap_or_else(crate::hostname);
        let node_ip = *opts
            .node_ip
            .get_or_insert_with(skiff_kubelet::node::detect_node_ip);
        std::fs::create_dir_all(&opts.root_dir)
            .with_context(|| format!("creating {}", opts.root_dir.display()))?;
        // Credentials first: a misconfigured certificate should fail the agent at once.
        let sources = opts.credential_sources();
        let tls = sources
            .load(&node_name, &[IpAddr::V4(node_ip)])
            .context("node server credentials")?;
        // Without a certificate of its own, an agent that knows the cluster CA asks the
        // cluster for one; the CA is what it authenticates the API server's client
        // certificate with.
        let client_ca = match &tls {
            Some(_) => None,
            None => sources
                .ca_cert_pem()
                .context("the cluster CA certificate")?,
        };
        let mut pod_cidr = None;
        let (runtime, images, require_pod_cidr): (
            Arc<dyn PodRuntime>,
            Arc<dyn ImageService>,
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
                    _ = shutdown.as_mut() => return Ok(None),
                    c = wait_for_cidr(&client, &node_name, &opts) => c?,
                };
                pod_cidr = Some(cidr);
                let rt = SkiffRuntime::new(opts.runtime_config(cidr))
                    .context("starting the container runtime")?;
                (Arc::new(rt), Arc::new(StoreImages::new(store)), true)
            }
        };
        Ok(Some(NodePieces {
            opts,
            client,
            node_name,
            node_ip,
            tls,
            client_ca,
            runtime,
            images,
            require_pod_cidr,
            pod_cidr,
        }))
    }

    /// The node's local provisioner (the `local-path` class), on a node with a real runtime.
    pub fn local_path_provisioner(
        &self,
    ) -> Option<skiff_kubelet::local_path::LocalPathProvisioner> {
        // A hollow node has no disk of its own to give.
        (self.opts.runtime == crate::RuntimeKind::Real).then(|| {
            skiff_kubelet::local_path::LocalPathProvisioner::new(
                self.client.clone(),
                self.node_name.clone(),
                self.opts.local_path_root(),
            )
        })
    }

    /// The service proxy over these pieces, unless the options turn it off.
    pub fn service_proxy(&self) -> Option<skiff_proxy::ServiceProxy> {
        if !self.opts.proxy_enabled() {
            return None;
        }
        let p = &self.opts.proxy;
        let mut cfg = skiff_proxy::ProxyConfig::new(&self.node_name);
        cfg.table = p.table.clone();
        cfg.service_cidrs = p.service_cidrs.clone();
        cfg.lb_pools = p.lb_pools.clone();
        cfg.pod_cidr = self.pod_cidr;
        // Pods reach the DNS server of their own node at the kube-dns Service address.
        cfg.local_dns = self.cluster_dns_listen();
        Some(skiff_proxy::ServiceProxy::new(self.client.clone(), cfg))
    }

    /// Where this node's cluster DNS server listens: `--cluster-dns-listen`, else the pod
    /// bridge's gateway address port 53; none with `--dns-mode none` or before a pod CIDR.
    pub fn cluster_dns_listen(&self) -> Option<std::net::SocketAddr> {
        if self.opts.dns_mode == crate::DnsMode::None {
            return None;
        }
        self.opts.cluster_dns_listen.or_else(|| {
            self.pod_cidr
                .map(|c| skiff_proxy::dns::default_listen(c.network()))
        })
    }

    /// The kubelet over these pieces.
    pub fn kubelet(&self) -> Kubelet {
        let opts = &self.opts;
        let mut cfg = KubeletConfig::new(
            self.node_name.clone(),
            self.client.clone(),
            self.runtime.clone(),
            self.images.clone(),
            &opts.root_dir,
        );
        cfg.max_pods = opts.max_pods;
        cfg.allow_privileged = opts.allow_privileged;
        cfg.cluster_dns = opts.cluster_dns;
        cfg.cluster_domain = opts.cluster_domain.clone();
        cfg.node_ip = Some(self.node_ip);
        cfg.require_pod_cidr = self.require_pod_cidr;
        cfg.kubelet_port = opts.kubelet_port;
        Kubelet::new(cfg)
    }
}

/// Registers the node (reporting NotReady and renewing its lease meanwhile) and waits for
/// its `spec.podCIDR`.
async fn wait_for_cidr(
    client: &kube::Client,
    node_name: &str,
    opts: &AgentOptions,
) -> anyhow::Result<skiff_runtime::ipnet::Ipv4Net> {
    let ip = opts
        .node_ip
        .unwrap_or_else(skiff_kubelet::node::detect_node_ip);
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
