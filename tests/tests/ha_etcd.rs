//! Two `skiff server`s on one etcd: one scheduler and one controller-manager lead through
//! their Leases, so every pod is created once and bound once; when the leader is killed the
//! other server's take over.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{apply, json, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, eventually, ok};

fn holder(c: &Cluster, lease: &str) -> Option<String> {
    let l = json(c, &["get", "lease", "-n", "kube-system", lease]);
    l["spec"]["holderIdentity"].as_str().map(str::to_string)
}

/// How many `Scheduled` events each pod of `selector`'s Deployment got.
fn scheduled_events(c: &Cluster) -> HashMap<String, u64> {
    let events = json(
        c,
        &["get", "events", "--field-selector", "reason=Scheduled"],
    );
    let mut per_pod = HashMap::new();
    for e in events["items"].as_array().into_iter().flatten() {
        let pod = e["involvedObject"]["name"].as_str().unwrap_or_default();
        if pod.starts_with("web-") {
            *per_pod.entry(pod.to_string()).or_default() += e["count"].as_u64().unwrap_or(1);
        }
    }
    per_pod
}

fn deployment(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        image: busybox:1.36\n        resources: {{requests: {{cpu: 10m, memory: 8Mi}}}}\n"
    )
}

#[test]
fn two_servers_on_one_etcd_schedule_and_reconcile_once() {
    let mut first = Cluster::start(Backend::Etcd).unwrap();
    let second = first.start_peer().unwrap();
    // The nodes talk to the second server, which outlives the first.
    let _nodes = second.hollow_nodes(3, "ha").unwrap();
    let leaders: Vec<String> = ["kube-scheduler", "skiff-controller-manager"]
        .iter()
        .map(|l| {
            eventually(Duration::from_secs(30), || holder(&second, l))
                .unwrap_or_else(|| panic!("{l} never held"))
        })
        .collect();

    // Created through one server, read through the other.
    apply(&second, &deployment(20));
    let pods = wait_ready_pods(&first, "app=web", 20, 90);
    let rs = json(&first, &["get", "rs", "-l", "app=web"]);
    assert_eq!(rs["items"].as_array().unwrap().len(), 1, "one ReplicaSet");
    let per_pod = eventually(Duration::from_secs(10), || {
        let m = scheduled_events(&first);
        (m.len() == 20).then_some(m)
    })
    .expect("a Scheduled event for every pod");
    assert!(
        per_pod.values().all(|n| *n == 1),
        "a pod was scheduled twice: {per_pod:?}"
    );
    assert!(pods.iter().all(|p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| n.starts_with("ha-"))
    }));

    // The leaders die with their server; the other server's take over within the lease.
    let first_log = first.server_log();
    first.kill9();
    for (lease, old) in ["kube-scheduler", "skiff-controller-manager"]
        .iter()
        .zip(&leaders)
    {
        let taken = eventually(Duration::from_secs(45), || {
            holder(&second, lease).filter(|h| h != old)
        });
        eprintln!("{lease}: {old} -> {taken:?}");
        // When the second server already led, nothing changes hands.
        let log = second.server_log();
        assert!(
            taken.is_some() || log.contains(&format!("identity={old}")),
            "{lease} was not taken over from {old}:\n{first_log}\n{log}"
        );
    }
    ok(&second.kubectl(&["scale", "deploy", "web", "--replicas=30"]));
    wait_ready_pods(&second, "app=web", 30, 90);
}
