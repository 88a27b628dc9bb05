//! `skiff agent` (join this machine to a cluster as a node) and `skiff hollow-nodes` (many
//! fake-runtime nodes in one process, for scale tests).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use skiff_agent::{AgentOptions, RuntimeKind};

/// Which runtime the agent drives.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RuntimeArg {
    /// The built-in container runtime.
    Real,
    /// A hollow node: pods "run" without processes.
    Fake,
}

/// How an agent reaches the API server.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// API server URL (`https://HOST:6443`), with --token.
    #[arg(long, requires = "token")]
    server: Option<String>,
    /// Join token (bearer token), with --server.
    #[arg(long, env = "SKIFF_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate of the API server (and of the cluster).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Connect to --server without verifying its certificate (never the default: without
    /// --ca-file the agent refuses to connect).
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// A kubeconfig instead of --server/--token.
    #[arg(long, conflicts_with_all = ["server", "token"])]
    kubeconfig: Option<PathBuf>,
}

/// Arguments of `skiff agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Node name (the hostname by default).
    #[arg(long)]
    node_name: Option<String>,
    /// Kubelet root: images, pod volumes, container root filesystems.
    #[arg(long, default_value = skiff_runtime::image::DEFAULT_ROOT)]
    root_dir: PathBuf,
    /// Runtime state: sandboxes, containers, IP allocations.
    #[arg(long, default_value = "/run/skiff")]
    state_dir: PathBuf,
    /// Container runtime.
    #[arg(long, value_enum, default_value = "real")]
    runtime: RuntimeArg,
    /// The node's address (detected from the default route when absent).
    #[arg(long)]
    node_ip: Option<Ipv4Addr>,
    /// Port of the node's HTTPS server (logs, exec, attach).
    #[arg(long, default_value_t = skiff_kubelet::server::DEFAULT_PORT)]
    kubelet_port: u16,
    /// Where volumes of the `local-path` storage class live (`<root-dir>/storage`).
    #[arg(long)]
    local_path_root: Option<PathBuf>,
    #[command(flatten)]
    dns: DnsArgs,
    /// Allow privileged containers.
    #[arg(long)]
    allow_privileged: bool,
    /// Maximum pods on this node (default min(110, 10 × cores)).
    #[arg(long)]
    max_pods: Option<u32>,
    /// Directory with the cluster's ca.crt and ca.key (a server's `<data-dir>/tls`): the
    /// node server's certificate is issued from it.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// The cluster CA key, to issue the node server's certificate (CA certificate from
    /// --ca-file or the kubeconfig).
    #[arg(long)]
    ca_key_file: Option<PathBuf>,
    /// A node serving certificate signed by the cluster CA. Without it or a CA key, the
    /// agent asks for one through a CertificateSigningRequest (kubelet-serving signer),
    /// which `skiff server` approves for registered nodes.
    #[arg(long, requires = "kubelet_key_file")]
    kubelet_cert_file: Option<PathBuf>,
    /// The key of --kubelet-cert-file.
    #[arg(long, requires = "kubelet_cert_file")]
    kubelet_key_file: Option<PathBuf>,
    /// Node bridge name.
    #[arg(long, default_value = "skiff0")]
    bridge: String,
    /// nftables table for pod egress masquerade.
    #[arg(long, default_value = "skiff_pods")]
    nft_table: String,
    /// cgroup subtree (under the agent's own cgroup) holding the pods.
    #[arg(long, default_value = "skiff")]
    cgroup_subtree: String,
    #[command(flatten)]
    proxy: ProxyArgs,
    /// Remove the service proxy's nftables table (--proxy-table) and exit.
    #[arg(long)]
    cleanup: bool,
    /// Log filter (`info`, `skiff_kubelet=debug`).
    #[arg(long, default_value = "info")]
    log_level: String,
}

/// Whether the node runs the cluster DNS server.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DnsModeArg {
    /// The built-in cluster DNS server.
    Builtin,
    /// No DNS server on this node.
    None,
}

/// Cluster DNS settings of a node agent (`skiff agent` and the agent in `skiff server`).
#[derive(Args, Debug, Clone)]
pub struct DnsArgs {
    /// Cluster DNS server address written into pods' resolv.conf (the kube-dns Service).
    #[arg(long, default_value_t = skiff_agent::DEFAULT_CLUSTER_DNS)]
    cluster_dns: Ipv4Addr,
    /// Cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Where this node's DNS server listens, UDP and TCP (default: the pod bridge's
    /// gateway address, port 53).
    #[arg(long)]
    cluster_dns_listen: Option<std::net::SocketAddr>,
    /// Upstream resolvers for names outside the cluster, comma-separated `ip[:port]`
    /// (default: the host's /etc/resolv.conf, a loopback stub followed to its servers).
    #[arg(long, value_parser = parse_upstreams)]
    dns_upstream: Option<Upstreams>,
    /// `builtin` runs the cluster DNS server on this node; `none` runs none.
    #[arg(long, value_enum, default_value = "builtin")]
    dns_mode: DnsModeArg,
}

