//! Service address allocation through the router: cluster IPs and node ports from the
//! service network, kube-apiserver's 422s for taken and out-of-range requests, release on
//! delete and type change, 50 concurrent creates, two servers on one store (embedded and
//! etcd), persistence across a restart, the repair loop, and the built-in Services.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use skiff_apiserver::alloc::repair::repair_once;
use skiff_apiserver::alloc::{Owner, ServiceNetwork, Slot};
use skiff_apiserver::handlers::{ApiState, router};
use skiff_apiserver::server::bootstrap;
use skiff_apiserver::storage::Store;
use skiff_apiserver::storage::embedded::EmbeddedStore;
use skiff_apiserver::system_services::{self, ApiEndpoint};
use tower::ServiceExt;

const SVCS: &str = "/api/v1/namespaces/default/services";

fn net(cidr: &str, ports: &str) -> ServiceNetwork {
    ServiceNetwork {
        cidrs: cidr.parse().unwrap(),
        node_ports: ports.parse().unwrap(),
    }
}

async fn api_on(store: Arc<dyn Store>, net: &ServiceNetwork) -> ApiState {
    let state = ApiState::new(store, "127.0.0.1:6443").with_service_network(net);
    bootstrap(&state).await.unwrap();
    state
}

fn embedded(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    Arc::new(EmbeddedStore::open(&dir.path().join("db.sqlite")).unwrap())
}

