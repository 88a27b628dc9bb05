//! Unit tests for the DaemonSet planner.

use super::*;
use serde_json::json;

const NOW: i64 = 10_000;

fn fit(run: bool, stay: bool) -> NodeFit {
    NodeFit {
        should_run: run,
        should_continue_running: stay,
    }
}

/// A pod with `hash`, Ready (and available) when `ready`, optionally terminating or failed.
fn pod(name: &str, hash: &str, ready: bool, phase: &str, deleting: bool) -> Arc<Pod> {
    let ts = |s: i64| Timestamp::from_second(s).unwrap().to_string();
    let mut v = json!({
        "metadata": {"name": name, "labels": {CONTROLLER_REVISION_HASH: hash}},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": ts(1)}]},
    });
    if deleting {
        v["metadata"]["deletionTimestamp"] = json!(ts(2));
    }
    Arc::new(serde_json::from_value(v).unwrap())
}

fn ready(name: &str, hash: &str) -> Arc<Pod> {
    pod(name, hash, true, "Running", false)
}

fn node(name: &str, f: NodeFit, pods: Vec<Arc<Pod>>) -> NodeDaemons {
    NodeDaemons {
        name: name.into(),
        fit: f,
        pods,
    }
}

fn names(pods: &[Arc<Pod>]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect()
}

fn rolling(unavailable: i32, surge: i32) -> UpdateStrategy {
    UpdateStrategy::RollingUpdate {
        max_unavailable: Some(IntOrString::Int(unavailable)),
        max_surge: Some(IntOrString::Int(surge)),
    }
}

#[test]
fn manage_creates_deletes_and_trims() {
    let nodes = vec![
        node("empty", fit(true, true), vec![]),
        node("has", fit(true, true), vec![ready("a", "h")]),
        node(
            "dup",
            fit(true, true),
            vec![ready("old", "h"), ready("young", "h")],
        ),
        node(
            "tainted-noschedule",
            fit(false, true),
            vec![ready("b", "h")],
        ),
        node("unlabelled", fit(false, false), vec![ready("c", "h")]),
        node(
            "failed",
            fit(true, true),
            vec![pod("f", "h", false, "Failed", false)],
        ),
        node(
            "going",
            fit(true, true),
            vec![pod("g", "h", true, "Running", true)],
        ),
        node("other", fit(false, false), vec![]),
    ];
    let plan = manage(&nodes, "h", false);
    assert_eq!(plan.create_on, ["empty", "failed"]);
    assert_eq!(names(&plan.delete), ["young", "c", "f"]);
}

#[test]
fn manage_with_surge_keeps_one_old_and_one_new() {
    let nodes = vec![node(
        "n",
        fit(true, true),
        vec![
            ready("o1", "old"),
            ready("n1", "new"),
            ready("o2", "old"),
            ready("n2", "new"),
        ],
    )];
    assert_eq!(names(&manage(&nodes, "new", true).delete), ["o2", "n2"]);
    assert_eq!(
        names(&manage(&nodes, "new", false).delete),
        ["n1", "o2", "n2"]
    );
}

#[test]
fn rolling_update_respects_max_unavailable() {
    let now = Timestamp::from_second(NOW).unwrap();
    let old_nodes: Vec<NodeDaemons> = (0..5)
        .map(|i| {
            node(
                &format!("n{i}"),
                fit(true, true),
                vec![ready(&format!("p{i}"), "old")],
            )
        })
        .collect();
    let plan = rolling_update(&old_nodes, "new", &rolling(2, 0), 5, 0, now);
    assert_eq!(names(&plan.delete), ["p0", "p1"]);
    assert!(plan.create_on.is_empty());

    // One node already replaced but not yet ready, another node has nothing: budget spent.
    let mut nodes = old_nodes.clone();
    nodes[0].pods = vec![pod("new0", "new", false, "Running", false)];
    nodes[1].pods = vec![];
    assert!(rolling_update(&nodes, "new", &rolling(2, 0), 5, 0, now).is_empty());
    // An unavailable old pod is replaced without counting against the budget.
    nodes[2].pods = vec![pod("sick", "old", false, "Running", false)];
    let plan = rolling_update(&nodes, "new", &rolling(2, 0), 5, 0, now);
    assert_eq!(names(&plan.delete), ["sick"]);
    // Once the new pod is available the next old one may go.
    nodes[0].pods = vec![ready("new0", "new")];
    let plan = rolling_update(&nodes, "new", &rolling(2, 0), 5, 0, now);
    assert_eq!(names(&plan.delete), ["sick", "p3"]);
    // Percentages round up; OnDelete never replaces.
    let pct = UpdateStrategy::RollingUpdate {
        max_unavailable: Some(IntOrString::String("30%".into())),
        max_surge: None,
    };
    assert_eq!(update_budget(&pct, 5), (0, 2));
    assert!(rolling_update(&old_nodes, "new", &UpdateStrategy::OnDelete, 5, 0, now).is_empty());
}

#[test]
fn rolling_update_with_surge_starts_new_pods_first() {
    let now = Timestamp::from_second(NOW).unwrap();
    let mut nodes: Vec<NodeDaemons> = (0..3)
        .map(|i| {
            node(
                &format!("n{i}"),
                fit(true, true),
                vec![ready(&format!("p{i}"), "old")],
            )
        })
        .collect();
    let plan = rolling_update(&nodes, "new", &rolling(0, 1), 3, 0, now);
    assert_eq!(plan.create_on, ["n0"]);
    assert!(plan.delete.is_empty());
    // The surged pod is not ready: nothing else moves.
    nodes[0]
        .pods
        .push(pod("new0", "new", false, "Running", false));
    assert!(rolling_update(&nodes, "new", &rolling(0, 1), 3, 0, now).is_empty());
    // Ready: the old pod goes and the next node surges.
    nodes[0].pods[1] = ready("new0", "new");
    let plan = rolling_update(&nodes, "new", &rolling(0, 1), 3, 0, now);
    assert_eq!(names(&plan.delete), ["p0"]);
    assert_eq!(plan.create_on, ["n1"]);
}

#[test]
fn counts_judge_each_node_by_its_oldest_pod() {
    let now = Timestamp::from_second(NOW).unwrap();
    let nodes = vec![
        node("a", fit(true, true), vec![ready("a", "new")]),
        node(
            "b",
            fit(true, true),
            vec![ready("b", "old"), ready("b2", "new")],
        ),
        node(
            "c",
            fit(true, true),
            vec![pod("c", "new", false, "Pending", false)],
        ),
        node("d", fit(true, true), vec![]),
        node("e", fit(false, true), vec![ready("e", "new")]),
        node("f", fit(false, false), vec![]),
    ];
    let c = counts(&nodes, "new", 0, now);
    assert_eq!(
        c,
        DaemonCounts {
            desired: 4,
            current: 3,
            misscheduled: 1,
            ready: 2,
            available: 2,
            updated: 2,
        }
    );
    assert_eq!(c.unavailable(), 2);
    // minReadySeconds not yet elapsed: ready but not available.
    let c = counts(&nodes, "new", 100_000, now);
    assert_eq!((c.ready, c.available), (2, 0));
}
