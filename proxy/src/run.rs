//! The proxy as a long-running part of the agent: watches Services and EndpointSlices,
//! feeds the proxier, and syncs once both lists arrived, then after each burst of changes
//! (coalesced, at most one sync per `min_sync_interval`).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::watcher::{self, Event};

use crate::metrics::ProxyMetrics;
use crate::nft::{Nft, NftCommand, NftError};
use crate::proxier::{NftablesProxier, ProxierConfig};
use crate::rules::NodeContext;

/// Whether the agent programs a datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// nftables rules in the proxy's table.
    Nftables,
    /// No service proxy.
    None,
}

impl std::str::FromStr for ProxyMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nftables" => Ok(Self::Nftables),
            "none" => Ok(Self::None),
            other => Err(format!(
                "unknown proxy mode {other:?}: expected nftables or none"
            )),
        }
    }
}

/// The default nftables table of the proxy.
pub const DEFAULT_TABLE: &str = "skiff-proxy";
/// The default service CIDR.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";

/// Settings of the service proxy of one node.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The nftables table (`skiff-proxy`).
    pub table: String,
    /// This node's name.
    pub node_name: String,
    /// The service CIDRs: traffic to their unheld addresses is dropped.
    pub service_cidrs: Vec<Ipv4Net>,
    /// The load-balancer pools (unheld addresses dropped likewise).
    pub lb_pools: Vec<Ipv4Net>,
    /// The node's pod CIDR (ClusterIP traffic from outside it is masqueraded).
    pub pod_cidr: Option<Ipv4Net>,
    /// The node-local DNS server that `kube-system/kube-dns` port 53 goes to.
    pub local_dns: Option<SocketAddr>,
    /// The shortest time between two syncs.
    pub min_sync_interval: Duration,
    /// Services per transaction in a full sync.
    pub full_sync_batch: usize,
    /// `/proc/sys` to set `ip_forward` and `route_localnet` under (`None`: leave them alone).
    pub proc_sys: Option<PathBuf>,
}

impl ProxyConfig {
    /// Defaults for node `node_name`.
    pub fn new(node_name: &str) -> Self {
        Self {
            table: DEFAULT_TABLE.into(),
            node_name: node_name.into(),
            service_cidrs: vec![DEFAULT_SERVICE_CIDR.parse().expect("valid CIDR")],
            lb_pools: Vec::new(),
            pod_cidr: None,
            local_dns: None,
            min_sync_interval: Duration::from_millis(10),
            full_sync_batch: 2000,
            proc_sys: Some(PathBuf::from("/proc/sys")),
        }
    }

    fn proxier_config(&self) -> ProxierConfig {
        ProxierConfig {
            table: self.table.clone(),
            node_name: self.node_name.clone(),
            drop_ranges: self
                .service_cidrs
                .iter()
                .chain(&self.lb_pools)
                .copied()
                .collect(),
            node: NodeContext {
                pod_cidr: self.pod_cidr,
                local_dns: self.local_dns,
            },
            full_sync_batch: self.full_sync_batch,
        }
    }
}

/// The service proxy of one node.
pub struct ServiceProxy {
    client: kube::Client,
    cfg: ProxyConfig,
    nft: Arc<dyn Nft>,
    metrics: Arc<ProxyMetrics>,
}

/// Either watch's event.
enum Watched {
    Service(Result<Event<Service>, watcher::Error>),
    Slice(Result<Event<EndpointSlice>, watcher::Error>),
}

impl ServiceProxy {
    /// A proxy over `client` programming the kernel with `nft`.
    pub fn new(client: kube::Client, cfg: ProxyConfig) -> Self {
        Self::with_nft(client, cfg, Arc::new(NftCommand::default()))
    }

    /// A proxy sending its transactions through `nft`.
    pub fn with_nft(client: kube::Client, cfg: ProxyConfig, nft: Arc<dyn Nft>) -> Self {
        Self {
            client,
            cfg,
            nft,
            metrics: Arc::default(),
        }
    }

    /// The proxy's metrics (for the node's `/metrics`).
    pub fn metrics(&self) -> Arc<ProxyMetrics> {
        self.metrics.clone()
    }

    /// Removes the proxy's table (and nothing else).
    pub async fn cleanup(nft: &dyn Nft, table: &str) -> Result<(), NftError> {
        crate::nft::remove_table(nft, table).await
    }