async fn call(state: &ApiState, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let ct = if method == "PATCH" {
        "application/merge-patch+json"
    } else {
        "application/json"
    };
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", ct)
        .body(body)
        .unwrap();
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn svc(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("ports").is_none() && spec.get("type") != Some(&json!("ExternalName")) {
        spec["ports"] = json!([{"port": 80}]);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

async fn create(state: &ApiState, name: &str, spec: Value) -> (StatusCode, Value) {
    call(state, "POST", SVCS, svc(name, spec)).await
}

async fn claims(state: &ApiState) -> Vec<(Slot, Option<Owner>)> {
    let mut v: Vec<_> = state
        .services
        .ledger()
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.slot, c.owner))
        .collect();
    v.sort();
    v
}

fn ip_slot(s: &str) -> Slot {
    Slot::Ip(s.parse().unwrap())
}

#[tokio::test]
async fn cluster_ips_and_node_ports_are_allocated_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let state = api_on(embedded(&dir), &net("10.96.0.0/24", "30000-30009")).await;

    let (code, s) = create(&state, "web", json!({"selector": {"app": "web"}})).await;
    assert_eq!(code, 201, "{s}");
    let ip = s["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert_eq!(s["spec"]["clusterIPs"], json!([ip]));
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(s["spec"]["ipFamilyPolicy"], "SingleStack");
    let parsed: std::net::IpAddr = ip.parse().unwrap();
    assert!(state.services.network().cidrs.primary().contains(parsed));
    // Dynamic addresses come from above the band kept for requested ones.
    assert!(
        state
            .services
            .network()
            .cidrs
            .primary()
            .offset(parsed)
            .unwrap()
            >= 16,
        "{ip}"
    );
    let owner = Owner::new("default", "web");
    assert!(
        claims(&state)
            .await
            .contains(&(Slot::Ip(parsed), Some(owner.clone())))
    );
    let (_, got) = call(
        &state,
        "GET",
        "/apis/networking.k8s.io/v1/ipaddresses",
        Value::Null,
    )
    .await;
    let _ = got; // served or not, the claim itself is asserted above

    // A requested address that is free is honoured; taken or outside the range is a 422.
    let (code, s) = create(&state, "fixed", json!({"clusterIP": "10.96.0.50"})).await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["spec"]["clusterIP"], "10.96.0.50");
    let (code, s) = create(&state, "dup", json!({"clusterIP": "10.96.0.50"})).await;
    assert_eq!(code, 422);
    assert_eq!(
        s["message"],
        "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.50\"]: failed to allocate IP 10.96.0.50: provided IP is already allocated"
    );
    assert_eq!(s["details"]["causes"][0]["field"], "spec.clusterIPs");
    let (code, s) = create(&state, "far", json!({"clusterIP": "10.97.0.5"})).await;
    assert_eq!(code, 422);
    assert!(
        s["message"].as_str().unwrap().ends_with(
            "failed to allocate IP 10.97.0.5: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/24"
        ),
        "{s}"
    );

    // Node ports: a requested one, one allocated, one taken, one outside the range.
    let (code, s) = create(
        &state,
        "np",
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30005}, {"name": "b", "port": 81}]}),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["spec"]["ports"][0]["nodePort"], 30005);
    let second = s["spec"]["ports"][1]["nodePort"].as_i64().unwrap();
    assert!((30000..=30009).contains(&second) && second != 30005);
    let (code, s) = create(
        &state,
        "np2",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30005}]}),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        s["message"],
        "Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated"
    );
    let (code, s) = create(
        &state,
        "np3",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        s["message"],
        "Service \"np3\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-30009"
    );
    // Nothing was left allocated by the failed creates.
    for name in ["dup", "far", "np2", "np3"] {
        assert!(
            claims(&state)
                .await
                .iter()
                .all(|(_, o)| o.as_ref().map(|o| o.name.as_str()) != Some(name)),
            "{name} left a claim"
        );
    }
    // A bad create (validation) allocates nothing either.
    let before = claims(&state).await;
    let (code, _) = create(
        &state,
        "bad",
        json!({"type": "NodePort", "ports": [{"port": 70000}]}),
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(claims(&state).await, before);

    // NodePort → ClusterIP gives the node ports back; the IP stays.
    let np_ip = {
        let (_, s) = call(&state, "GET", &format!("{SVCS}/np"), Value::Null).await;
        s["spec"]["clusterIP"].as_str().unwrap().to_string()
    };
    let (code, s) = call(
        &state,
        "PATCH",
        &format!("{SVCS}/np"),
        json!({"spec": {"type": "ClusterIP"}}),
    )
    .await;
    assert_eq!(code, 200, "{s}");
    assert!(s["spec"]["ports"][0].get("nodePort").is_none(), "{s}");
    assert_eq!(s["spec"]["clusterIP"], np_ip.as_str());
    let held = claims(&state).await;
    assert!(
        !held.iter().any(|(slot, _)| matches!(slot, Slot::Port(_))),
        "{held:?}"
    );
    assert!(held.contains(&(ip_slot(&np_ip), Some(Owner::new("default", "np")))));
    // ClusterIP → ExternalName gives the IP back.
    let (code, s) = call(
        &state,
        "PATCH",
        &format!("{SVCS}/np"),
        json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
    )
    .await;
    assert_eq!(code, 200, "{s}");
    assert!(s["spec"].get("clusterIP").is_none(), "{s}");
    assert!(
        !claims(&state)
            .await
            .iter()
            .any(|(slot, _)| *slot == ip_slot(&np_ip))
    );
    // The freed node port can be taken again.
    let (code, s) = create(
        &state,
        "np4",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30005}]}),
    )
    .await;
    assert_eq!(code, 201, "{s}");

    // Delete releases.
    let (code, _) = call(&state, "DELETE", &format!("{SVCS}/fixed"), Value::Null).await;
    assert_eq!(code, 200);
    assert!(
        !claims(&state)
            .await
            .iter()
            .any(|(slot, _)| *slot == ip_slot("10.96.0.50"))
    );
    let (code, s) = create(&state, "dup", json!({"clusterIP": "10.96.0.50"})).await;
    assert_eq!(code, 201, "{s}");
}

