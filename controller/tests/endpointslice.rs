//! EndpointSlices, Endpoints and mirroring against a real API server: pods are created bound
//! to fake Nodes and their IPs and readiness set through the status subresource.

mod common;

use std::time::{Duration, Instant};

use common::{TestCluster, eventually};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_controller::ControllerKind;

const T: Duration = Duration::from_secs(30);
const NS: &str = "default";

async fn cluster() -> TestCluster {
    let mut c = TestCluster::start().await;
    c.add_nodes(&["n1"]).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let zone = json!({"metadata": {"labels": {"topology.kubernetes.io/zone": "zone-a"}}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(&zone))
        .await
        .unwrap();
    c.start_controllers(&[
        ControllerKind::EndpointSlice,
        ControllerKind::Endpoint,
        ControllerKind::EndpointSliceMirroring,
    ]);
    c
}

async fn create<K>(client: &Client, v: Value) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    let obj: K = serde_json::from_value(v).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap()
}

async fn service(client: &Client, name: &str, spec: Value) {
    create::<Service>(client, json!({"metadata": {"name": name}, "spec": spec})).await;
}

/// A pod bound to n1 with `port` named `http`, then given `ip` and readiness.
async fn pod(client: &Client, name: &str, app: &str, ip: &str, port: i32, ready: bool) {
    create::<Pod>(
        client,
        json!({"metadata": {"name": name, "labels": {"app": app}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                "ports": [{"name": "http", "containerPort": port}]}]}}),
    )
    .await;
    set_ready(client, name, Some(ip), ready).await;
}

