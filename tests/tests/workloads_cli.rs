//! The rollout and node-maintenance verbs, from the real kubectl and from `skiff`, against a
//! real server with hollow nodes: rollout status/history/undo/restart/pause/resume, scale,
//! describe with events, the progress deadline, cordon/uncordon and drain.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{apply, deployment, json, live, pods, ready, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

const ROLLING: &str = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}";

fn revision(c: &Cluster, name: &str) -> String {
    json(c, &["get", "deploy", name])["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn replicasets(c: &Cluster, selector: &str) -> usize {
    json(c, &["get", "rs", "-l", selector])["items"]
        .as_array()
        .map_or(0, Vec::len)
}

fn env_of(p: &Value) -> &str {
    p["spec"]["containers"][0]["env"][0]["value"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn rollout_verbs_from_kubectl_and_skiff() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(2, "rv").unwrap();
    apply(&c, &deployment("ops", 3, "1", ROLLING));
    let out = ok(&c.skiff(&["rollout", "status", "deploy/ops", "--timeout=60s"]));
    assert!(out.contains("successfully rolled out"), "{out}");

    // Paused: a template change makes no new ReplicaSet until resumed.
    ok(&c.skiff(&["rollout", "pause", "deploy/ops"]));
    ok(&c.kubectl(&["set", "env", "deploy/ops", "VERSION=2"]));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        replicasets(&c, "app=ops"),
        1,
        "a paused Deployment rolled out"
    );
    let d = json(&c, &["get", "deploy", "ops"]);
    assert_eq!(d["spec"]["paused"], true);
    ok(&c.skiff(&["rollout", "resume", "deploy/ops"]));
    ok(&c.kubectl(&["rollout", "status", "deploy/ops", "--timeout=60s"]));
    let ps = wait_ready_pods(&c, "app=ops", 3, 60);
    assert!(ps.iter().all(|p| env_of(p) == "2"));
    assert_eq!(revision(&c, "ops"), "2");

    // Restart from both clients: each makes a new revision with fresh pods.
    let before: Vec<String> = ps
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    ok(&c.kubectl(&["rollout", "restart", "deploy/ops"]));
    ok(&c.kubectl(&["rollout", "status", "deploy/ops", "--timeout=60s"]));
    assert_eq!(revision(&c, "ops"), "3");
    // restartedAt has one-second resolution (as kubectl writes it): a second restart in the
    // same second would change nothing.
    std::thread::sleep(Duration::from_millis(1100));
    ok(&c.skiff(&["rollout", "restart", "deploy/ops"]));
    ok(&c.skiff(&["rollout", "status", "deploy/ops", "--timeout=60s"]));
    assert_eq!(revision(&c, "ops"), "4");
    let ps = wait_ready_pods(&c, "app=ops", 3, 60);
    assert!(
        ps.iter()
            .all(|p| !before.contains(&p["metadata"]["name"].as_str().unwrap().to_string())),
        "restart kept old pods"
    );
    let template = json(&c, &["get", "deploy", "ops"])["spec"]["template"].clone();
    assert!(
        template["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"].is_string(),
        "{template}"
    );

    // History from both clients, then undo to the first revision with skiff.
    for out in [
        ok(&c.kubectl(&["rollout", "history", "deploy/ops"])),
        ok(&c.skiff(&["rollout", "history", "deploy/ops"])),
    ] {
        assert!(out.contains("REVISION"), "{out}");
        for r in ["1", "2", "3", "4"] {
            assert!(out.lines().any(|l| l.starts_with(r)), "revision {r}: {out}");
        }
    }
    ok(&c.skiff(&["rollout", "undo", "deploy/ops", "--to-revision=1"]));
    ok(&c.skiff(&["rollout", "status", "deploy/ops", "--timeout=60s"]));
    let ps = wait_ready_pods(&c, "app=ops", 3, 60);
    assert!(ps.iter().all(|p| env_of(p) == "1"), "undo to revision 1");
    assert_eq!(revision(&c, "ops"), "5");

    // skiff scale, get and describe.
    ok(&c.skiff(&["scale", "deploy", "ops", "--replicas=5"]));
    wait_ready_pods(&c, "app=ops", 5, 60);
    // Ready pods reach the Deployment's status on its controller's next sync: wait for it as
    // a user would before reading the columns.
    ok(&c.skiff(&["rollout", "status", "deploy/ops", "--timeout=60s"]));
    let out = ok(&c.skiff(&["get", "rs,deploy"]));
    assert!(
        out.contains("deployment.apps/ops") && out.contains("replicaset.apps/ops-"),
        "{out}"
    );
    assert!(out.contains("5/5"), "{out}");
    let out = ok(&c.skiff(&["describe", "deploy", "ops"]));
    assert!(out.contains("ScalingReplicaSet"), "{out}");
    assert!(out.contains("Replicas:"), "{out}");

    // A rollout that cannot progress exceeds its deadline, and `rollout status` says so.
    let stuck = deployment("stuck", 1, "1", ROLLING).replace(
        "spec:\n  replicas: 1",
        "spec:\n  progressDeadlineSeconds: 3\n  replicas: 1",
    );
    apply(&c, &stuck);
    ok(&c.kubectl(&["rollout", "status", "deploy/stuck", "--timeout=60s"]));
    ok(&c.kubectl(&["set", "resources", "deploy/stuck", "--requests=cpu=500"]));
    let err = fails(&c.kubectl(&["rollout", "status", "deploy/stuck", "--timeout=60s"]));
    assert!(err.contains("exceeded its progress deadline"), "{err}");
    let d = json(&c, &["get", "deploy", "stuck"]);
    let progressing = d["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(progressing["status"], "False", "{progressing}");
    assert_eq!(progressing["reason"], "ProgressDeadlineExceeded");
    // The old pod keeps serving (maxUnavailable 0) beside the new one that cannot be placed.
    let ps = pods(&c, "app=stuck");
    assert_eq!(ps.iter().filter(|p| ready(p)).count(), 1, "{ps:?}");
    assert!(
        ps.iter().any(|p| p["status"]["phase"] == "Pending"),
        "{ps:?}"
    );
}

#[test]
fn drain_evicts_and_waits_from_kubectl_and_skiff() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(3, "dr").unwrap();
    apply(&c, &deployment("svc", 6, "1", ROLLING));
    wait_ready_pods(&c, "app=svc", 6, 60);
    // A bare pod: drain refuses it without --force.
    ok(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bare\nspec:\n  nodeName: dr-0\n  containers:\n  - name: c\n    image: busybox:1.36\n"),
    ));
    eventually(Duration::from_secs(30), || {
        (json(&c, &["get", "pod", "bare"])["status"]["phase"] == "Running").then_some(())
    })
    .expect("bare pod runs");
    let on = |node: &str| -> usize {
        pods(&c, "app=svc")
            .iter()
            .filter(|p| live(p) && p["spec"]["nodeName"] == node)
            .count()
    };

    let err = fails(&c.kubectl(&["drain", "dr-0", "--timeout=60s"]));
    assert!(err.contains("bare"), "{err}");
    let out = ok(&c.kubectl(&["drain", "dr-0", "--force", "--timeout=60s"]));
    assert!(
        out.contains("evicting pod") && out.contains("drained"),
        "{out}"
    );
    assert_eq!(on("dr-0"), 0, "pods left on the drained node");
    assert!(
        ok(&c.kubectl(&["get", "node", "dr-0"])).contains("SchedulingDisabled"),
        "drain cordons"
    );
    let err = fails(&c.kubectl(&["get", "pod", "bare"]));
    assert!(err.contains("NotFound"), "{err}");
    wait_ready_pods(&c, "app=svc", 6, 60);

    let out = ok(&c.skiff(&["drain", "dr-1", "--timeout=60s"]));
    assert!(out.contains("evicted") && out.contains("drained"), "{out}");
    assert_eq!(on("dr-1"), 0, "pods left on the node skiff drained");
    let ps = wait_ready_pods(&c, "app=svc", 6, 60);
    assert!(
        ps.iter().all(|p| p["spec"]["nodeName"] == "dr-2"),
        "all on the last node"
    );

    ok(&c.skiff(&["uncordon", "dr-0"]));
    ok(&c.kubectl(&["uncordon", "dr-1"]));
    let out = ok(&c.skiff(&["get", "nodes"]));
    assert!(!out.contains("SchedulingDisabled"), "{out}");
}
