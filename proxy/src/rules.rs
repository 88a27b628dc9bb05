//! The nftables objects of the proxy's table: the fixed skeleton (base chains, dispatch
//! maps, masquerade and reject chains, the drop of unheld service addresses) and the
//! chains, map elements and affinity sets each Service contributes. Pure; the text is
//! what `nft -f` reads.
//!
//! The shape follows kube-proxy's nftables mode: `service-ips` and `service-nodeports`
//! verdict maps dispatch to a chain per Service port that picks an endpoint with
//! `numgen random mod N`, a chain per endpoint DNATs (marking hairpin traffic for
//! masquerade), and Service ports without endpoints sit in `no-endpoint-*` maps that
//! reject new connections before any NAT.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;

use crate::service::{Endpoint, PortEndpoints, ServiceInfo, ServicePort, dns_override};

/// The verdict maps and the set Services put elements in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Map {
    /// `address . protocol . port : verdict` for ClusterIPs and external addresses.
    ServiceIps,
    /// `protocol . port : verdict` for NodePorts on the node's local addresses.
    ServiceNodeports,
    /// Like `ServiceIps`, for Service ports with nothing to send traffic to.
    NoEndpointServices,
    /// Like `ServiceNodeports`, for NodePorts with nothing to send traffic to.
    NoEndpointNodeports,
}

impl Map {
    /// The map's name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Map::ServiceIps => "service-ips",
            Map::ServiceNodeports => "service-nodeports",
            Map::NoEndpointServices => "no-endpoint-services",
            Map::NoEndpointNodeports => "no-endpoint-nodeports",
        }
    }
}

/// One element of a verdict map.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Element {
    /// The map.
    pub map: Map,
    /// The key (`10.96.0.10 . udp . 53`).
    pub key: String,
    /// The verdict (`goto svc-...`, `drop`).
    pub verdict: String,
}

/// Everything one Service puts in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Chains by name, each with its rules in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity sets by name, with their timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
    /// Map elements.
    pub elements: Vec<Element>,
    /// Addresses for the `cluster-ips` set (the ClusterIP and external addresses): traffic
    /// to a port of them that no Service port holds is rejected rather than dropped.
    pub held_ips: Vec<Ipv4Addr>,
}

/// Node facts the rules depend on.
#[derive(Debug, Clone, Default)]
pub struct NodeContext {
    /// The node's pod CIDR: ClusterIP traffic from outside it is masqueraded.
    pub pod_cidr: Option<Ipv4Net>,
    /// The node-local DNS server the `kube-system/kube-dns` DNS ports go to.
    pub local_dns: Option<SocketAddr>,
}

const MARK_FOR_MASQUERADE: &str = "jump mark-for-masquerade";
const REJECT: &str = "goto reject-chain";

/// The table's fixed part, created before any Service (so the drop of unheld service
/// addresses is in force from the first transaction). `drop_ranges` are the service
/// CIDRs and load-balancer pools.
pub fn skeleton(table: &str, drop_ranges: &[Ipv4Net]) -> String {
    let t = format!("ip {table}");
    let mut s = String::new();
    let add = |s: &mut String, line: &str| {
        s.push_str(line);
        s.push('\n');
    };
    add(
        &mut s,
        &format!("add table {t} {{ comment \"skiff service proxy\"; }}"),
    );
    for (chain, hook) in [
        ("nat-prerouting", "type nat hook prerouting priority dstnat"),
        ("nat-output", "type nat hook output priority -100"),
        (
            "nat-postrouting",
            "type nat hook postrouting priority srcnat",
        ),
        ("filter-input", "type filter hook input priority filter"),
        ("filter-forward", "type filter hook forward priority filter"),
        ("filter-output", "type filter hook output priority filter"),
    ] {
        add(
            &mut s,
            &format!("add chain {t} {chain} {{ {hook}; policy accept; }}"),
        );
    }
    for chain in [
        "services",
        "service-endpoints-check",
        "cluster-ips-check",
        "mark-for-masquerade",
        "masquerading",
        "reject-chain",
    ] {
        add(&mut s, &format!("add chain {t} {chain}"));
    }
    add(
        &mut s,
        &format!("add set {t} cluster-ips {{ type ipv4_addr; }}"),
    );
    for map in [Map::ServiceIps, Map::NoEndpointServices] {
        add(
            &mut s,
            &format!(
                "add map {t} {} {{ type ipv4_addr . inet_proto . inet_service : verdict; }}",
                map.name()
            ),
        );
    }
    for map in [Map::ServiceNodeports, Map::NoEndpointNodeports] {
        add(
            &mut s,
            &format!(
                "add map {t} {} {{ type inet_proto . inet_service : verdict; }}",
                map.name()
            ),
        );
    }
    let rules: &[(&str, String)] = &[
        ("nat-prerouting", "jump services".into()),
        ("nat-output", "jump services".into()),
        ("nat-postrouting", "jump masquerading".into()),
        (
            "filter-input",
            "ct state new jump service-endpoints-check".into(),
        ),
        (
            "filter-forward",
            "ct state new jump service-endpoints-check".into(),
        ),
        (
            "filter-forward",
            "ct state new jump cluster-ips-check".into(),
        ),
        (
            "filter-output",
            "ct state new jump service-endpoints-check".into(),
        ),
        (
            "filter-output",
            "ct state new jump cluster-ips-check".into(),
        ),
        (
            "services",
            "ip daddr . meta l4proto . th dport vmap @service-ips".into(),
        ),
        (
            "services",
            "fib daddr type local meta l4proto . th dport vmap @service-nodeports".into(),
        ),
        (
            "service-endpoints-check",
            "ip daddr . meta l4proto . th dport vmap @no-endpoint-services".into(),
        ),
        (
            "service-endpoints-check",
            "fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports".into(),
        ),
        (
            "cluster-ips-check",
            "ip daddr @cluster-ips goto reject-chain".into(),
        ),
        (
            "mark-for-masquerade",
            "meta mark set meta mark or 0x4000".into(),
        ),
        ("masquerading", "meta mark & 0x4000 == 0 return".into()),
        ("masquerading", "meta mark set meta mark xor 0x4000".into()),
        ("masquerading", "masquerade fully-random".into()),
        (
            "reject-chain",
            "meta l4proto tcp reject with tcp reset".into(),
        ),
        ("reject-chain", "reject".into()),
    ];
    for (chain, rule) in rules {
        add(&mut s, &format!("add rule {t} {chain} {rule}"));
    }
    if !drop_ranges.is_empty() {
        let ranges: Vec<String> = drop_ranges.iter().map(|r| r.to_string()).collect();
        add(
            &mut s,
            &format!(
                "add rule {t} cluster-ips-check ip daddr {{ {} }} drop",
                ranges.join(", ")
            ),
        );
    }
    s
}