    /// Runs until `shutdown`. The table stays in place when it returns, so Service traffic
    /// keeps flowing while the agent restarts; the next start replaces it.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        if let Some(root) = &self.cfg.proc_sys {
            match crate::sysctl::enable_route_localnet(root) {
                Ok(path) => {
                    tracing::info!(path = %path.display(), "route_localnet enabled for NodePorts on 127.0.0.1")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot enable route_localnet; NodePorts will not answer on 127.0.0.1")
                }
            }
            match crate::sysctl::enable_ip_forward(root) {
                Ok(path) => {
                    tracing::info!(path = %path.display(), "IPv4 forwarding enabled for traffic DNATed to pods")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot enable IPv4 forwarding; Service traffic to pods will be dropped")
                }
            }
        }
        let mut proxier = NftablesProxier::new(self.cfg.proxier_config(), self.nft.clone());
        let created = proxier
            .install_skeleton()
            .await
            .map_err(|e| anyhow::anyhow!("creating nftables table {}: {e}", self.cfg.table))?;
        tracing::info!(table = %self.cfg.table, created, "service proxy starting");
        let services = watcher::watcher(
            Api::<Service>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .map(Watched::Service)
        .boxed();
        let slices = watcher::watcher(
            Api::<EndpointSlice>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .map(Watched::Slice)
        .boxed();
        let mut events = futures::stream::select(services, slices);
        let mut svc_buf: Option<Vec<Service>> = None;
        let mut slice_buf: Option<Vec<EndpointSlice>> = None;
        let (mut svc_listed, mut slices_listed) = (false, false);
        let mut last_sync: Option<tokio::time::Instant> = None;
        let mut retry_after: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let ready = svc_listed && slices_listed && proxier.needs_sync();
            let due = ready.then(|| {
                let min = last_sync.map(|t| t + self.cfg.min_sync_interval);
                [min, retry_after]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or_else(tokio::time::Instant::now)
            });
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                ev = events.next() => match ev {
                    Some(Watched::Service(ev)) => match ev {
                        Ok(Event::Init) => svc_buf = Some(Vec::new()),
                        Ok(Event::InitApply(s)) => svc_buf.get_or_insert_with(Vec::new).push(s),
                        Ok(Event::InitDone) => {
                            proxier.replace_services(svc_buf.take().unwrap_or_default());
                            svc_listed = true;
                        }
                        Ok(Event::Apply(s)) => proxier.service_applied(s),
                        Ok(Event::Delete(s)) => proxier.service_deleted(&s),
                        Err(e) => tracing::warn!(error = %e, "watching Services"),
                    },
                    Some(Watched::Slice(ev)) => match ev {
                        Ok(Event::Init) => slice_buf = Some(Vec::new()),
                        Ok(Event::InitApply(s)) => slice_buf.get_or_insert_with(Vec::new).push(s),
                        Ok(Event::InitDone) => {
                            proxier.replace_slices(slice_buf.take().unwrap_or_default());
                            slices_listed = true;
                        }
                        Ok(Event::Apply(s)) => proxier.slice_applied(s),
                        Ok(Event::Delete(s)) => proxier.slice_deleted(&s),
                        Err(e) => tracing::warn!(error = %e, "watching EndpointSlices"),
                    },
                    None => anyhow::bail!("the Service and EndpointSlice watches ended"),
                },
                _ = sleep_until(due), if due.is_some() => {
                    last_sync = Some(tokio::time::Instant::now());
                    let waited = proxier.pending_for();
                    match proxier.sync().await {
                        Ok(report) => {
                            retry_after = None;
                            let took = last_sync.map(|t| t.elapsed()).unwrap_or_default();
                            self.metrics.synced(report.full, took, waited);
                            tracing::debug!(
                                full = report.full,
                                services = report.services,
                                transactions = report.transactions,
                                waited_ms = waited.map(|w| w.as_millis() as u64),
                                took_ms = took.as_millis() as u64,
                                "service rules synced"
                            );
                        }
                        Err(e) => {
                            self.metrics.sync_failed();
                            tracing::error!(error = %e, table = %self.cfg.table, "service rules sync failed; a full sync follows");
                            retry_after = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
