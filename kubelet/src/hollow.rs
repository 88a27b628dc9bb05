//! Hollow nodes for scale tests: many kubelets in one process, each over a fake runtime and
//! fake images, so pods "run" with no processes. Each node has a loopback address of its
//! own (`127.10.x.y`), so nothing the cluster sends to a node leaves the machine; with
//! [`HollowServing`] each also serves its node HTTPS API (stats, logs) there, so the API
//! server's metrics pipeline reads them as it reads real nodes.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::Kubelet;
use crate::config::KubeletConfig;
use crate::fake::FakeRuntime;
use crate::images::FakeImages;
use crate::server::{NodeServer, NodeTls, tls};

/// Serving certificates for hollow nodes' node servers, signed by the cluster CA.
#[derive(Clone)]
pub struct HollowServing {
    /// The cluster CA certificate (PEM); clients must present certificates it signed.
    pub ca_cert_pem: String,
    /// The cluster CA key (PEM), to sign each node's serving certificate.
    pub ca_key_pem: String,
    /// The port every node's server listens on, on its own address.
    pub port: u16,
}

/// What [`run_hollow_nodes_with`] runs.
pub struct HollowNodes {
    /// How many nodes.
    pub count: usize,
    /// Nodes are `<prefix>-<i>`.
    pub prefix: String,
    /// Where they keep their (tiny) state.
    pub root_dir: PathBuf,
    /// Node servers, or none (the nodes then answer nothing on their addresses).
    pub serving: Option<HollowServing>,
}

/// The address of hollow node `i`: `127.10.0.1` onwards, 250 per /24, all on loopback.
pub fn hollow_node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        127,
        10 + (i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250) as u8 + 1,
    )
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
    let nodes = HollowNodes {
        count,
        prefix: prefix.to_string(),
        root_dir,
        serving: None,
    };
    run_hollow_nodes_with(nodes, client_for, shutdown).await
}

/// [`run_hollow_nodes`] with every setting, node servers among them.
pub async fn run_hollow_nodes_with(
    nodes: HollowNodes,
    client_for: impl Fn(&str) -> kube::Client,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..nodes.count {
        let name = format!("{}-{i}", nodes.prefix);
        let ip = hollow_node_ip(i);
        let mut cfg = KubeletConfig::new(
            name.clone(),
            client_for(&name),
            Arc::new(FakeRuntime::default()),
            Arc::new(FakeImages::default()),
            nodes.root_dir.join(&name),
        );
        cfg.require_pod_cidr = false;
        cfg.node_ip = Some(ip);
        cfg.max_pods = Some(110);
        // Fake containers never exit on their own, so there is nothing for a 1 s re-check
        // to notice; every change still wakes the pod worker at once. (Kubernetes' own
        // kubelet re-syncs a pod every minute.)
        cfg.timers.sync_interval = Duration::from_secs(10);
        if let Some(s) = &nodes.serving {
            cfg.kubelet_port = s.port;
        }
        let kubelet = Kubelet::new(cfg);
        if let Some(s) = &nodes.serving {
            let (cert_pem, key_pem) =
                tls::issue_serving_cert(&s.ca_cert_pem, &s.ca_key_pem, &name, &[IpAddr::V4(ip)])
                    .with_context(|| format!("serving certificate of {name}"))?;
            let node_tls = NodeTls {
                cert_pem,
                key_pem,
                client_ca_pem: s.ca_cert_pem.clone(),
            };
            let addr = SocketAddr::new(IpAddr::V4(ip), s.port);
            let server = NodeServer::bind(addr, &node_tls, &name, kubelet.container_lookup())
                .await
                .with_context(|| format!("node server of {name}"))?;
            tasks.spawn(async move {
                server.serve(std::future::pending()).await?;
                Ok::<(), anyhow::Error>(())
            });
        }
        tasks.spawn(async move { kubelet.run(std::future::pending()).await });
    }
    shutdown.await;
    tasks.abort_all();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hollow_addresses_are_distinct_and_on_loopback() {
        let ips: std::collections::HashSet<Ipv4Addr> = (0..70_000).map(hollow_node_ip).collect();
        assert_eq!(ips.len(), 70_000);
        assert!(ips.iter().all(|ip| ip.is_loopback()));
        assert_eq!(hollow_node_ip(0), Ipv4Addr::new(127, 10, 0, 1));
        assert_eq!(hollow_node_ip(251), Ipv4Addr::new(127, 10, 1, 2));
    }
}
