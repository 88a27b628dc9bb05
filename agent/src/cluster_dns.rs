//! The node's cluster DNS server as an agent component: bound on the pod bridge's gateway
//! (or `--cluster-dns-listen`), fed by watches of the cluster, stopped with the agent.

use anyhow::Context;
use skiff_client::Shutdown;
use std::sync::Arc;

use skiff_proxy::dns::{ClusterDns, DnsMetrics, DnsSettings, watch_cluster};

use crate::DnsMode;
use crate::components::AgentComponent;
use crate::node::NodePieces;

/// The cluster DNS server of one node.
pub struct ClusterDnsComponent {
    client: kube::Client,
    settings: DnsSettings,
    metrics: Arc<DnsMetrics>,
}

impl ClusterDnsComponent {
    /// The component for `node`; `None` with `--dns-mode none`, or when the node has no
    /// pod CIDR to take a default address from and no `--cluster-dns-listen` (hollow nodes).
    pub fn for_node(node: &NodePieces) -> anyhow::Result<Option<ClusterDnsComponent>> {
        let opts = &node.opts;
        if opts.dns_mode == DnsMode::None {
            return Ok(None);
        }
        let Some(listen) = node.cluster_dns_listen() else {
            tracing::info!(node = %node.node_name, "no pod CIDR and no --cluster-dns-listen: this node runs no DNS server");
            return Ok(None);
        };
        let mut settings = DnsSettings::new(&opts.cluster_domain, listen);
        settings.upstreams = opts.dns_upstream.clone();
        settings.zone().context("--cluster-domain")?;
        Ok(Some(ClusterDnsComponent {
            client: node.client.clone(),
            settings,
            metrics: Arc::default(),
        }))
    }

    /// The server's metrics (for the node's `/metrics`), counted from its start.
    pub fn metrics(&self) -> Arc<DnsMetrics> {
        self.metrics.clone()
    }
}

#[async_trait::async_trait]
impl AgentComponent for ClusterDnsComponent {
    fn name(&self) -> &'static str {
        "cluster-dns"
    }

    async fn run(self: Box<Self>, shutdown: Shutdown) -> anyhow::Result<()> {
        let dns = ClusterDns::bind_with_metrics(&self.settings, self.metrics.clone())?;
        tracing::info!(addr = %dns.local_addr(), domain = %dns.zone(), "cluster DNS listening");
        let watch = watch_cluster(
            self.client.clone(),
            dns.zone().clone(),
            dns.index(),
            shutdown.signalled(),
        );
        let (served, ()) = tokio::join!(dns.serve(shutdown.signalled()), watch);
        served.context("serving cluster DNS")
    }
}