#[tokio::test]
async fn headless_external_name_load_balancer_and_dual_stack() {
    let dir = tempfile::tempdir().unwrap();
    let state = api_on(
        embedded(&dir),
        &net("10.96.0.0/24,fd00:10:96::/112", "30000-30100"),
    )
    .await;
    let (code, s) = create(
        &state,
        "hl",
        json!({"clusterIP": "None", "selector": {"app": "x"}}),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
    let (code, s) = create(
        &state,
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert!(
        s["spec"].get("clusterIP").is_none() && s["spec"].get("ipFamilies").is_none(),
        "{s}"
    );
    let (code, s) = create(&state, "ext2", json!({"type": "ExternalName"})).await;
    assert_eq!(code, 422);
    assert_eq!(s["details"]["causes"][0]["field"], "spec.externalName");

    let (code, s) = create(
        &state,
        "ds",
        json!({"ipFamilyPolicy": "PreferDualStack", "selector": {"a": "b"}}),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let ips = s["spec"]["clusterIPs"].as_array().unwrap();
    assert!(
        ips[0].as_str().unwrap().starts_with("10.96.0.")
            && ips[1].as_str().unwrap().starts_with("fd00:10:96::"),
        "{s}"
    );
    // Back to single stack releases the second address.
    let v6 = ips[1].as_str().unwrap().to_string();
    let (code, s) = call(
        &state,
        "PATCH",
        &format!("{SVCS}/ds"),
        json!({"spec": {"ipFamilyPolicy": "SingleStack"}}),
    )
    .await;
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["spec"]["clusterIPs"].as_array().unwrap().len(), 1);
    assert!(
        !claims(&state)
            .await
            .iter()
            .any(|(slot, _)| *slot == ip_slot(&v6))
    );

    // LoadBalancer: node ports, and a health check port with externalTrafficPolicy Local.
    let (code, s) = create(
        &state,
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert!(s["spec"]["ports"][0]["nodePort"].as_i64().is_some(), "{s}");
    let hc = s["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!(
        claims(&state)
            .await
            .iter()
            .any(|(slot, _)| *slot == Slot::Port(hc as u16))
    );
    let (code, s) = create(
        &state,
        "lb2",
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false}),
    )
    .await;
    assert_eq!(code, 201, "{s}");
    assert!(s["spec"]["ports"][0].get("nodePort").is_none(), "{s}");
    let (code, _) = call(&state, "DELETE", &format!("{SVCS}/lb"), Value::Null).await;
    assert_eq!(code, 200);
    assert!(
        !claims(&state)
            .await
            .iter()
            .any(|(slot, _)| *slot == Slot::Port(hc as u16))
    );

    // A single-stack cluster refuses dual stack in kube-apiserver's words.
    let dir2 = tempfile::tempdir().unwrap();
    let v4 = api_on(embedded(&dir2), &net("10.96.0.0/24", "30000-30100")).await;
    let (code, s) = create(&v4, "req", json!({"ipFamilyPolicy": "RequireDualStack"})).await;
    assert_eq!(code, 422);
    assert_eq!(
        s["message"],
        "Service \"req\" is invalid: spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_creates_get_fifty_addresses_also_across_servers() {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(&dir);
    // A small range makes collisions likely; two servers share the store.
    let n = net("10.96.0.0/26", "30000-30059");
    let a = api_on(store.clone(), &n).await;
    let b = api_on(store.clone(), &n).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let state = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            create(&state, &format!("s{i}"), json!({"type": "NodePort"})).await
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for t in tasks {
        let (code, s) = t.await.unwrap();
        assert_eq!(code, 201, "{s}");
        ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string());
        ports.insert(s["spec"]["ports"][0]["nodePort"].as_i64().unwrap());
    }
    assert_eq!(ips.len(), 50);
    assert_eq!(ports.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_etcd_never_share_an_address() {
    use skiff_apiserver::storage::etcd::EtcdStore;
    use skiff_apiserver::storage::etcd_server::EtcdServer;
    let dir = tempfile::tempdir().unwrap();
    let server = EtcdServer::start(dir.path())
        .await
        .expect("etcd for the test");
    let n = net("10.96.0.0/26", "30000-30100");
    let mut states = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(
            EtcdStore::connect(&[server.endpoint().to_string()])
                .await
                .unwrap(),
        );
        states.push(api_on(store, &n).await);
    }
    let mut tasks = Vec::new();
    for i in 0..40 {
        let state = states[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            create(&state, &format!("e{i}"), json!({})).await
        }));
    }
    let mut ips = HashSet::new();
    for t in tasks {
        let (code, s) = t.await.unwrap();
        assert_eq!(code, 201, "{s}");
        ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string());
    }
    assert_eq!(ips.len(), 40);
    // One server sees the other's claim.
    let (_, s) = call(&states[0], "GET", &format!("{SVCS}/e1"), Value::Null).await;
    let ip = s["spec"]["clusterIP"].as_str().unwrap();
    let (code, _) = create(&states[0], "copy", json!({"clusterIP": ip})).await;
    assert_eq!(code, 422);
}

