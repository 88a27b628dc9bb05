//! What the datapath needs to know about one Service: its addresses, ports, policies and
//! the endpoints of each port, read from the Service and its EndpointSlices (pure, no I/O),
//! and which of those endpoints traffic may use (kube-proxy's `CategorizeEndpoints`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label on an EndpointSlice naming the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Namespace and name of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// From the API's spelling (`TCP` when absent, as the API defaults it).
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// nftables' spelling.
    pub fn nft(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One endpoint of one Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// Its address.
    pub ip: Ipv4Addr,
    /// The port traffic goes to.
    pub port: u16,
    /// `conditions.ready` (absent means ready).
    pub ready: bool,
    /// `conditions.serving` (absent means the value of ready).
    pub serving: bool,
    /// `conditions.terminating` (absent means not terminating).
    pub terminating: bool,
    /// Whether it runs on this node.
    pub local: bool,
}

/// One port of a Service with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// `name` (empty for a single unnamed port).
    pub name: String,
    /// Protocol.
    pub protocol: Protocol,
    /// The Service's port.
    pub port: u16,
    /// `nodePort`, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// Endpoints, sorted, without duplicates.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// How the port is named in chain names: its name, or its number when unnamed.
    pub fn label(&self) -> String {
        if self.name.is_empty() {
            self.port.to_string()
        } else {
            self.name.clone()
        }
    }
}

/// A Service as the datapath sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Namespace and name.
    pub key: ServiceKey,
    /// The IPv4 ClusterIP (none for headless and ExternalName Services).
    pub cluster_ip: Option<Ipv4Addr>,
    /// Addresses answered like external ones: `status.loadBalancer.ingress[].ip` and
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// `sessionAffinity: ClientIP` timeout in seconds.
    pub affinity_timeout: Option<u32>,
    /// `externalTrafficPolicy: Local`.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_local: bool,
}

/// The default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;

impl ServiceInfo {
    /// Reads `svc` and the EndpointSlices of it (`slices`) for node `node`. `None` for a
    /// Service the datapath does not handle (ExternalName, headless, no IPv4 address).
    pub fn from_api<'a>(
        svc: &Service,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
        node: &str,
    ) -> Option<ServiceInfo> {
        let meta = &svc.metadata;
        let key = ServiceKey::new(meta.namespace.as_deref()?, meta.name.as_deref()?);
        let spec = svc.spec.as_ref()?;
        if spec.type_.as_deref() == Some("ExternalName") {
            return None;
        }
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        let mut external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        external_ips.extend(
            ingress
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
        external_ips.sort();
        external_ips.dedup();
        cluster_ip?;
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
        });
        let externally_reachable = matches!(
            spec.type_.as_deref(),
            Some("NodePort") | Some("LoadBalancer")
        ) || !external_ips.is_empty();
        let slices: Vec<&EndpointSlice> = slices
            .into_iter()
            .filter(|s| s.address_type == "IPv4")
            .collect();
        let mut ports = Vec::new();
        for p in spec.ports.iter().flatten() {
            let (Some(protocol), Ok(port)) = (
                Protocol::parse(p.protocol.as_deref()),
                u16::try_from(p.port),
            ) else {
                continue;
            };
            let name = p.name.clone().unwrap_or_default();
            let node_port = p
                .node_port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0);
            ports.push(ServicePort {
                endpoints: port_endpoints(&slices, &name, protocol, node),
                name,
                protocol,
                port,
                node_port,
            });
        }
        Some(ServiceInfo {
            key,
            cluster_ip,
            external_ips,
            ports,
            affinity_timeout,
            external_local: externally_reachable
                && spec.external_traffic_policy.as_deref() == Some("Local"),
            internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        })
    }

    /// Whether traffic reaches the Service from outside: a NodePort or an external address.
    pub fn externally_reachable(&self) -> bool {
        !self.external_ips.is_empty() || self.ports.iter().any(|p| p.node_port.is_some())
    }
}

