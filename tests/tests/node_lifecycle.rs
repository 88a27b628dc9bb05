//! A node lost and found again, on two real nodes with a short grace period: the lost
//! node goes Unknown and is tainted, its pod leaves the Service's endpoints within the
//! grace period, is evicted after its short `tolerationSeconds` (10 s) and replaced on the healthy
//! node; when the agent returns the node is Ready and untainted again and the evicted
//! pod's container is gone from it.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{apply, json};
use skiff_e2e::{Cluster, can_run_nodes, eventually, ok};

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 10}
      containers:
      - name: c
        image: busybox:1.36
        imagePullPolicy: Never
        command: [sleep, "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
"#;

fn node_json(c: &Cluster, name: &str) -> Value {
    json(c, &["get", "node", name])
}

fn ready_status(node: &Value) -> String {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn taints(node: &Value) -> Vec<String> {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}:{}",
                t["key"].as_str().unwrap_or(""),
                t["effect"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// The ready endpoint addresses of the `web` Service.
fn ready_endpoints(c: &Cluster) -> Vec<String> {
    let slices = json(
        c,
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ],
    );
    slices["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

fn web_pods(c: &Cluster) -> Vec<Value> {
    json(c, &["get", "pods", "-l", "app=web"])["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_lost_node_is_tainted_its_pod_replaced_and_it_returns_clean() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    // Nodes registering (NotReady until they have a pod CIDR) take from the zone's taint
    // budget too; a faster rate keeps the test's timings short.
    let c = Cluster::start_with_args(&[
        // Longer than the kubelet's 10 s Lease renewal, or healthy nodes would flap.
        "--node-monitor-grace-period",
        "15s",
        "--node-monitor-period",
        "1s",
        "--node-eviction-rate",
        "1",
    ])
    .unwrap();
    let healthy = c.start_node("e2e-life-a", 80).unwrap();
    let mut lost = c.start_node("e2e-life-b", 81).unwrap();
    let (a, b) = (healthy.name.clone(), lost.name.clone());

    // The pod goes to b: a is cordoned while it is placed.
    ok(&c.kubectl(&["cordon", &a]));
    apply(&c, APP);
    let first = eventually(Duration::from_secs(60), || {
        let pods = web_pods(&c);
        let p = pods.first()?.clone();
        (p["status"]["phase"] == "Running" && !ready_endpoints(&c).is_empty()).then_some(p)
    })
    .expect("web pod running with an endpoint");
    assert_eq!(first["spec"]["nodeName"], b.as_str());
    let first_name = first["metadata"]["name"].as_str().unwrap().to_string();
    let first_ip = first["status"]["podIP"].as_str().unwrap().to_string();
    let container = first["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(lost.container_pid(&container).is_some());
    ok(&c.kubectl(&["uncordon", &a]));

    // b's agent dies (its container keeps running, as a cut-off machine's would).
    lost.kill9();
    let node = eventually(Duration::from_secs(40), || {
        let n = node_json(&c, &b);
        (ready_status(&n) == "Unknown").then_some(n)
    })
    .expect("b goes Unknown");
    let ready = node["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "NodeStatusUnknown", "{ready}");
    assert_eq!(
        ready["message"], "Kubelet stopped posting node status.",
        "{ready}"
    );
    eventually(Duration::from_secs(20), || {
        let t = taints(&node_json(&c, &b));
        (t.contains(&"node.kubernetes.io/unreachable:NoExecute".into())
            && t.contains(&"node.kubernetes.io/unreachable:NoSchedule".into()))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("b not tainted unreachable: {}", node_json(&c, &b)));
    // Its endpoint leaves the Service at once: the pod is not Ready well before its
    // 10 s toleration runs out and it is evicted.
    let still_there = eventually(Duration::from_secs(10), || {
        let pod = c.pod_json(&first_name)?;
        (!ready_endpoints(&c).contains(&first_ip)).then_some(pod)
    })
    .expect("the lost pod's endpoint withdrawn");
    assert!(
        still_there["metadata"]["deletionTimestamp"].is_null(),
        "endpoint withdrawn only with the eviction: {still_there}"
    );
    // After 10 s of toleration the pod is evicted and replaced on a.
    let replacement = eventually(Duration::from_secs(60), || {
        web_pods(&c).into_iter().find(|p| {
            p["metadata"]["name"] != first_name.as_str()
                && p["status"]["phase"] == "Running"
                && p["spec"]["nodeName"] == a.as_str()
        })
    })
    .unwrap_or_else(|| {
        let summary: Vec<String> = web_pods(&c)
            .iter()
            .map(|p| {
                format!(
                    "{} node={} phase={} deleting={}",
                    p["metadata"]["name"],
                    p["spec"]["nodeName"],
                    p["status"]["phase"],
                    !p["metadata"]["deletionTimestamp"].is_null()
                )
            })
            .collect();
        panic!(
            "no replacement running on a: {summary:?}\nnode b: {}",
            node_json(&c, &b)
        )
    });
    let old = c
        .pod_json(&first_name)
        .expect("the evicted pod waits for its node");
    assert!(!old["metadata"]["deletionTimestamp"].is_null(), "{old}");
    let new_ip = replacement["status"]["podIP"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(20), || {
        ready_endpoints(&c).contains(&new_ip).then_some(())
    })
    .expect("the replacement in the Service's endpoints");
    // b's agent returns: b is Ready, untainted, and the evicted pod's container is gone.
    lost.restart(&c).unwrap();
    eventually(Duration::from_secs(30), || {
        let n = node_json(&c, &b);
        (ready_status(&n) == "True" && taints(&n).is_empty()).then_some(())
    })
    .expect("b Ready and untainted again");
    eventually(Duration::from_secs(30), || {
        (c.pod_json(&first_name).is_none() && lost.container_pid(&container).is_none())
            .then_some(())
    })
    .expect("the evicted pod cleaned up on b");
    // The replacement kept running on a throughout.
    let now = web_pods(&c);
    assert_eq!(now.len(), 1, "{now:#?}");
    assert_eq!(now[0]["metadata"]["name"], replacement["metadata"]["name"]);
    drop(healthy);
}
