//! The options of a node agent (`skiff agent` and the agent inside `skiff server`) and the
//! runtime and credential settings derived from them.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use skiff_kubelet::server::credentials::CredentialSources;
use skiff_runtime::pod::RuntimeConfig;

/// Which container runtime the agent drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// The built-in runtime (namespaces, cgroups, overlayfs).
    #[default]
    Real,
    /// A hollow node: pods "run" with no processes.
    Fake,
}

/// Whether the agent runs the cluster DNS server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DnsMode {
    /// The built-in server (`skiff_proxy::dns`).
    #[default]
    Builtin,
    /// No DNS server on this node (pods still get `--cluster-dns` in resolv.conf).
    None,
}

/// The kube-dns Service address pods are given by default (10th of 10.96.0.0/12).
pub const DEFAULT_CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// Options of `skiff agent`.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// API server URL (with `token`).
    pub server: Option<String>,
    /// Bearer token (with `server`).
    pub token: Option<String>,
    /// CA bundle for the server; without one (or `insecure_skip_tls_verify`) the agent
    /// refuses to connect.
    pub ca_file: Option<PathBuf>,
    /// Connect to `server` without verifying its certificate (`--insecure-skip-tls-verify`).
    pub insecure_skip_tls_verify: bool,
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
    /// Whether this node runs the cluster DNS server.
    pub dns_mode: DnsMode,
    /// Where the cluster DNS server listens (the pod bridge's gateway, port 53, by default).
    pub cluster_dns_listen: Option<SocketAddr>,
    /// Upstream resolvers for outside names (the host's resolv.conf by default).
    pub dns_upstream: Option<Vec<SocketAddr>>,
    /// The service proxy's settings.
    pub proxy: ProxyOptions,
    /// Where the local provisioner keeps volumes of the `local-path` class
    /// (`<root_dir>/storage` by default).
    pub local_path_root: Option<PathBuf>,
}

/// Settings of the node's service proxy.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// nftables (the default with the real runtime) or none (the default on a hollow node,
    /// which has no pod network to program).
    pub mode: Option<skiff_proxy::ProxyMode>,
    /// The proxy's nftables table (`skiff-proxy`).
    pub table: String,
    /// The service CIDRs (`10.96.0.0/12`).
    pub service_cidrs: Vec<skiff_runtime::ipnet::Ipv4Net>,
    /// The load-balancer address pools.
    pub lb_pools: Vec<skiff_runtime::ipnet::Ipv4Net>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            mode: None,
            table: skiff_proxy::run::DEFAULT_TABLE.into(),
            service_cidrs: vec![
                skiff_proxy::run::DEFAULT_SERVICE_CIDR
                    .parse()
                    .expect("valid CIDR"),
            ],
            lb_pools: Vec::new(),
        }
    }
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            server: None,
            token: None,
            ca_file: None,
            insecure_skip_tls_verify: false,
            kubeconfig: None,
            node_name: None,
            root_dir: PathBuf::from(skiff_runtime::image::DEFAULT_ROOT),
            state_dir: PathBuf::from("/run/skiff"),
            runtime: RuntimeKind::Real,
            max_pods: None,
            allow_privileged: false,
            cluster_dns: Some(DEFAULT_CLUSTER_DNS),
            cluster_domain: "cluster.local".into(),
            node_ip: None,
            kubelet_port: skiff_kubelet::server::DEFAULT_PORT,
            tls_dir: None,
            ca_key_file: None,
            kubelet_cert_file: None,
            kubelet_key_file: None,
            bridge: None,
            nft_table: None,
            cgroup_subtree: None,
            dns_mode: DnsMode::Builtin,
            cluster_dns_listen: None,
            dns_upstream: None,
            proxy: ProxyOptions::default(),
            local_path_root: None,
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

    /// The local provisioner's directory.
    pub fn local_path_root(&self) -> PathBuf {
        self.local_path_root
            .clone()
            .unwrap_or_else(|| self.root_dir.join("storage"))
    }

    /// Whether the agent runs the service proxy (nftables unless told otherwise, except on
    /// a hollow node).
    pub fn proxy_enabled(&self) -> bool {
        match self.proxy.mode {
            Some(mode) => mode == skiff_proxy::ProxyMode::Nftables,
            None => self.runtime == RuntimeKind::Real,
        }
    }

    /// The runtime's settings for pod CIDR `cidr`.
    pub fn runtime_config(&self, cidr: skiff_runtime::ipnet::Ipv4Net) -> RuntimeConfig {
        let mut rc = RuntimeConfig::new(&self.state_dir, cidr);
        rc.rootfs_root = Some(self.root_dir.join("containers"));
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