/// A parsed `--dns-upstream` list.
#[derive(Debug, Clone)]
pub struct Upstreams(Vec<std::net::SocketAddr>);

fn parse_upstreams(s: &str) -> Result<Upstreams, String> {
    skiff_proxy::dns::upstream::parse_upstreams(s)
        .map(Upstreams)
        .map_err(|e| e.to_string())
}

impl DnsArgs {
    /// Sets the DNS options of `opts`.
    pub fn apply(&self, opts: &mut AgentOptions) {
        opts.cluster_dns = Some(self.cluster_dns);
        opts.cluster_domain = self.cluster_domain.clone();
        opts.cluster_dns_listen = self.cluster_dns_listen;
        opts.dns_upstream = self.dns_upstream.clone().map(|u| u.0);
        opts.dns_mode = match self.dns_mode {
            DnsModeArg::Builtin => skiff_agent::DnsMode::Builtin,
            DnsModeArg::None => skiff_agent::DnsMode::None,
        };
    }
}

/// The service proxy's own flags (on `skiff agent` and `skiff server`).
#[derive(Args, Debug, Clone)]
pub struct ProxyTableArgs {
    /// Service datapath: nftables, or none (default: nftables, none with --runtime fake).
    #[arg(long)]
    proxy_mode: Option<skiff_proxy::ProxyMode>,
    /// nftables table of the service proxy.
    #[arg(long, default_value = skiff_proxy::run::DEFAULT_TABLE)]
    proxy_table: String,
}

impl ProxyTableArgs {
    /// The agent's proxy options from these flags and the cluster's address ranges.
    pub fn options(
        &self,
        service_cidrs: Vec<skiff_runtime::ipnet::Ipv4Net>,
        lb_pools: Vec<skiff_runtime::ipnet::Ipv4Net>,
    ) -> skiff_agent::ProxyOptions {
        skiff_agent::ProxyOptions {
            mode: self.proxy_mode,
            table: self.proxy_table.clone(),
            service_cidrs,
            lb_pools,
        }
    }
}

/// The service proxy's flags on `skiff agent`.
#[derive(Args, Debug, Clone)]
pub struct ProxyArgs {
    #[command(flatten)]
    table: ProxyTableArgs,
    /// Service CIDR(s), comma-separated: traffic to their addresses that no Service holds
    /// is dropped.
    #[arg(long, value_delimiter = ',', default_value = skiff_proxy::run::DEFAULT_SERVICE_CIDR)]
    service_cidr: Vec<skiff_runtime::ipnet::Ipv4Net>,
    /// Load-balancer address pool(s), comma-separated (unheld addresses dropped likewise).
    #[arg(long, value_delimiter = ',')]
    service_lb_pool: Vec<skiff_runtime::ipnet::Ipv4Net>,
}

impl ProxyArgs {
    /// The agent's proxy options from these flags.
    pub fn options(&self) -> skiff_agent::ProxyOptions {
        self.table
            .options(self.service_cidr.clone(), self.service_lb_pool.clone())
    }
}

/// Arguments of `skiff hollow-nodes`.
#[derive(Args, Debug)]
pub struct HollowNodesArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// How many nodes.
    #[arg(long)]
    count: usize,
    /// Node name prefix: nodes are `<prefix>0`, `<prefix>1`, ...
    #[arg(long, default_value = "hollow-")]
    prefix: String,
    /// Where the hollow nodes keep their (tiny) state.
    #[arg(long, default_value = "/var/lib/skiff/hollow")]
    root_dir: PathBuf,
    /// Serve every node's HTTPS API (stats for the metrics pipeline, logs) on its own
    /// loopback address (127.10.x.y), with a serving certificate signed by this cluster CA
    /// key; needs `--serving-ca-cert-file` too.
    #[arg(long, requires = "serving_ca_cert_file")]
    serving_ca_key_file: Option<PathBuf>,
    /// The cluster CA certificate for `--serving-ca-key-file`.
    #[arg(long, requires = "serving_ca_key_file")]
    serving_ca_cert_file: Option<PathBuf>,
    /// The port of the hollow nodes' servers.
    #[arg(long, default_value_t = skiff_kubelet::server::DEFAULT_PORT)]
    serving_port: u16,
    /// Log filter.
    #[arg(long, default_value = "warn")]
    log_level: String,
}

impl ConnectArgs {
    fn apply(&self, opts: &mut AgentOptions) {
        opts.server = self.server.clone();
        opts.token = self.token.clone();
        opts.ca_file = self.ca_file.clone();
        opts.insecure_skip_tls_verify = self.insecure_skip_tls_verify;
        opts.kubeconfig = self.kubeconfig.clone();
    }
}