/// Chain names of one Service port, unique in the table (namespace and name are DNS
/// labels/subdomains, the port label a DNS label or a number).
fn port_id(svc: &ServiceInfo, port: &ServicePort) -> String {
    format!(
        "{}/{}/{}/{}",
        svc.key.namespace,
        svc.key.name,
        port.protocol.nft(),
        port.label()
    )
}

fn endpoint_chain(id: &str, ep: &Endpoint) -> String {
    format!("ep-{id}__{}/{}", ep.ip, ep.port)
}

/// The timeout is part of the name, so a changed timeout is a new set (an existing set's
/// timeout cannot be changed in place).
fn affinity_set(id: &str, ep: &Endpoint, timeout: u32) -> String {
    format!("aff-{timeout}-{id}__{}/{}", ep.ip, ep.port)
}

impl ServiceRules {
    /// The rules of `svc` on a node described by `node`.
    pub fn render(svc: &ServiceInfo, node: &NodeContext) -> ServiceRules {
        let mut out = ServiceRules::default();
        if let Some(ip) = svc.cluster_ip {
            out.held_ips.push(ip);
        }
        out.held_ips.extend(svc.external_ips.iter().copied());
        out.held_ips.sort();
        out.held_ips.dedup();
        for port in &svc.ports {
            out.render_port(svc, port, node);
        }
        out.elements.sort();
        out
    }