#[tokio::test]
async fn allocations_survive_a_restart_and_the_repair_loop_fixes_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let n = net("10.96.0.0/24", "30000-30100");
    let ip = {
        let state = api_on(embedded(&dir), &n).await;
        let (code, s) = create(&state, "keep", json!({"type": "NodePort"})).await;
        assert_eq!(code, 201, "{s}");
        s["spec"]["clusterIP"].as_str().unwrap().to_string()
    };
    let state = api_on(embedded(&dir), &n).await;
    let (code, _) = create(&state, "again", json!({"clusterIP": ip})).await;
    assert_eq!(code, 422, "the restarted server knows the address is taken");

    // A Service whose claim vanished gets it back.
    let slot = ip_slot(&ip);
    state.store.delete(&slot.key(), None).await.unwrap();
    let report = repair_once(&state, Duration::from_secs(60)).await.unwrap();
    assert_eq!(report.claimed, vec![slot]);
    assert!(
        claims(&state)
            .await
            .contains(&(slot, Some(Owner::new("default", "keep"))))
    );

    // A claim no Service holds is a leak: kept while young, released once old.
    let leak = ip_slot("10.96.0.200");
    state
        .services
        .ledger()
        .claim(leak, &Owner::new("default", "ghost"), false)
        .await
        .unwrap();
    let report = repair_once(&state, Duration::from_secs(60)).await.unwrap();
    assert!(
        report.released.is_empty(),
        "a young claim may be a create in flight"
    );
    let report = repair_once(&state, Duration::ZERO).await.unwrap();
    assert_eq!(report.released, vec![leak]);
    assert!(!claims(&state).await.iter().any(|(s, _)| *s == leak));
    // What Services hold is never released.
    assert!(
        claims(&state)
            .await
            .contains(&(slot, Some(Owner::new("default", "keep"))))
    );
}

