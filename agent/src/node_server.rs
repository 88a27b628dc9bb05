//! The node's HTTPS server (logs, exec, attach, stats for the API server), started beside
//! the components with a certificate of its own or one requested from the cluster, and
//! stopped after them.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use skiff_kubelet::server::serving_csr::{ServingRequest, obtain_until_issued, unix_now};
use skiff_kubelet::server::tls::RotatingCert;
use skiff_kubelet::server::{ContainerLookup, NodeServer, ServerError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::node::NodePieces;

/// A running node server.
pub struct RunningServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Stops the server and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the node server for `node` answering from `lookup`; `None` when the node has no
/// way to get a serving certificate (logs, exec and attach are then unavailable).
pub async fn start(
    node: &NodePieces,
    lookup: Arc<dyn ContainerLookup>,
) -> anyhow::Result<Option<RunningServer>> {
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async move {
        let _ = stopped.await;
    };
    let addr = SocketAddr::new(IpAddr::V4(node.node_ip), node.opts.kubelet_port);
    let task = match (&node.tls, &node.client_ca) {
        (Some(tls), _) => {
            let server = NodeServer::bind(addr, tls, &node.node_name, lookup)
                .await
                .context("starting the node server")?;
            tracing::info!(node = %node.node_name, addr = %server.local_addr(), "node server listening");
            tokio::spawn(server.serve(stopped))
        }
        (None, Some(ca)) => {
            let mut dns_names = vec![node.node_name.clone()];
            let host = crate::hostname();
            if host != node.node_name {
                dns_names.push(host);
            }
            let req = ServingRequest {
                node_name: node.node_name.clone(),
                dns_names,
                ips: vec![IpAddr::V4(node.node_ip)],
                dir: node.opts.root_dir.join("pki"),
            };
            tokio::spawn(serve_with_csr(
                node.client.clone(),
                req,
                ca.clone(),
                addr,
                lookup,
                stopped,
            ))
        }
        (None, None) => {
            tracing::warn!(
                node = %node.node_name,
                "no cluster-CA-signed serving certificate and no cluster CA certificate to \
                 request one with (give --ca-file, --tls-dir, --ca-key-file, or \
                 --kubelet-cert-file/--kubelet-key-file): logs, exec and attach for this \
                 node are unavailable"
            );
            return Ok(None);
        }
    };
    Ok(Some(RunningServer { stop, task }))
}

/// The node server with a certificate from a CertificateSigningRequest: waits for the
/// first one (the rest of the agent runs meanwhile), serves, and swaps in a renewed one at
/// 80% of each certificate's lifetime without closing the listener.
async fn serve_with_csr(
    client: kube::Client,
    req: ServingRequest,
    client_ca: String,
    addr: SocketAddr,
    lookup: Arc<dyn ContainerLookup>,
    stop: impl Future<Output = ()>,
) -> Result<(), ServerError> {
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
