//! The cluster DNS server every node agent runs (hickory-server over UDP and TCP): Service,
//! endpoint and Pod records from an in-memory index kept from watches, every other name
//! forwarded upstream with a cache, and Prometheus metrics.

mod cache;
mod handler;
pub mod index;
mod listen;
mod metrics;
pub mod upstream;
mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{LowerName, Name};
use hickory_server::ServerFuture;

pub use cache::AnswerCache;
pub use handler::{ClusterDnsHandler, Forwarding, SharedIndex};
pub use index::{Index, Objects};
pub use metrics::DnsMetrics;
pub use watch::watch_cluster;

/// How long a client's TCP connection may stay idle.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// How many upstream answers are cached.
const CACHE_ENTRIES: usize = 10_000;

/// What went wrong in the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// An upstream resolver given on the command line is not `ip[:port]`.
    #[error("invalid DNS upstream {0:?}: expected ip or ip:port, comma-separated")]
    BadUpstream(String),
    /// The cluster domain is not a DNS name.
    #[error("invalid cluster domain {0:?}")]
    BadDomain(String),
    /// Binding a listening socket failed.
    #[error("listening for DNS on {addr} ({protocol})")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// `udp` or `tcp`.
        protocol: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No upstream resolver is configured.
    #[error("no upstream DNS resolver")]
    NoUpstream,
    /// Talking to an upstream resolver failed.
    #[error("upstream DNS resolver {server}")]
    UpstreamIo {
        /// The resolver.
        server: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// An upstream resolver did not answer in time.
    #[error("upstream DNS resolver {server} did not answer within {timeout:?}")]
    UpstreamTimeout {
        /// The resolver.
        server: SocketAddr,
        /// The time it had.
        timeout: Duration,
    },
    /// An upstream answer could not be decoded.
    #[error("upstream DNS resolver {server} sent an unreadable answer: {reason}")]
    Decode {
        /// The resolver.
        server: SocketAddr,
        /// Why.
        reason: String,
    },
    /// A query could not be encoded.
    #[error("encoding a DNS query: {0}")]
    Encode(String),
    /// The server stopped with an error.
    #[error("the DNS server failed: {0}")]
    Serve(String),
}

/// How a cluster DNS server is set up.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where it listens, UDP and TCP.
    pub listen: SocketAddr,
    /// Upstream resolvers; `None` for the host's (`/etc/resolv.conf`, a loopback stub
    /// followed to systemd-resolved's list).
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How long one upstream has to answer.
    pub upstream_timeout: Duration,
}

impl DnsSettings {
    /// Settings for `domain` listening on `listen`, with the host's upstreams.
    pub fn new(domain: &str, listen: SocketAddr) -> DnsSettings {
        DnsSettings {
            domain: domain.to_string(),
            listen,
            upstreams: None,
            upstream_timeout: Duration::from_secs(2),
        }
    }

    /// The cluster domain as a DNS name.
    pub fn zone(&self) -> Result<Name, DnsError> {
        let mut n = Name::from_ascii(self.domain.trim_end_matches('.'))
            .map_err(|_| DnsError::BadDomain(self.domain.clone()))?;
        if n.is_root() {
            return Err(DnsError::BadDomain(self.domain.clone()));
        }
        n.set_fqdn(true);
        Ok(n.to_lowercase())
    }

    /// The upstream resolvers these settings name (never this server's own address).
    pub fn resolved_upstreams(&self) -> Vec<SocketAddr> {
        match &self.upstreams {
            Some(list) => list.clone(),
            None => upstream::host_upstreams(
                std::path::Path::new(upstream::HOST_RESOLV_CONF),
                std::path::Path::new(upstream::SYSTEMD_RESOLV_CONF),
                &[self.listen],
            ),
        }
    }
}

/// A bound cluster DNS server, ready to serve.
pub struct ClusterDns {
    server: ServerFuture<ClusterDnsHandler>,
    index: Arc<SharedIndex>,
    metrics: Arc<DnsMetrics>,
    zone: Name,
    local_addr: SocketAddr,
}

impl ClusterDns {
    /// Binds UDP and TCP on `settings.listen` (the address need not exist yet: sockets
    /// are bound with IP_FREEBIND so the server can start before the pod bridge).
    pub fn bind(settings: &DnsSettings) -> Result<ClusterDns, DnsError> {
        Self::bind_with_metrics(settings, Arc::default())
    }

    /// [`ClusterDns::bind`], counting into `metrics` (which the caller may already serve).
    pub fn bind_with_metrics(
        settings: &DnsSettings,
        metrics: Arc<DnsMetrics>,
    ) -> Result<ClusterDns, DnsError> {
        let zone = settings.zone()?;
        let (udp, tcp) = listen::bind_pair(settings.listen)?;
        let local_addr = udp.local_addr().map_err(|source| DnsError::Listen {
            addr: settings.listen,
            protocol: "udp",
            source,
        })?;
        let upstreams = settings.resolved_upstreams();
        if upstreams.is_empty() {
            tracing::warn!("no upstream DNS resolver: names outside the cluster get SERVFAIL");
        } else {
            tracing::info!(upstreams = ?upstreams, "cluster DNS upstream resolvers");
        }
        let index = Arc::new(SharedIndex::default());
        let handler = ClusterDnsHandler {
            zone: LowerName::new(&zone),
            index: index.clone(),
            forwarding: Arc::new(Forwarding {
                servers: upstreams,
                timeout: settings.upstream_timeout,
                cache: AnswerCache::new(CACHE_ENTRIES),
            }),
            metrics: metrics.clone(),
        };
        let mut server = ServerFuture::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE);
        Ok(ClusterDns {
            server,
            index,
            metrics,
            zone,
            local_addr,
        })
    }

    /// The address the server answers on (the bound port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The index to keep up to date (see [`watch_cluster`]).
    pub fn index(&self) -> Arc<SharedIndex> {
        self.index.clone()
    }

    /// The cluster zone.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The server's metrics.
    pub fn metrics(&self) -> Arc<DnsMetrics> {
        self.metrics.clone()
    }

    /// Serves until `stop` completes.
    pub async fn serve(
        mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(), DnsError> {
        tokio::select! {
            r = self.server.block_until_done() => r.map_err(|e| DnsError::Serve(e.to_string())),
            _ = stop => {
                self.server.shutdown_token().cancel();
                Ok(())
            }
        }
    }
}

/// The default listen address: the node's pod-bridge gateway (the first address of pod
/// CIDR `cidr`), port 53.
pub fn default_listen(cidr_network: Ipv4Addr) -> SocketAddr {
    let gw = Ipv4Addr::from(u32::from(cidr_network).wrapping_add(1));
    SocketAddr::new(gw.into(), 53)
}
