//! Tests for the EndpointSlice plan: splitting, in-place updates, placeholders, port sets.

use super::*;
use serde_json::json;

fn service(extra: serde_json::Value) -> Service {
    let mut v = json!({"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid"},
        "spec": {"selector": {"app": "web"}, "ipFamilies": ["IPv4"],
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}});
    for (k, val) in extra.as_object().unwrap() {
        v["spec"][k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn pod(i: usize, port: i32, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("web-{i}"), "namespace": "default", "uid": format!("uid-{i}"),
            "labels": {"app": "web"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
            "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": format!("10.0.{}.{}", i / 200, i % 200 + 1),
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
    }))
    .unwrap()
}

fn node() -> Node {
    serde_json::from_value(json!({"metadata": {"name": "n1",
        "labels": {"topology.kubernetes.io/zone": "zone-a"}}}))
    .unwrap()
}

/// Applies a plan the way the API server would: names new slices, drops deleted ones.
fn apply(existing: Vec<EndpointSlice>, plan: Plan, next_id: &mut usize) -> Vec<EndpointSlice> {
    let mut by_name: BTreeMap<String, EndpointSlice> =
        existing.into_iter().map(|s| (s.name_any(), s)).collect();
    for s in plan.delete {
        by_name.remove(&s.name_any());
    }
    for s in plan.update {
        by_name.insert(s.name_any(), s);
    }
    for mut s in plan.create {
        *next_id += 1;
        s.metadata.name = Some(format!("web-{next_id}"));
        by_name.insert(s.name_any(), s);
    }
    by_name.into_values().collect()
}

fn run(svc: &Service, pods: &[Pod], existing: &[EndpointSlice]) -> Plan {
    let n = node();
    let nodes: HashMap<String, &Node> = [("n1".to_string(), &n)].into_iter().collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    plan(&Inputs {
        service: svc,
        pods: &refs,
        nodes: &nodes,
        existing,
        max_per_slice: 100,
    })
}

#[test]
fn splits_at_the_per_slice_maximum() {
    let svc = service(json!({}));
    let pods: Vec<Pod> = (0..250).map(|i| pod(i, 8080, true)).collect();
    let p = run(&svc, &pods, &[]);
    assert_eq!(p.create.len(), 3);
    let mut sizes: Vec<usize> = p.create.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100, 100]);
    let s = &p.create[0];
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(s.address_type, "IPv4");
    let labels = s.labels();
    assert_eq!(labels[SERVICE_NAME_LABEL], "web");
    assert_eq!(labels[MANAGED_BY_LABEL], CONTROLLER_NAME);
    assert_eq!(s.owner_references()[0].uid, "svc-uid");
    let ep = &s.endpoints[0];
    assert_eq!(ep.zone.as_deref(), Some("zone-a"));
    assert_eq!(ep.node_name.as_deref(), Some("n1"));
    assert_eq!(s.ports.as_ref().unwrap()[0].port, Some(8080));
}

#[test]
fn a_readiness_change_updates_one_slice_in_place() {
    let svc = service(json!({}));
    let mut pods: Vec<Pod> = (0..250).map(|i| pod(i, 8080, true)).collect();
    let mut id = 0;
    let slices = apply(Vec::new(), run(&svc, &pods, &[]), &mut id);
    assert!(run(&svc, &pods, &slices).update.is_empty(), "no-op sync");

    pods[7] = pod(7, 8080, false);
    let p = run(&svc, &pods, &slices);
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.update.len(), 1);
    let ep = p.update[0]
        .endpoints
        .iter()
        .find(|e| e.addresses == ["10.0.0.8"])
        .unwrap();
    assert_eq!(ep.conditions.as_ref().unwrap().ready, Some(false));

    // A removed pod shrinks its slice; a new one fills the gap rather than a new slice.
    let slices = apply(slices, p, &mut id);
    pods.remove(3);
    pods.push(pod(300, 8080, true));
    let p = run(&svc, &pods, &slices);
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 1);
}

#[test]
fn named_ports_make_one_slice_per_port_set() {
    let svc = service(json!({}));
    let pods = vec![pod(0, 8080, true), pod(1, 9090, true), pod(2, 8080, true)];
    let p = run(&svc, &pods, &[]);
    assert_eq!(p.create.len(), 2);
    let mut got: Vec<(Option<i32>, usize)> = p
        .create
        .iter()
        .map(|s| (s.ports.as_ref().unwrap()[0].port, s.endpoints.len()))
        .collect();
    got.sort();
    assert_eq!(got, [(Some(8080), 2), (Some(9090), 1)]);
}

#[test]
fn an_empty_service_keeps_one_placeholder() {
    let svc = service(json!({}));
    let p = run(&svc, &[], &[]);
    assert_eq!(p.create.len(), 1);
    assert!(p.create[0].endpoints.is_empty());
    let mut id = 0;
    let slices = apply(Vec::new(), p, &mut id);
    let p = run(&svc, &[], &slices);
    assert!(p.create.is_empty() && p.update.is_empty() && p.delete.is_empty());

    // The first pod reuses the placeholder instead of delete + create.
    let p = run(&svc, &[pod(0, 8080, true)], &slices);
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    assert_eq!(p.update.len(), 1);
    assert_eq!(p.update[0].name_any(), "web-1");
}

#[test]
fn terminating_and_publish_not_ready() {
    let mut dying = pod(0, 8080, true);
    dying.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        jiff::Timestamp::now(),
    ));
    let p = run(&service(json!({})), std::slice::from_ref(&dying), &[]);
    let c = p.create[0].endpoints[0].conditions.clone().unwrap();
    assert_eq!(
        (c.ready, c.serving, c.terminating),
        (Some(false), Some(true), Some(true))
    );
    let p = run(
        &service(json!({"publishNotReadyAddresses": true})),
        &[pod(1, 8080, false)],
        &[],
    );
    let c = p.create[0].endpoints[0].conditions.clone().unwrap();
    assert_eq!((c.ready, c.serving), (Some(true), Some(false)));
}

#[test]
fn slices_of_another_owner_or_family_are_replaced() {
    let svc = service(json!({}));
    let mut foreign = new_slice(&svc, Family::V4, Vec::new());
    foreign.metadata.name = Some("web-old".into());
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "old-uid".into();
    let mut v6 = new_slice(&svc, Family::V6, Vec::new());
    v6.metadata.name = Some("web-v6".into());
    let p = run(&svc, &[pod(0, 8080, true)], &[foreign, v6]);
    let deleted: BTreeSet<String> = p.delete.iter().map(|s| s.name_any()).collect();
    assert_eq!(
        deleted,
        ["web-old".to_string(), "web-v6".to_string()].into()
    );
    assert_eq!(p.create.len(), 1);
}

#[test]
fn traffic_distribution_hints_the_zone() {
    let svc = service(json!({"trafficDistribution": "PreferClose"}));
    let p = run(&svc, &[pod(0, 8080, true)], &[]);
    let hints = p.create[0].endpoints[0].hints.clone().unwrap();
    assert_eq!(hints.for_zones.unwrap()[0].name, "zone-a");
}
