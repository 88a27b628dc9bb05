//! `skiff server`: the API server, scheduler and controller-manager in one process and, unless
//! `--disable-agent`, a node agent for this machine. The in-process components talk to the
//! API server over HTTPS with the admin credentials, exactly as external clients do.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use skiff_apiserver::server::{self, ServerConfig};
use skiff_client::Shutdown;

/// Flags of `skiff server`.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Directory for the embedded store, credentials and kubeconfigs.
    #[arg(long, default_value = "/var/lib/skiff")]
    data_dir: PathBuf,
    /// Comma-separated etcd endpoints (http://127.0.0.1:2379,...); the embedded store when absent.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Address to serve the API on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// TLS port of the API.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// How long Events are kept after they were last seen (e.g. 1h, 30m).
    #[arg(long, default_value = "1h")]
    event_ttl: String,
    /// How often node and pod metrics (`metrics.k8s.io`, `kubectl top`) are collected
    /// from the kubelets, as metrics-server's flag of the same name (e.g. 15s, 1s).
    #[arg(long, default_value = "15s")]
    metric_resolution: String,
    /// Do not run a node agent in this process.
    #[arg(long)]
    disable_agent: bool,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    disable_scheduler: bool,
    /// Do not run the controller-manager in this process.
    #[arg(long)]
    disable_controllers: bool,
    /// Give each Node a pod CIDR from --cluster-cidr (node IPAM, as kube-controller-manager's
    /// flag of the same name); `--allocate-node-cidrs=false` leaves podCIDR to whoever
    /// registers the node.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    allocate_node_cidrs: bool,
    /// Leave kubelet serving CertificateSigningRequests pending for `kubectl certificate
    /// approve` instead of approving those from registered nodes automatically.
    #[arg(long)]
    disable_csr_auto_approval: bool,
    /// The longest lifetime of a certificate the CSR signer issues, in hours.
    #[arg(long, default_value_t = 8760)]
    cluster_signing_duration_hours: u64,
    /// The range node pod CIDRs are cut from.
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// Most endpoints in one EndpointSlice (1 to 1000), as kube-controller-manager's flag.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    max_endpoints_per_slice: u16,
    /// Name of this machine's node (the hostname by default).
    #[arg(long)]
    node_name: Option<String>,
    #[command(flatten)]
    dns: crate::agent_cmd::DnsArgs,
    /// Runtime state of the agent (sandboxes, containers, IP allocations).
    #[arg(long, default_value = "/run/skiff")]
    state_dir: PathBuf,
    /// The Service cluster IP range, and a second range of the other IP family for dual
    /// stack (kube-apiserver's --service-cluster-ip-range), e.g. 10.96.0.0/12,fd00:10:96::/112.
    #[arg(long, default_value = skiff_apiserver::alloc::DEFAULT_SERVICE_CIDR)]
    service_cidr: String,
    /// The range NodePort Services take their node ports from.
    #[arg(long, default_value = "30000-32767")]
    service_node_port_range: String,
    /// The address this server advertises in the `kubernetes` Service's endpoints (default:
    /// the bind address, or the host's first non-loopback address when binding to all).
    #[arg(long)]
    advertise_address: Option<IpAddr>,
    /// Addresses the service load balancer gives LoadBalancer Services: CIDRs or
    /// a.b.c.d-e.f.g.h ranges, comma-separated. Without it they get the nodes' addresses.
    #[arg(long, default_value = "")]
    service_lb_pool: String,
    /// The in-process agent's service proxy (it takes the server's service CIDR and pool).
    #[command(flatten)]
    proxy: crate::agent_cmd::ProxyTableArgs,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `skiff_apiserver=debug`.
    #[arg(long, env = "SKIFF_LOG", default_value = "info")]
    log_level: String,
    #[command(flatten)]
    hpa: crate::hpa_flags::HpaFlags,
    #[command(flatten)]
    node_lifecycle: crate::node_lifecycle_flags::NodeLifecycleFlags,
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(args: ServerArgs) -> ExitCode {
    crate::init_logging(&args.log_level);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A kube client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await?;
    Ok(kube::Client::try_from(cfg)?)
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let cfg = ServerConfig {
        data_dir: args.data_dir.clone(),
        etcd_endpoints: args.etcd_endpoints.clone(),
        bind_address: args.bind_address,
        secure_port: args.secure_port,
        event_ttl: crate::client::rollout::parse_duration(&args.event_ttl)
            .context("--event-ttl")?,
        metric_resolution: crate::client::rollout::parse_duration(&args.metric_resolution)
            .context("--metric-resolution")
            .and_then(|d| {
                anyhow::ensure!(!d.is_zero(), "--metric-resolution must be positive");
                Ok(d)
            })?,
        services: skiff_apiserver::alloc::ServiceNetwork {
            cidrs: args.service_cidr.parse().context("--service-cidr")?,
            node_ports: args
                .service_node_port_range
                .parse()
                .context("--service-node-port-range")?,
        },
        advertise_address: args.advertise_address,
    };
    let service_lb_pool: skiff_controller::service_lb::LbPool =
        args.service_lb_pool.parse().context("--service-lb-pool")?;
    let (stop_tx, stop) = Shutdown::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let api = tokio::spawn(server::run(cfg, stop.signalled(), move |running| {
        eprintln!(
            "skiff API server listening on https://{}",
            running.local_addr
        );
        eprintln!("  export KUBECONFIG={}", running.admin_kubeconfig.display());
        eprintln!("  skiff get nodes   # or: kubectl get all -A");
        let _ = ready_tx.send((
            running.admin_kubeconfig.clone(),
            running.scheduler_kubeconfig.clone(),
        ));
    }));
    let (kubeconfig, scheduler_kubeconfig) = match ready_rx.await {
        Ok(k) => k,
        Err(_) => return api.await?,
    };
    let client = client_from(&kubeconfig).await?;
    let mut components = tokio::task::JoinSet::new();
    if !args.disable_controllers {
        let tls = args.data_dir.join("tls");
        let mut opts = skiff_controller::ControllerOptions {
            cluster_cidr: args.cluster_cidr.parse().context("--cluster-cidr")?,
            csr_signer: Some(skiff_controller::csr_signer::SignerConfig {
                ca_cert: tls.join("ca.crt"),
                ca_key: tls.join("ca.key"),
                max_duration: std::time::Duration::from_secs(
                    args.cluster_signing_duration_hours.max(1) * 3600,
                ),
            }),
            max_endpoints_per_slice: args.max_endpoints_per_slice.into(),
            hpa: args.hpa.options(),
            node_lifecycle: args.node_lifecycle.options(),
            service_lb_pool,
            ..Default::default()
        };
        if !args.allocate_node_cidrs {
            opts.controllers
                .remove(&skiff_controller::ControllerKind::NodeIpam);
        }
        if args.disable_csr_auto_approval {
            opts.controllers
                .remove(&skiff_controller::ControllerKind::CsrApproving);
        }
        skiff_apiserver::metrics::add_component(std::sync::Arc::new(
            skiff_controller::metrics::metrics_text,
        ));
        let c = client.clone();
        let s = stop.signalled();
        components.spawn(async move {
            (
                "controller-manager",
                skiff_controller::run(c, opts, s).await,
            )
        });
    }
    if !args.disable_scheduler {
        let opts = skiff_scheduler::SchedulerOptions::default();
        let metrics = opts.metrics.clone();
        skiff_apiserver::metrics::add_component(std::sync::Arc::new(move || metrics.render()));
        // The scheduler runs as its own user, with only the roles Kubernetes gives it.
        let c = client_from(&scheduler_kubeconfig).await?;
        let s = stop.signalled();
        components.spawn(async move { ("scheduler", skiff_scheduler::run(c, opts, s).await) });
    }
    if !args.disable_agent {
        let mut opts = skiff_agent::AgentOptions {
            kubeconfig: Some(kubeconfig.clone()),
            node_name: args.node_name.clone(),
            root_dir: args.data_dir.join("agent"),
            tls_dir: Some(args.data_dir.join("tls")),
            state_dir: args.state_dir.clone(),
            proxy: args.proxy.options(
                ipv4_ranges(&args.service_cidr),
                ipv4_ranges(&args.service_lb_pool),
            ),
            ..Default::default()
        };
        args.dns.apply(&mut opts);
        let s = stop.signalled();
        components.spawn(async move { ("agent", skiff_agent::run_agent_until(opts, s).await) });
    }
    let mut api = api;
    let result = tokio::select! {
        _ = shutdown_signal() => Ok(()),
        r = &mut api => r.map_err(anyhow::Error::from).and_then(|r| r),
        Some(done) = components.join_next() => match done {
            Ok((name, Ok(()))) => Err(anyhow::anyhow!("{name} stopped unexpectedly")),
            Ok((name, Err(e))) => Err(e.context(name)),
            Err(e) => Err(e.into()),
        },
    };
    let _ = stop_tx.send(true);
    // Give components a moment to release leases and stop their work cleanly.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while components.join_next().await.is_some() {}
    })
    .await;
    if !api.is_finished() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut api).await;
    }
    result
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

/// The IPv4 networks of a comma-separated list of CIDRs and `a.b.c.d-e.f.g.h` ranges (as
/// `--service-cidr` and `--service-lb-pool` take them), for the in-process agent's proxy;
/// the flags were validated when the server parsed them.
fn ipv4_ranges(list: &str) -> Vec<skiff_runtime::ipnet::Ipv4Net> {
    use skiff_runtime::ipnet::{Ipv4Net, Ipv4Subnets};
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Ok(net) = item.parse::<Ipv4Net>() {
            out.push(net);
        } else if let Some((a, b)) = item.split_once('-')
            && let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse())
        {
            out.extend(Ipv4Subnets::new(a, b, 0));
        }
    }
    out
}
