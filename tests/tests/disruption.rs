//! PodDisruptionBudgets as a user meets them, against a real server with hollow nodes: the
//! budget's status in `kubectl get pdb`, a `kubectl drain` the budget blocks, and the same
//! drain once the budget allows a disruption.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{apply, deployment, json, live, pods, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

const ROLLING: &str = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

/// Waits until the controller has processed the budget and allows `want` disruptions.
fn allowed(c: &Cluster, want: i64) -> Value {
    eventually(Duration::from_secs(30), || {
        let pdb = json(c, &["get", "pdb", "guarded"]);
        let s = &pdb["status"];
        (s["observedGeneration"] == pdb["metadata"]["generation"]
            && s["disruptionsAllowed"] == want)
            .then(|| s.clone())
    })
    .unwrap_or_else(|| panic!("budget never allowed {want} disruption(s)"))
}

#[test]
fn a_budget_blocks_a_drain_until_it_allows_a_disruption() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(2, "pdb").unwrap();
    apply(&c, &deployment("guarded", 2, "1", ROLLING));
    let ps = wait_ready_pods(&c, "app=guarded", 2, 60);
    apply(
        &c,
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: guarded\nspec:\n  minAvailable: 2\n  selector:\n    matchLabels:\n      app: guarded\n",
    );
    let s = allowed(&c, 0);
    assert_eq!(
        (
            &s["expectedPods"],
            &s["desiredHealthy"],
            &s["currentHealthy"]
        ),
        (&Value::from(2), &Value::from(2), &Value::from(2))
    );
    let table = ok(&c.kubectl(&["get", "pdb", "guarded"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.contains("ALLOWED DISRUPTIONS"), "{table}");
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], &["guarded", "2", "N/A", "0"], "{table}");

    // Every eviction from the node is refused: the drain gives up at its timeout.
    let node = ps[0]["spec"]["nodeName"].as_str().unwrap().to_string();
    let out = c.kubectl(&["drain", &node, "--timeout=8s"]);
    let err = fails(&out);
    let said = format!("{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(said.contains("disruption budget"), "{said}");
    assert_eq!(
        pods(&c, "app=guarded").iter().filter(|p| live(p)).count(),
        2,
        "the budget kept both pods"
    );

    // One disruption allowed: the drain goes through, one eviction at a time, as the
    // replacements become ready on the other node.
    ok(&c.kubectl(&[
        "patch",
        "pdb",
        "guarded",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]));
    allowed(&c, 1);
    let out = ok(&c.kubectl(&["drain", &node, "--timeout=90s"]));
    assert!(out.contains("drained"), "{out}");
    let ps = wait_ready_pods(&c, "app=guarded", 2, 60);
    assert!(
        ps.iter().all(|p| p["spec"]["nodeName"] != node.as_str()),
        "no guarded pod left on the drained node"
    );
    ok(&c.kubectl(&["uncordon", &node]));
}
