use serde_json::json;

use super::*;

pub(crate) fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

pub(crate) fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).unwrap()
}

/// A Service `default/web` with ClusterIP 10.96.0.20 port 80 (name http) → 8080.
pub(crate) fn web(spec_extra: serde_json::Value) -> Service {
    let mut spec = json!({"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]});
    for (k, v) in spec_extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    service(json!({"metadata": {"namespace": "default", "name": "web"}, "spec": spec}))
}

/// A slice of `default/web` with port http 8080 and `endpoints`.
pub(crate) fn web_slice(name: &str, endpoints: serde_json::Value) -> EndpointSlice {
    slice(json!({
        "metadata": {"namespace": "default", "name": name, "labels": {SERVICE_NAME_LABEL: "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
}

fn ep(ip: &str, ready: bool, serving: bool, terminating: bool, node: &str) -> serde_json::Value {
    json!({"addresses": [ip], "nodeName": node,
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
}

#[test]
fn reads_addresses_ports_policies_and_endpoints() {
    let mut svc = web(json!({
        "type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "sessionAffinity": "ClientIP",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080}],
    }));
    svc.status = Some(
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}))
            .unwrap(),
    );
    let s = web_slice(
        "web-a",
        json!([
            {"addresses": ["10.244.0.5"], "nodeName": "n1"},
            ep("10.244.1.5", false, true, true, "n2"),
            {"addresses": ["fd00::1"]},
        ]),
    );
    let info = ServiceInfo::from_api(&svc, [&s], "n1").unwrap();
    assert_eq!(info.cluster_ip, Some("10.96.0.20".parse().unwrap()));
    assert_eq!(
        info.external_ips,
        vec!["192.0.2.10".parse::<Ipv4Addr>().unwrap()]
    );
    assert_eq!(info.affinity_timeout, Some(DEFAULT_AFFINITY_TIMEOUT));
    assert!(info.external_local && !info.internal_local);
    let p = &info.ports[0];
    assert_eq!(
        (p.port, p.node_port, p.protocol),
        (80, Some(30080), Protocol::Tcp)
    );
    assert_eq!(
        p.endpoints,
        vec![
            Endpoint {
                ip: "10.244.0.5".parse().unwrap(),
                port: 8080,
                ready: true,
                serving: true,
                terminating: false,
                local: true
            },
            Endpoint {
                ip: "10.244.1.5".parse().unwrap(),
                port: 8080,
                ready: false,
                serving: true,
                terminating: true,
                local: false
            },
        ]
    );
}

#[test]
fn headless_external_name_and_mismatched_slice_ports_are_left_out() {
    assert!(ServiceInfo::from_api(&web(json!({"clusterIP": "None"})), [], "n1").is_none());
    assert!(
        ServiceInfo::from_api(
            &web(json!({"type": "ExternalName", "externalName": "x.example"})),
            [],
            "n1"
        )
        .is_none()
    );
    let mut s = web_slice("web-a", json!([{"addresses": ["10.244.0.5"]}]));
    s.ports.as_mut().unwrap()[0].name = Some("metrics".into());
    let info = ServiceInfo::from_api(&web(json!({})), [&s], "n1").unwrap();
    assert!(info.ports[0].endpoints.is_empty());
}

#[test]
fn terminating_endpoints_serve_only_when_none_is_ready() {
    let s = web_slice(
        "web-a",
        json!([
            ep("10.244.0.5", false, true, true, "n1"),
            ep("10.244.0.6", false, false, true, "n1"),
        ]),
    );
    let info = ServiceInfo::from_api(&web(json!({})), [&s], "n1").unwrap();
    let eps = &info.ports[0].endpoints;
    let used: Vec<String> = usable(eps, false)
        .iter()
        .map(|e| e.ip.to_string())
        .collect();
    assert_eq!(used, ["10.244.0.5"]);
    let s2 = web_slice("web-b", json!([ep("10.244.1.7", true, true, false, "n2")]));
    let info = ServiceInfo::from_api(&web(json!({})), [&s, &s2], "n1").unwrap();
    let used: Vec<String> = usable(&info.ports[0].endpoints, false)
        .iter()
        .map(|e| e.ip.to_string())
        .collect();
    assert_eq!(used, ["10.244.1.7"]);
    // Locally only the terminating one is left, so local traffic drains to it.
    let local: Vec<String> = usable(&info.ports[0].endpoints, true)
        .iter()
        .map(|e| e.ip.to_string())
        .collect();
    assert_eq!(local, ["10.244.0.5"]);
}

#[test]
fn traffic_policies_pick_cluster_or_local_endpoints() {
    let s = web_slice(
        "web-a",
        json!([
            ep("10.244.0.5", true, true, false, "n1"),
            ep("10.244.1.5", true, true, false, "n2")
        ]),
    );
    let local =
        ServiceInfo::from_api(&web(json!({"internalTrafficPolicy": "Local"})), [&s], "n1").unwrap();
    let pe = PortEndpoints::of(&local, &local.ports[0]);
    assert!(pe.cluster.is_empty());
    assert_eq!(pe.internal().len(), 1);
    let np = ServiceInfo::from_api(
        &web(json!({"type": "NodePort", "externalTrafficPolicy": "Local", "ports": [{"name": "http", "port": 80, "nodePort": 30001}]})),
        [&s], "n2").unwrap();
    let pe = PortEndpoints::of(&np, &np.ports[0]);
    assert_eq!(pe.internal().len(), 2);
    assert_eq!(
        pe.external()
            .iter()
            .map(|e| e.ip.to_string())
            .collect::<Vec<_>>(),
        ["10.244.1.5"]
    );
}

#[test]
fn only_the_dns_ports_of_kube_dns_are_overridden() {
    let addr: SocketAddr = "10.244.0.1:53".parse().unwrap();
    let dns = ServiceKey::new("kube-system", "kube-dns");
    let port = |port, protocol| ServicePort {
        name: String::new(),
        protocol,
        port,
        node_port: None,
        endpoints: vec![],
    };
    assert_eq!(
        dns_override(&dns, &port(53, Protocol::Udp), Some(addr)),
        Some(addr)
    );
    assert_eq!(
        dns_override(&dns, &port(9153, Protocol::Tcp), Some(addr)),
        None
    );
    assert_eq!(
        dns_override(
            &ServiceKey::new("default", "kube-dns"),
            &port(53, Protocol::Udp),
            Some(addr)
        ),
        None
    );
    assert_eq!(dns_override(&dns, &port(53, Protocol::Udp), None), None);
}