    fn render_port(&mut self, svc: &ServiceInfo, port: &ServicePort, node: &NodeContext) {
        let id = port_id(svc, port);
        let proto = port.protocol.nft();
        let ip_key = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", port.port);
        if let Some(dns) = dns_override(&svc.key, port, node.local_dns)
            .filter(|a| a.is_ipv4())
            .filter(|_| svc.cluster_ip.is_some())
        {
            let chain = format!("dns-{id}");
            let dnat = format!("meta l4proto {proto} dnat to {dns}");
            // Only this node's pods and the node itself: another node's pods (or, on one
            // host, another agent's) reach the DNS server of their own node.
            let rules = match node.pod_cidr {
                Some(cidr) => vec![
                    format!("ip saddr {cidr} {dnat}"),
                    format!("fib saddr type local {dnat}"),
                ],
                None => vec![dnat],
            };
            self.chains.insert(chain.clone(), rules);
            let cip = svc.cluster_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            self.element(Map::ServiceIps, ip_key(cip), format!("goto {chain}"));
            return;
        }
        let eps = PortEndpoints::of(svc, port);
        let reachable = eps.any();
        let cluster_chain = format!("svc-{id}");
        let local_chain = format!("local-{id}");
        let external_chain = format!("ext-{id}");
        if !eps.cluster.is_empty() {
            let mut rules = Vec::new();
            if let (Some(cidr), Some(cip)) = (node.pod_cidr, svc.cluster_ip) {
                rules.push(format!(
                    "ip daddr {cip} {proto} dport {} ip saddr != {cidr} {MARK_FOR_MASQUERADE}",
                    port.port
                ));
            }
            self.dispatch(&mut rules, svc, &id, proto, &eps.cluster);
            self.chains.insert(cluster_chain.clone(), rules);
        }
        if !eps.local.is_empty() {
            let mut rules = Vec::new();
            self.dispatch(&mut rules, svc, &id, proto, &eps.local);
            self.chains.insert(local_chain.clone(), rules);
        }
        let internal_chain = if eps.internal_local {
            &local_chain
        } else {
            &cluster_chain
        };
        // ClusterIP traffic.
        if let Some(cip) = svc.cluster_ip {
            let verdict = if !eps.internal().is_empty() {
                Some((Map::ServiceIps, format!("goto {internal_chain}")))
            } else if reachable {
                // internalTrafficPolicy: Local without a local endpoint: dropped, as
                // kube-proxy does (the endpoints elsewhere are not to be used).
                Some((Map::NoEndpointServices, "drop".to_string()))
            } else {
                Some((Map::NoEndpointServices, REJECT.to_string()))
            };
            if let Some((map, v)) = verdict {
                self.element(map, ip_key(cip), v);
            }
        }
        if !svc.externally_reachable() {
            return;
        }
        // External traffic: NodePorts and external addresses.
        let (ip_map, np_map, verdict) = if !eps.external().is_empty() {
            let mut rules = Vec::new();
            if eps.external_local {
                // Pods and the node itself reaching an external address are not "external":
                // they go to the internal policy's endpoints, the node's own masqueraded.
                if let Some(cidr) = node.pod_cidr {
                    if !eps.internal().is_empty() {
                        rules.push(format!("ip saddr {cidr} goto {internal_chain}"));
                    }
                }
                rules.push(format!("fib saddr type local {MARK_FOR_MASQUERADE}"));
                if !eps.internal().is_empty() {
                    rules.push(format!("fib saddr type local goto {internal_chain}"));
                }
                rules.push(format!("goto {local_chain}"));
            } else {
                rules.push(MARK_FOR_MASQUERADE.to_string());
                rules.push(format!("goto {cluster_chain}"));
            }
            self.chains.insert(external_chain.clone(), rules);
            (
                Map::ServiceIps,
                Map::ServiceNodeports,
                format!("goto {external_chain}"),
            )
        } else if reachable {
            // externalTrafficPolicy: Local without a local endpoint.
            (
                Map::NoEndpointServices,
                Map::NoEndpointNodeports,
                "drop".to_string(),
            )
        } else {
            (
                Map::NoEndpointServices,
                Map::NoEndpointNodeports,
                REJECT.to_string(),
            )
        };
        for ip in &svc.external_ips {
            self.element(ip_map, ip_key(*ip), verdict.clone());
        }
        if let Some(np) = port.node_port {
            self.element(np_map, format!("{proto} . {np}"), verdict);
        }
    }

    /// Rules choosing among `endpoints` (affinity first, then random), and the endpoint
    /// chains they go to.
    fn dispatch(
        &mut self,
        rules: &mut Vec<String>,
        svc: &ServiceInfo,
        id: &str,
        proto: &str,
        endpoints: &[&Endpoint],
    ) {
        if let Some(timeout) = svc.affinity_timeout {
            for ep in endpoints {
                rules.push(format!(
                    "ip saddr @{} goto {}",
                    affinity_set(id, ep, timeout),
                    endpoint_chain(id, ep)
                ));
            }
        }
        let mut vmap = String::new();
        for (i, ep) in endpoints.iter().enumerate() {
            if i > 0 {
                vmap.push_str(", ");
            }
            let _ = write!(vmap, "{i} : goto {}", endpoint_chain(id, ep));
        }
        rules.push(format!(
            "numgen random mod {} vmap {{ {vmap} }}",
            endpoints.len()
        ));
        for ep in endpoints {
            let chain = endpoint_chain(id, ep);
            if self.chains.contains_key(&chain) {
                continue;
            }
            let mut ep_rules = vec![format!("ip saddr {} {MARK_FOR_MASQUERADE}", ep.ip)];
            if let Some(timeout) = svc.affinity_timeout {
                let set = affinity_set(id, ep, timeout);
                ep_rules.push(format!("update @{set} {{ ip saddr }}"));
                self.affinity_sets.insert(set, timeout);
            }
            ep_rules.push(format!(
                "meta l4proto {proto} dnat to {}:{}",
                ep.ip, ep.port
            ));
            self.chains.insert(chain, ep_rules);
        }
    }

    fn element(&mut self, map: Map, key: String, verdict: String) {
        self.elements.push(Element { map, key, verdict });
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
