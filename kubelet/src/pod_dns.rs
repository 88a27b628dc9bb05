//! A pod's `resolv.conf` settings from its `dnsPolicy` and `dnsConfig`, as the kubelet
//! makes them (pkg/kubelet/network/dns): the cluster server and search path for
//! ClusterFirst, the node's own for Default (and for host-network pods under
//! ClusterFirst), only `dnsConfig` for None, `dnsConfig` merged on top in every case.

use std::net::{IpAddr, Ipv4Addr};

use k8s_openapi::api::core::v1::Pod;
use skiff_runtime::network::DnsConfig;

/// The resolver's limits the kubelet keeps to (glibc's, raised in 2.26+).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// What the node knows for pod DNS.
#[derive(Debug, Clone, Copy)]
pub struct NodeDns<'a> {
    /// The cluster DNS address (`--cluster-dns`); without one ClusterFirst falls back to
    /// Default, as the kubelet does.
    pub cluster_dns: Option<Ipv4Addr>,
    /// The cluster domain (`cluster.local`).
    pub domain: &'a str,
    /// The node's resolver settings (its `/etc/resolv.conf`).
    pub host: &'a DnsConfig,
}

/// The node's resolver settings for pods: `/etc/resolv.conf`, or when that names only a
/// loopback stub (unreachable from a pod's network namespace), systemd-resolved's list of
/// the real servers behind it, as kubelets on such hosts are configured to read.
pub fn host_dns() -> DnsConfig {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|t| DnsConfig::parse_resolv_conf(&t))
            .unwrap_or_default()
    };
    let host = read("/etc/resolv.conf");
    if host.servers.iter().all(IpAddr::is_loopback) {
        let real = read("/run/systemd/resolve/resolv.conf");
        if !real.servers.is_empty() {
            return real;
        }
    }
    host
}

/// The DNS settings for `pod`.
pub fn pod_dns(pod: &Pod, node: NodeDns<'_>) -> DnsConfig {
    let spec = pod.spec.as_ref();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let cluster = |dns: Ipv4Addr| {
        let mut searches = vec![
            format!("{ns}.svc.{}", node.domain),
            format!("svc.{}", node.domain),
            node.domain.to_string(),
        ];
        searches.extend(node.host.searches.iter().cloned());
        DnsConfig {
            servers: vec![IpAddr::V4(dns)],
            searches,
            options: vec!["ndots:5".into()],
        }
    };
    let mut out = match (policy, node.cluster_dns) {
        ("None", _) => DnsConfig::default(),
        ("ClusterFirstWithHostNet", Some(dns)) => cluster(dns),
        ("ClusterFirst", Some(dns)) if !host_network => cluster(dns),
        _ => node.host.clone(),
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        for s in extra.nameservers.iter().flatten() {
            if let Ok(ip) = s.parse::<IpAddr>()
                && !out.servers.contains(&ip)
            {
                out.servers.push(ip);
            }
        }
        for s in extra.searches.iter().flatten() {
            if !out.searches.contains(s) {
                out.searches.push(s.clone());
            }
        }
        for o in extra.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            // A pod's option replaces the one of the same name.
            let name = opt.split(':').next().unwrap_or_default().to_string();
            out.options
                .retain(|existing| existing.split(':').next() != Some(name.as_str()));
            out.options.push(opt);
        }
    }
    out.servers.truncate(MAX_NAMESERVERS);
    let mut chars = 0;
    out.searches.retain(|s| {
        chars += s.len() + 1;
        chars <= MAX_SEARCH_CHARS
    });
    out.searches.truncate(MAX_SEARCHES);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "shop"}, "spec": spec,
        }))
        .unwrap()
    }

    fn host() -> DnsConfig {
        DnsConfig::parse_resolv_conf("nameserver 192.168.1.1\nsearch lan\noptions edns0\n")
    }

    fn node(host: &DnsConfig) -> NodeDns<'_> {
        NodeDns {
            cluster_dns: Some(Ipv4Addr::new(10, 96, 0, 10)),
            domain: "cluster.local",
            host,
        }
    }

    fn text(c: &DnsConfig) -> String {
        skiff_runtime::network::files::resolv_conf(c)
    }

    #[test]
    fn cluster_first_gives_the_cluster_server_and_search_path() {
        let h = host();
        let got = pod_dns(&pod(serde_json::json!({"containers": []})), node(&h));
        assert_eq!(
            text(&got),
            "search shop.svc.cluster.local svc.cluster.local cluster.local lan\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
    }

    #[test]
    fn host_network_pods_fall_back_to_the_node_unless_asked() {
        let h = host();
        let hostnet = pod(serde_json::json!({"containers": [], "hostNetwork": true}));
        assert_eq!(pod_dns(&hostnet, node(&h)), h);
        let with = pod(serde_json::json!({"containers": [], "hostNetwork": true,
            "dnsPolicy": "ClusterFirstWithHostNet"}));
        assert_eq!(
            pod_dns(&with, node(&h)).servers,
            vec![IpAddr::V4(Ipv4Addr::new(10, 96, 0, 10))]
        );
        let default = pod(serde_json::json!({"containers": [], "dnsPolicy": "Default"}));
        assert_eq!(pod_dns(&default, node(&h)), h);
        let no_cluster_dns = NodeDns {
            cluster_dns: None,
            ..node(&h)
        };
        assert_eq!(
            pod_dns(&pod(serde_json::json!({"containers": []})), no_cluster_dns),
            h
        );
    }

    #[test]
    fn none_takes_only_dns_config_and_options_merge_by_name() {
        let h = host();
        let p = pod(
            serde_json::json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.2.3.4", "1.2.3.4", "5.6.7.8"],
            "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
        );
        assert_eq!(
            text(&pod_dns(&p, node(&h))),
            "search a.example\nnameserver 1.2.3.4\nnameserver 5.6.7.8\noptions ndots:2 edns0\n"
        );
        let merged = pod(serde_json::json!({"containers": [], "dnsConfig": {
            "nameservers": ["1.2.3.4", "5.6.7.8", "9.9.9.9"],
            "options": [{"name": "ndots", "value": "1"}]}}));
        let got = pod_dns(&merged, node(&h));
        assert_eq!(got.servers.len(), 3, "at most three nameservers");
        assert_eq!(got.options, ["ndots:1"]);
    }
}