/// The endpoints the slices give the Service port named `name`: the slice port of the same
/// name and protocol carries the target port; an endpoint's first address is its address.
fn port_endpoints(
    slices: &[&EndpointSlice],
    name: &str,
    protocol: Protocol,
    node: &str,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices {
        let Some(target) = slice.ports.iter().flatten().find_map(|sp| {
            (sp.name.as_deref().unwrap_or("") == name
                && Protocol::parse(sp.protocol.as_deref()) == Some(protocol))
            .then_some(sp.port)
            .flatten()
            .and_then(|p| u16::try_from(p).ok())
        }) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let c = ep.conditions.clone().unwrap_or_default();
            let ready = c.ready.unwrap_or(true);
            out.push(Endpoint {
                ip,
                port: target,
                ready,
                serving: c.serving.unwrap_or(ready),
                terminating: c.terminating.unwrap_or(false),
                local: ep.node_name.as_deref() == Some(node),
            });
        }
    }
    out.sort();
    out.dedup_by(|a, b| (a.ip, a.port) == (b.ip, b.port));
    out
}

/// The endpoints traffic of one kind may use: the ready ones, or, when none is ready, the
/// serving and terminating ones (so connections drain to pods on their way out).
pub fn usable(endpoints: &[Endpoint], local_only: bool) -> Vec<&Endpoint> {
    let candidates = endpoints.iter().filter(|e| !local_only || e.local);
    let ready: Vec<&Endpoint> = candidates.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    candidates.filter(|e| e.serving && e.terminating).collect()
}

/// Which endpoints each kind of traffic to one Service port uses.
#[derive(Debug, PartialEq, Eq)]
pub struct PortEndpoints<'a> {
    /// Cluster-wide endpoints (when some traffic uses them).
    pub cluster: Vec<&'a Endpoint>,
    /// This node's endpoints (when some traffic uses them).
    pub local: Vec<&'a Endpoint>,
    /// Traffic to the ClusterIP goes to `local` rather than `cluster`.
    pub internal_local: bool,
    /// Traffic from outside goes to `local` rather than `cluster`.
    pub external_local: bool,
    /// Whether the port has a usable endpoint on any node (kube-proxy's `hasAnyEndpoints`):
    /// without one traffic is rejected, with one but none for a Local policy it is dropped.
    pub has_any: bool,
}

impl<'a> PortEndpoints<'a> {
    /// Splits the endpoints of `port` of `svc` by the Service's traffic policies.
    pub fn of(svc: &ServiceInfo, port: &'a ServicePort) -> Self {
        let external_local = svc.external_local && svc.externally_reachable();
        let uses_cluster = !svc.internal_local || (svc.externally_reachable() && !external_local);
        let uses_local = svc.internal_local || external_local;
        PortEndpoints {
            cluster: if uses_cluster {
                usable(&port.endpoints, false)
            } else {
                Vec::new()
            },
            local: if uses_local {
                usable(&port.endpoints, true)
            } else {
                Vec::new()
            },
            internal_local: svc.internal_local,
            external_local,
            has_any: !usable(&port.endpoints, false).is_empty(),
        }
    }

    /// Whether the port has a usable endpoint anywhere in the cluster.
    pub fn any(&self) -> bool {
        self.has_any
    }

    /// Endpoints of ClusterIP traffic.
    pub fn internal(&self) -> &[&'a Endpoint] {
        if self.internal_local {
            &self.local
        } else {
            &self.cluster
        }
    }

    /// Endpoints of external traffic (NodePort, load-balancer and external IPs).
    pub fn external(&self) -> &[&'a Endpoint] {
        if self.external_local {
            &self.local
        } else {
            &self.cluster
        }
    }
}

/// Groups EndpointSlices by the Service they name (their `kubernetes.io/service-name`).
pub fn slice_owner(slice: &EndpointSlice) -> Option<ServiceKey> {
    let ns = slice.metadata.namespace.as_deref()?;
    let labels: &BTreeMap<String, String> = slice.metadata.labels.as_ref()?;
    Some(ServiceKey::new(ns, labels.get(SERVICE_NAME_LABEL)?))
}

/// Where the cluster DNS Service's DNS ports go instead of its endpoints.
pub fn dns_override(
    key: &ServiceKey,
    port: &ServicePort,
    local_dns: Option<SocketAddr>,
) -> Option<SocketAddr> {
    let addr = local_dns?;
    (key.namespace == "kube-system"
        && key.name == "kube-dns"
        && port.port == 53
        && matches!(port.protocol, Protocol::Udp | Protocol::Tcp))
    .then_some(addr)
}

#[cfg(test)]
#[path = "service_tests.rs"]
pub(crate) mod tests;
