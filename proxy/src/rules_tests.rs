use serde_json::json;

use super::*;
use crate::service::tests::{web, web_slice};

fn node() -> NodeContext {
    NodeContext {
        pod_cidr: Some("10.244.0.0/24".parse().unwrap()),
        local_dns: None,
    }
}

fn render(svc: k8s_openapi::api::core::v1::Service, eps: serde_json::Value) -> ServiceRules {
    let s = web_slice("web-a", eps);
    let info = ServiceInfo::from_api(&svc, [&s], "n1").unwrap();
    ServiceRules::render(&info, &node())
}

#[test]
fn a_cluster_ip_with_one_endpoint_dnats_and_marks_hairpin() {
    let r = render(
        web(json!({})),
        json!([{"addresses": ["10.244.0.5"], "nodeName": "n1"}]),
    );
    let ep = "ep-default/web/tcp/http__10.244.0.5/8080";
    assert_eq!(
        r.chains[ep],
        [
            "ip saddr 10.244.0.5 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.244.0.5:8080",
        ]
    );
    assert_eq!(
        r.chains["svc-default/web/tcp/http"],
        [
            "ip daddr 10.96.0.20 tcp dport 80 ip saddr != 10.244.0.0/24 jump mark-for-masquerade"
                .to_string(),
            format!("numgen random mod 1 vmap {{ 0 : goto {ep} }}"),
        ]
    );
    assert_eq!(r.chains.len(), 2);
    assert_eq!(
        r.elements,
        [Element {
            map: Map::ServiceIps,
            key: "10.96.0.20 . tcp . 80".into(),
            verdict: "goto svc-default/web/tcp/http".into()
        }]
    );
    assert_eq!(r.held_ips, ["10.96.0.20".parse::<Ipv4Addr>().unwrap()]);
}

#[test]
fn no_usable_endpoint_rejects_and_local_policy_without_local_endpoint_drops() {
    let r = render(
        web(
            json!({"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
        ),
        json!([{"addresses": ["10.244.0.5"], "conditions": {"ready": false}}]),
    );
    assert!(r.chains.is_empty());
    assert_eq!(
        r.elements,
        [
            Element {
                map: Map::NoEndpointServices,
                key: "10.96.0.20 . tcp . 80".into(),
                verdict: "goto reject-chain".into()
            },
            Element {
                map: Map::NoEndpointNodeports,
                key: "tcp . 30080".into(),
                verdict: "goto reject-chain".into()
            },
        ]
    );
    let r = render(
        web(json!({"internalTrafficPolicy": "Local"})),
        json!([{"addresses": ["10.244.1.5"], "nodeName": "n2"}]),
    );
    assert_eq!(
        r.elements,
        [Element {
            map: Map::NoEndpointServices,
            key: "10.96.0.20 . tcp . 80".into(),
            verdict: "drop".into()
        }]
    );
}

#[test]
fn external_cluster_policy_masquerades_and_load_balancer_ips_are_answered() {
    let mut svc = web(
        json!({"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
    );
    svc.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}))
            .unwrap(),
    );
    let r = render(
        svc,
        json!([{"addresses": ["10.244.1.5"], "nodeName": "n2"}]),
    );
    assert_eq!(
        r.chains["ext-default/web/tcp/http"],
        ["jump mark-for-masquerade", "goto svc-default/web/tcp/http"]
    );
    let keys: Vec<(&str, &str)> = r
        .elements
        .iter()
        .map(|e| (e.key.as_str(), e.verdict.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("10.96.0.20 . tcp . 80", "goto svc-default/web/tcp/http"),
            ("192.0.2.10 . tcp . 80", "goto ext-default/web/tcp/http"),
            ("tcp . 30080", "goto ext-default/web/tcp/http"),
        ]
    );
    assert_eq!(r.held_ips.len(), 2);
}

#[test]
fn kube_dns_goes_to_the_local_dns_server() {
    let svc = crate::service::tests::service(
        json!({"metadata": {"namespace": "kube-system", "name": "kube-dns"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "metrics", "port": 9153}]}}),
    );
    let info = ServiceInfo::from_api(&svc, [], "n1").unwrap();
    let ctx = NodeContext {
        pod_cidr: None,
        local_dns: Some("10.244.0.1:53".parse().unwrap()),
    };
    let r = ServiceRules::render(&info, &ctx);
    assert_eq!(
        r.chains["dns-kube-system/kube-dns/udp/dns"],
        ["meta l4proto udp dnat to 10.244.0.1:53"]
    );
    // With a pod CIDR, only the node's own pods and the node itself are sent there.
    let own = NodeContext {
        pod_cidr: Some("10.244.0.0/24".parse().unwrap()),
        ..ctx.clone()
    };
    assert_eq!(
        ServiceRules::render(&info, &own).chains["dns-kube-system/kube-dns/udp/dns"],
        [
            "ip saddr 10.244.0.0/24 meta l4proto udp dnat to 10.244.0.1:53",
            "fib saddr type local meta l4proto udp dnat to 10.244.0.1:53"
        ]
    );
    let keys: Vec<(&str, &str)> = r
        .elements
        .iter()
        .map(|e| (e.key.as_str(), e.verdict.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            (
                "10.96.0.10 . udp . 53",
                "goto dns-kube-system/kube-dns/udp/dns"
            ),
            ("10.96.0.10 . tcp . 9153", "goto reject-chain"),
        ]
    );
}
