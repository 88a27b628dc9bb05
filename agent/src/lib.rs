//! The skiff node agent: builds the node's shared pieces once (API client and credentials,
//! container runtime and image store, the node's HTTPS server) and starts the node's
//! components side by side over them — the kubelet, and next to it the service proxy.
//!
//! `skiff agent` and the agent inside `skiff server` both start here.

mod client;
pub mod cluster_dns;
pub mod components;
pub mod node;
pub mod node_server;
mod options;

use std::future::Future;
use std::sync::Arc;

pub use client::{client, hostname};
pub use components::{AgentComponent, run_side_by_side};
pub use options::{AgentOptions, DEFAULT_CLUSTER_DNS, DnsMode, ProxyOptions, RuntimeKind};

use crate::node::NodePieces;

/// Builds and runs a node agent from `opts` until SIGINT/SIGTERM.
pub async fn run_agent(opts: AgentOptions) -> anyhow::Result<()> {
    run_agent_until(opts, shutdown_signal()).await
}

/// [`run_agent`] until `shutdown` completes. Containers keep running after it returns; the
/// next agent over the same state adopts them.
pub async fn run_agent_until(
    opts: AgentOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let Some(node) = NodePieces::build(opts, &mut shutdown).await? else {
        return Ok(());
    };
    let kubelet = node.kubelet();
    // One /metrics per node: the kubelet's, then the other components'.
    let metrics = kubelet.metrics();
    let server = node_server::start(&node, kubelet.container_lookup()).await?;
    let mut components: Vec<Box<dyn AgentComponent>> = vec![Box::new(kubelet)];
    if let Some(dns) = cluster_dns::ClusterDnsComponent::for_node(&node)? {
        let m = dns.metrics();
        metrics.add_component(Arc::new(move || m.metrics_text()));
        components.push(Box::new(dns));
    }
    if let Some(provisioner) = node.local_path_provisioner() {
        components.push(Box::new(provisioner));
    }
    if let Some(proxy) = node.service_proxy() {
        let m = proxy.metrics();
        metrics.add_component(Arc::new(move || m.metrics_text()));
        components.push(Box::new(proxy));
    }
    let result = run_side_by_side(components, shutdown).await;
    if let Some(server) = server {
        server.stop().await;
    }
    result
}

/// `skiff agent --cleanup`: removes the service proxy's nftables table (and nothing of any
/// other table).
pub async fn cleanup(opts: &AgentOptions) -> anyhow::Result<()> {
    let nft = skiff_proxy::nft::NftCommand::default();
    skiff_proxy::ServiceProxy::cleanup(&nft, &opts.proxy.table)
        .await
        .map_err(|e| anyhow::anyhow!("removing nftables table {}: {e}", opts.proxy.table))
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