#[tokio::test]
async fn built_in_services_take_their_fixed_addresses_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = api_on(embedded(&dir), &ServiceNetwork::default()).await;
    system_services::reserve(&state).await.unwrap();
    // Nobody else can take 10.96.0.10, even before the Service exists.
    let (code, _) = create(&state, "thief", json!({"clusterIP": "10.96.0.10"})).await;
    assert_eq!(code, 422);
    let me = ApiEndpoint {
        address: "192.0.2.10".parse().unwrap(),
        port: 6443,
    };
    let other = ApiEndpoint {
        address: "192.0.2.11".parse().unwrap(),
        port: 6443,
    };
    system_services::reconcile_once(&state, other)
        .await
        .unwrap();
    system_services::reconcile_once(&state, me).await.unwrap();
    let (_, k) = call(
        &state,
        "GET",
        SVCS.to_string()
            .as_str()
            .replace("services", "services/kubernetes")
            .as_str(),
        Value::Null,
    )
    .await;
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(
        k["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    let (_, dns) = call(
        &state,
        "GET",
        "/api/v1/namespaces/kube-system/services/kube-dns",
        Value::Null,
    )
    .await;
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(dns["metadata"]["labels"]["k8s-app"], "kube-dns");
    assert_eq!(dns["spec"]["selector"], json!({"k8s-app": "kube-dns"}));
    let ports: Vec<(String, i64, String)> = dns["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["port"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("dns".to_string(), 53, "UDP".to_string()),
            ("dns-tcp".into(), 53, "TCP".into()),
            ("metrics".into(), 9153, "TCP".into())
        ]
    );
    // Both live servers are in the endpoints and the slice.
    let (_, ep) = call(
        &state,
        "GET",
        "/api/v1/namespaces/default/endpoints/kubernetes",
        Value::Null,
    )
    .await;
    assert_eq!(
        ep["subsets"][0]["addresses"],
        json!([{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}])
    );
    assert_eq!(
        ep["subsets"][0]["ports"],
        json!([{"name": "https", "port": 6443, "protocol": "TCP"}])
    );
    let (_, es) = call(
        &state,
        "GET",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
        Value::Null,
    )
    .await;
    assert_eq!(
        es["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(es["addressType"], "IPv4");
    assert_eq!(es["endpoints"].as_array().unwrap().len(), 2);
    // A server that stops drops out.
    system_services::drop_lease(&state, other).await;
    let (_, ep) = call(
        &state,
        "GET",
        "/api/v1/namespaces/default/endpoints/kubernetes",
        Value::Null,
    )
    .await;
    assert_eq!(ep["subsets"][0]["addresses"], json!([{"ip": "192.0.2.10"}]));
    // Deleted built-in Services come back.
    let (code, _) = call(
        &state,
        "DELETE",
        "/api/v1/namespaces/kube-system/services/kube-dns",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    system_services::reconcile_once(&state, me).await.unwrap();
    let (code, dns) = call(
        &state,
        "GET",
        "/api/v1/namespaces/kube-system/services/kube-dns",
        Value::Null,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(dns["spec"]["clusterIP"], "10.96.0.10");
}

/// A server on loopback (the single-node default) is out of every pod's reach and
/// Kubernetes refuses loopback endpoints: the `kubernetes` Service is still made, its
/// endpoints list no address, and each round succeeds (nothing rewritten in a loop).
#[tokio::test]
async fn a_loopback_server_leaves_the_kubernetes_endpoints_empty() {
    let dir = tempfile::tempdir().unwrap();
    let state = api_on(embedded(&dir), &ServiceNetwork::default()).await;
    system_services::reserve(&state).await.unwrap();
    let me = ApiEndpoint {
        address: "127.0.0.1".parse().unwrap(),
        port: 6443,
    };
    system_services::reconcile_once(&state, me).await.unwrap();
    let get = |path: &'static str| {
        let state = &state;
        async move { call(state, "GET", path, Value::Null).await }
    };
    let (code, ep) = get("/api/v1/namespaces/default/endpoints/kubernetes").await;
    assert_eq!(code, 200, "{ep}");
    assert!(
        ep["subsets"].as_array().is_none_or(|s| s.is_empty()),
        "{ep}"
    );
    let (code, es) =
        get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes").await;
    assert_eq!(code, 200, "{es}");
    assert!(
        es["endpoints"].as_array().is_none_or(|e| e.is_empty()),
        "{es}"
    );
    let rv = (
        ep["metadata"]["resourceVersion"].clone(),
        es["metadata"]["resourceVersion"].clone(),
    );
    system_services::reconcile_once(&state, me).await.unwrap();
    let (_, ep) = get("/api/v1/namespaces/default/endpoints/kubernetes").await;
    let (_, es) =
        get("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes").await;
    assert_eq!(
        rv,
        (
            ep["metadata"]["resourceVersion"].clone(),
            es["metadata"]["resourceVersion"].clone()
        ),
        "a second round changes nothing"
    );
    let (code, k) = get("/api/v1/namespaces/default/services/kubernetes").await;
    assert_eq!(code, 200);
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
}