fn agent_options(args: AgentArgs) -> AgentOptions {
    let mut opts = AgentOptions {
        node_name: args.node_name,
        root_dir: args.root_dir,
        state_dir: args.state_dir,
        runtime: match args.runtime {
            RuntimeArg::Real => RuntimeKind::Real,
            RuntimeArg::Fake => RuntimeKind::Fake,
        },
        max_pods: args.max_pods,
        allow_privileged: args.allow_privileged,
        node_ip: args.node_ip,
        kubelet_port: args.kubelet_port,
        local_path_root: args.local_path_root,
        tls_dir: args.tls_dir,
        ca_key_file: args.ca_key_file,
        kubelet_cert_file: args.kubelet_cert_file,
        kubelet_key_file: args.kubelet_key_file,
        bridge: Some(args.bridge),
        nft_table: Some(args.nft_table),
        cgroup_subtree: Some(args.cgroup_subtree),
        proxy: args.proxy.options(),
        ..AgentOptions::default()
    };
    args.connect.apply(&mut opts);
    args.dns.apply(&mut opts);
    opts
}

fn block_on(f: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(f) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `skiff agent` until SIGINT/SIGTERM. Containers keep running after it exits.
pub fn run_agent(args: AgentArgs) -> ExitCode {
    crate::init_logging(&args.log_level);
    let cleanup = args.cleanup;
    let opts = agent_options(args);
    if cleanup {
        return block_on(async move { skiff_agent::cleanup(&opts).await });
    }
    block_on(skiff_agent::run_agent(opts))
}

/// Runs `skiff hollow-nodes` until SIGINT/SIGTERM.
pub fn run_hollow_nodes(args: HollowNodesArgs) -> ExitCode {
    crate::init_logging(&args.log_level);
    let mut opts = AgentOptions::default();
    args.connect.apply(&mut opts);
    block_on(async move {
        let serving = match (&args.serving_ca_cert_file, &args.serving_ca_key_file) {
            (Some(cert), Some(key)) => Some(skiff_kubelet::HollowServing {
                ca_cert_pem: std::fs::read_to_string(cert)
                    .with_context(|| format!("--serving-ca-cert-file {}", cert.display()))?,
                ca_key_pem: std::fs::read_to_string(key)
                    .with_context(|| format!("--serving-ca-key-file {}", key.display()))?,
                port: args.serving_port,
            }),
            _ => None,
        };
        let client = skiff_agent::client(&opts).await?;
        std::fs::create_dir_all(&args.root_dir)?;
        let nodes = skiff_kubelet::HollowNodes {
            count: args.count,
            // The kubelet names nodes `<prefix>-<i>`.
            prefix: args.prefix.trim_end_matches('-').to_string(),
            root_dir: args.root_dir,
            serving,
        };
        skiff_kubelet::run_hollow_nodes_with(nodes, move |_| client.clone(), shutdown_signal())
            .await
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Sub,
    }
    #[derive(clap::Subcommand)]
    #[allow(clippy::large_enum_variant)]
    enum Sub {
        Agent(AgentArgs),
        HollowNodes(HollowNodesArgs),
    }

    #[test]
    fn agent_flags_reach_the_options() {
        let cli = Cli::try_parse_from([
            "skiff",
            "agent",
            "--server",
            "https://10.0.0.1:6443",
            "--token",
            "abc",
            "--node-name",
            "n1",
            "--kubelet-port",
            "11250",
            "--runtime",
            "fake",
            "--node-ip",
            "10.0.0.2",
            "--bridge",
            "skt1",
            "--proxy-table",
            "skp1",
            "--service-cidr",
            "10.100.0.0/16,10.101.0.0/16",
            "--service-lb-pool",
            "192.0.2.0/28",
        ])
        .unwrap();
        let Sub::Agent(args) = cli.cmd else {
            panic!("agent expected")
        };
        let o = agent_options(args);
        assert_eq!(o.server.as_deref(), Some("https://10.0.0.1:6443"));
        assert_eq!(o.token.as_deref(), Some("abc"));
        assert_eq!(o.node_name.as_deref(), Some("n1"));
        assert_eq!(o.kubelet_port, 11250);
        assert_eq!(o.runtime, RuntimeKind::Fake);
        assert_eq!(o.node_ip, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(o.bridge.as_deref(), Some("skt1"));
        assert_eq!(o.proxy.table, "skp1");
        assert_eq!(o.proxy.service_cidrs.len(), 2);
        assert_eq!(o.proxy.lb_pools[0].to_string(), "192.0.2.0/28");
        // A hollow node programs no datapath unless told to.
        assert!(!o.proxy_enabled());
        assert_eq!(
            o.root_dir,
            PathBuf::from(skiff_runtime::image::DEFAULT_ROOT)
        );
    }

    #[test]
    fn server_without_token_and_kubeconfig_with_server_are_refused() {
        assert!(Cli::try_parse_from(["skiff", "agent", "--server", "https://x"]).is_err());
        assert!(
            Cli::try_parse_from([
                "skiff",
                "hollow-nodes",
                "--count",
                "2",
                "--kubeconfig",
                "k",
                "--server",
                "https://x",
                "--token",
                "t"
            ])
            .is_err()
        );
        let ok =
            Cli::try_parse_from(["skiff", "hollow-nodes", "--count", "3", "--kubeconfig", "k"])
                .unwrap();
        let Sub::HollowNodes(h) = ok.cmd else {
            panic!("hollow-nodes expected")
        };
        assert_eq!((h.count, h.prefix.as_str()), (3, "hollow-"));
    }
}