async fn set_ready(client: &Client, name: &str, ip: Option<&str>, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let flag = if ready { "True" } else { "False" };
    let mut status = json!({"status": {"phase": "Running",
        "conditions": [{"type": "Ready", "status": flag, "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}});
    if let Some(ip) = ip {
        status["status"]["podIP"] = json!(ip);
        status["status"]["podIPs"] = json!([{"ip": ip}]);
    }
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn slices(client: &Client, svc: &str) -> Vec<EndpointSlice> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap()
        .items
}

/// `(address, ready, serving, terminating)` of every endpoint of the Service, sorted.
async fn endpoints_of(client: &Client, svc: &str) -> Vec<(String, bool, bool, bool)> {
    let mut out: Vec<_> = slices(client, svc)
        .await
        .iter()
        .flat_map(|s| s.endpoints.clone())
        .map(|e| {
            let c = e.conditions.unwrap_or_default();
            (
                e.addresses[0].clone(),
                c.ready.unwrap_or(false),
                c.serving.unwrap_or(false),
                c.terminating.unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn slices_follow_pods_readiness_and_deletion() {
    let c = cluster().await;
    let client = &c.client;
    service(
        client,
        "web",
        json!({"selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
    )
    .await;
    pod(client, "web-a", "web", "10.244.0.5", 8080, true).await;
    pod(client, "web-b", "web", "10.244.0.6", 8080, false).await;
    // A pod without an IP is no endpoint.
    create::<Pod>(
        client,
        json!({"metadata": {"name": "web-c", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;

    let want = vec![
        ("10.244.0.5".to_string(), true, true, false),
        ("10.244.0.6".to_string(), false, false, false),
    ];
    eventually(T, "two endpoints", || async {
        (endpoints_of(client, "web").await == want).then_some(())
    })
    .await;
    let s = slices(client, "web").await;
    assert_eq!(s.len(), 1);
    let slice = &s[0];
    assert!(slice.name_any().starts_with("web-"), "{}", slice.name_any());
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(
        slice.labels()["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    let svc: Service = Api::namespaced(client.clone(), NS)
        .get("web")
        .await
        .unwrap();
    assert_eq!(slice.owner_references()[0].uid, svc.uid().unwrap());
    let ports = slice.ports.clone().unwrap();
    assert_eq!(
        (ports[0].name.as_deref(), ports[0].port),
        (Some("http"), Some(8080))
    );
    let ep = slice
        .endpoints
        .iter()
        .find(|e| e.addresses[0] == "10.244.0.5")
        .unwrap();
    assert_eq!(ep.zone.as_deref(), Some("zone-a"));
    assert_eq!(ep.node_name.as_deref(), Some("n1"));
    assert_eq!(
        ep.target_ref.as_ref().unwrap().name.as_deref(),
        Some("web-a")
    );
    assert!(
        slice
            .annotations()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time")
    );
    let slice_name = slice.name_any();

    // A readiness flip shows within a second, in the same slice.
    let flipped = Instant::now();
    set_ready(client, "web-b", None, true).await;
    eventually(T, "web-b ready", || async {
        let eps = endpoints_of(client, "web").await;
        eps.iter().any(|e| e.0 == "10.244.0.6" && e.1).then_some(())
    })
    .await;
    let took = flipped.elapsed();
    assert!(took < Duration::from_secs(1), "readiness took {took:?}");
    assert_eq!(slices(client, "web").await[0].name_any(), slice_name);

    // Deleting a bound pod leaves it terminating (serving, not ready) until it is gone.
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    pods.delete("web-a", &Default::default()).await.unwrap();
    eventually(T, "web-a terminating", || async {
        let eps = endpoints_of(client, "web").await;
        eps.contains(&("10.244.0.5".into(), false, true, true))
            .then_some(())
    })
    .await;

    // The legacy Endpoints agree: web-b ready, web-a no longer listed as ready.
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), NS);
    eventually(T, "endpoints object", || async {
        let e = eps.get("web").await.ok()?;
        let ss = e.subsets.clone()?;
        let ready: Vec<String> = ss
            .iter()
            .flat_map(|s| s.addresses.clone().unwrap_or_default())
            .map(|a| a.ip)
            .collect();
        let port = ss[0].ports.as_ref()?[0].port;
        (ready == ["10.244.0.6"] && port == 8080).then_some(())
    })
    .await;

    // Deleting the Service deletes its Endpoints (its slices go with the garbage collector).
    let services: Api<Service> = Api::namespaced(client.clone(), NS);
    services.delete("web", &Default::default()).await.unwrap();
    eventually(T, "endpoints deleted", || async {
        matches!(eps.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn publish_not_ready_named_ports_and_the_split() {
    let c = cluster().await;
    let client = &c.client;
    service(
        client,
        "db",
        json!({"selector": {"app": "db"}, "clusterIP": "None",
        "publishNotReadyAddresses": true,
        "ports": [{"name": "sql", "port": 5432, "targetPort": "http"}]}),
    )
    .await;
    pod(client, "db-0", "db", "10.244.1.1", 5432, false).await;
    pod(client, "db-1", "db", "10.244.1.2", 6432, false).await;
    eventually(T, "one slice per port set", || async {
        let s = slices(client, "db").await;
        let mut got: Vec<(i32, usize, bool)> = s
            .iter()
            .map(|s| {
                let ready = s
                    .endpoints
                    .iter()
                    .all(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true));
                (
                    s.ports.as_ref().unwrap()[0].port.unwrap(),
                    s.endpoints.len(),
                    ready,
                )
            })
            .collect();
        got.sort();
        (got == [(5432, 1, true), (6432, 1, true)]).then_some(())
    })
    .await;
    assert!(
        slices(client, "db").await[0]
            .labels()
            .contains_key("service.kubernetes.io/headless")
    );

    service(
        client,
        "big",
        json!({"selector": {"app": "big"}, "ports": [{"port": 80, "targetPort": 80}]}),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for i in 0..250 {
        let name = format!("big-{i}");
        let p: Pod =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": "big"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}))
            .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        set_ready(
            client,
            &name,
            Some(&format!("10.245.{}.{}", i / 200, i % 200 + 1)),
            true,
        )
        .await;
    }
    eventually(T, "250 endpoints in 3 slices", || async {
        let s = slices(client, "big").await;
        let mut sizes: Vec<usize> = s.iter().map(|s| s.endpoints.len()).collect();
        sizes.sort();
        (sizes == [50, 100, 100]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn selectorless_services_are_mirrored() {
    let c = cluster().await;
    let client = &c.client;
    service(
        client,
        "ext",
        json!({"ports": [{"name": "http", "port": 80}]}),
    )
    .await;
    create::<Endpoints>(
        client,
        json!({"metadata": {"name": "ext", "labels": {"team": "a"}},
            "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "notReadyAddresses": [{"ip": "192.0.2.11"}],
                "ports": [{"name": "http", "port": 8080}]}]}),
    )
    .await;
    // A slice the user manages for a selectorless Service is left alone.
    create::<EndpointSlice>(
        client,
        json!({"metadata": {"name": "ext-manual", "labels": {"kubernetes.io/service-name": "ext"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.20"]}], "ports": [{"port": 9090}]}),
    )
    .await;
    eventually(T, "mirrored slice", || async {
        let s = slices(client, "ext").await;
        let m = s.iter().find(|s| {
            s.labels()
                .get("endpointslice.kubernetes.io/managed-by")
                .map(String::as_str)
                == Some("endpointslicemirroring-controller.k8s.io")
        })?;
        let ready: Vec<(String, Option<bool>)> = m
            .endpoints
            .iter()
            .map(|e| {
                (
                    e.addresses[0].clone(),
                    e.conditions.as_ref().and_then(|c| c.ready),
                )
            })
            .collect();
        (ready
            == [
                ("192.0.2.10".into(), Some(true)),
                ("192.0.2.11".into(), Some(false)),
            ]
            && m.ports.as_ref()?[0].port == Some(8080)
            && m.labels().get("team").map(String::as_str) == Some("a"))
        .then_some(())
    })
    .await;
    // The mirrored slice follows the Endpoints.
    let eps: Api<Endpoints> = Api::namespaced(client.clone(), NS);
    let patch = json!({"subsets": [{"addresses": [{"ip": "192.0.2.12"}], "ports": [{"name": "http", "port": 8080}]}]});
    eps.patch("ext", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(T, "mirrored update", || async {
        let s = slices(client, "ext").await;
        let addrs: Vec<String> = s
            .iter()
            .flat_map(|s| s.endpoints.clone())
            .map(|e| e.addresses[0].clone())
            .collect();
        (addrs.len() == 2
            && addrs.contains(&"192.0.2.12".to_string())
            && addrs.contains(&"192.0.2.20".to_string()))
        .then_some(())
    })
    .await;
    let manual: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    assert_eq!(
        manual.get("ext-manual").await.unwrap().endpoints[0].addresses,
        ["192.0.2.20"]
    );
    // The Endpoints controller leaves user-managed Endpoints alone.
    assert_eq!(
        eps.get("ext").await.unwrap().subsets.unwrap()[0]
            .addresses
            .as_ref()
            .unwrap()[0]
            .ip,
        "192.0.2.12"
    );
}
