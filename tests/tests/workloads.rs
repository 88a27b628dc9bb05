//! Scheduling and workload controllers end to end: a real `skiff server` (scheduler and
//! controller-manager in-process) with hollow nodes, driven by the real kubectl: replicas
//! healing and scaling, cordon, rolling updates watched by a poller, rollback and history,
//! Recreate, cascading deletion, scheduling constraints and failures, and `kill -9` of the
//! server in the middle of a rollout.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{
    AvailabilityPoller, apply, assert_within_bounds, deployment, json, live, pods, wait_ready_pods,
};
use skiff_e2e::{Backend, Cluster, eventually, fails, ok};

fn wait_pods(c: &Cluster, selector: &str, n: usize) -> Vec<Value> {
    wait_ready_pods(c, selector, n, 60)
}

const ROLLING: &str = "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}";

#[test]
fn replicas_heal_scale_and_respect_cordon() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(3, "hn").unwrap();
    apply(&c, &deployment("web", 3, "1", ROLLING));
    let ps = wait_pods(&c, "app=web", 3);
    assert!(ps.iter().all(|p| {
        p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| n.starts_with("hn-"))
    }));
    let rs = json(&c, &["get", "rs", "-l", "app=web"]);
    let rs0 = &rs["items"][0];
    assert!(
        rs0["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web-")
    );
    assert_eq!(
        rs0["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(rs0["metadata"]["ownerReferences"][0]["kind"], "Deployment");

    // A deleted pod is replaced.
    let victim = ps[0]["metadata"]["name"].as_str().unwrap().to_string();
    ok(&c.kubectl(&["delete", "pod", &victim, "--grace-period=0", "--force"]));
    let ps = wait_pods(&c, "app=web", 3);
    assert!(ps.iter().all(|p| p["metadata"]["name"] != victim.as_str()));

    // Scale 3 → 10 → 2.
    ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=10"]));
    wait_pods(&c, "app=web", 10);
    ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=2"]));
    wait_pods(&c, "app=web", 2);

    // A cordoned node takes no new pods.
    ok(&c.kubectl(&["cordon", "hn-0"]));
    ok(&c.kubectl(&["scale", "deploy", "web", "--replicas=8"]));
    let ps = wait_pods(&c, "app=web", 8);
    let on_cordoned: Vec<&Value> = ps
        .iter()
        .filter(|p| p["spec"]["nodeName"] == "hn-0")
        .collect();
    let before: usize = 2;
    assert!(
        on_cordoned.len() <= before,
        "new pods landed on the cordoned node"
    );
    let out = ok(&c.kubectl(&["get", "node", "hn-0"]));
    assert!(out.contains("SchedulingDisabled"), "{out}");
}

#[test]
fn rolling_update_stays_within_surge_and_unavailability() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(2, "ru").unwrap();
    let replicas = 4usize;
    apply(&c, &deployment("roll", replicas as u32, "1", ROLLING));
    wait_pods(&c, "app=roll", replicas);

    // A poller records, every 100 ms, how many pods exist and how many are available.
    let poller = AvailabilityPoller::start(&c, "app=roll");
    apply(&c, &deployment("roll", replicas as u32, "2", ROLLING));
    let out = ok(&c.kubectl(&["rollout", "status", "deploy/roll", "--timeout=90s"]));
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_within_bounds(&poller.finish(), replicas, 1, 1);
    let ps = wait_pods(&c, "app=roll", replicas);
    assert!(
        ps.iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "2")
    );

    // History, undo back to the first template.
    let out = ok(&c.kubectl(&["rollout", "history", "deploy/roll"]));
    assert!(out.contains('1') && out.contains('2'), "{out}");
    ok(&c.kubectl(&["rollout", "undo", "deploy/roll"]));
    ok(&c.kubectl(&["rollout", "status", "deploy/roll", "--timeout=90s"]));
    let d = json(&c, &["get", "deploy", "roll"]);
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        "1"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let ps = wait_pods(&c, "app=roll", replicas);
    assert!(
        ps.iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "1")
    );

    // Recreate: the old pods are gone before any new one exists.
    apply(&c, &deployment("rec", 2, "1", "{type: Recreate}"));
    wait_pods(&c, "app=rec", 2);
    let old: Vec<String> = pods(&c, "app=rec")
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    apply(&c, &deployment("rec", 2, "2", "{type: Recreate}"));
    let mixed = eventually(Duration::from_secs(30), || {
        let ps = pods(&c, "app=rec");
        let has_old = ps
            .iter()
            .any(|p| old.contains(&p["metadata"]["name"].as_str().unwrap().to_string()));
        let has_new = ps
            .iter()
            .any(|p| p["spec"]["containers"][0]["env"][0]["value"] == "2");
        if has_old && has_new {
            return Some(true);
        }
        (!has_old && has_new).then_some(false)
    });
    assert_eq!(mixed, Some(false), "Recreate ran old and new pods together");
}

#[test]
fn cascading_deletion_and_namespaces() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(1, "gc").unwrap();
    for (name, policy) in [
        ("bg", "background"),
        ("orph", "orphan"),
        ("fg", "foreground"),
    ] {
        apply(&c, &deployment(name, 2, "1", ROLLING));
        wait_pods(&c, &format!("app={name}"), 2);
        ok(&c.kubectl(&[
            "delete",
            "deploy",
            name,
            &format!("--cascade={policy}"),
            "--timeout=60s",
        ]));
        let sel = format!("app={name}");
        match policy {
            "orphan" => {
                std::thread::sleep(Duration::from_secs(2));
                let rs = json(&c, &["get", "rs", "-l", &sel]);
                assert_eq!(
                    rs["items"].as_array().unwrap().len(),
                    1,
                    "orphaned ReplicaSet kept"
                );
                assert!(
                    rs["items"][0]["metadata"]["ownerReferences"]
                        .as_array()
                        .is_none_or(|o| o.is_empty())
                );
                assert_eq!(
                    pods(&c, &sel).iter().filter(|p| live(p)).count(),
                    2,
                    "orphaned pods kept"
                );
            }
            _ => {
                let gone = eventually(Duration::from_secs(30), || {
                    let rs = json(&c, &["get", "rs", "-l", &sel]);
                    (rs["items"].as_array().unwrap().is_empty() && pods(&c, &sel).is_empty())
                        .then_some(())
                });
                assert!(gone.is_some(), "{policy}: dependents not removed");
            }
        }
    }
    // Deleting a namespace removes everything in it, then the namespace.
    apply(
        &c,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: doomed\n",
    );
    ok(&c.kubectl_stdin(
        &["apply", "-n", "doomed", "-f", "-"],
        Some(&deployment("inner", 2, "1", ROLLING)),
    ));
    eventually(Duration::from_secs(30), || {
        (json(&c, &["get", "pods", "-n", "doomed"])["items"]
            .as_array()
            .unwrap()
            .len()
            == 2)
            .then_some(())
    })
    .expect("pods in doomed");
    ok(&c.kubectl(&["delete", "namespace", "doomed", "--timeout=60s"]));
    let err = fails(&c.kubectl(&["get", "namespace", "doomed"]));
    assert!(err.contains("NotFound"), "{err}");
}

#[test]
fn scheduling_constraints_and_failures() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(3, "sc").unwrap();
    ok(&c.kubectl(&["label", "node", "sc-0", "disk=ssd", "zone=a"]));
    ok(&c.kubectl(&["label", "node", "sc-1", "zone=b"]));
    ok(&c.kubectl(&["label", "node", "sc-2", "zone=c"]));
    ok(&c.kubectl(&["taint", "node", "sc-2", "dedicated=gpu:NoSchedule"]));
    let pod = |name: &str, extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{group: g}}\nspec:\n  containers:\n  - name: c\n    image: busybox:1.36\n{extra}"
        )
    };
    let node_of = |name: &str| {
        eventually(Duration::from_secs(30), || {
            json(&c, &["get", "pod", name])["spec"]["nodeName"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("{name} not scheduled"))
    };
    apply(&c, &pod("ssd", "  nodeSelector: {disk: ssd}\n"));
    assert_eq!(node_of("ssd"), "sc-0");
    apply(
        &c,
        &pod(
            "tolerant",
            "  nodeSelector: {zone: c}\n  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n",
        ),
    );
    assert_eq!(node_of("tolerant"), "sc-2");
    apply(
        &c,
        &pod(
            "affine",
            "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions: [{key: zone, operator: In, values: [b]}]\n",
        ),
    );
    assert_eq!(node_of("affine"), "sc-1");
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {anti: x}}\n        topologyKey: kubernetes.io/hostname\n";
    let anti_pod = |name: &str| pod(name, anti).replace("labels: {group: g}", "labels: {anti: x}");
    apply(&c, &anti_pod("anti-1"));
    apply(&c, &anti_pod("anti-2"));
    let (a1, a2) = (node_of("anti-1"), node_of("anti-2"));
    assert_ne!(a1, a2, "anti-affinity put both on {a1}");
    assert!(
        a1 != "sc-2" && a2 != "sc-2",
        "the tainted node was used without a toleration"
    );
    // A third needs a third untainted node: there is none.
    apply(&c, &anti_pod("anti-3"));
    // Topology spread over the three zones (the spread pods tolerate the taint).
    for i in 0..4 {
        apply(
            &c,
            &pod(
                &format!("spread-{i}"),
                "  tolerations: [{key: dedicated, operator: Exists}]\n  topologySpreadConstraints:\n  - maxSkew: 1\n    topologyKey: zone\n    whenUnsatisfiable: DoNotSchedule\n    labelSelector: {matchLabels: {group: g}}\n",
            ),
        );
    }

    // Too much CPU for any node: Pending, PodScheduled=False, FailedScheduling with a summary.
    apply(
        &c,
        &pod("huge", "    resources: {requests: {cpu: \"500\"}}\n"),
    );
    let cond = eventually(Duration::from_secs(30), || {
        let p = json(&c, &["get", "pod", "huge"]);
        p["status"]["conditions"].as_array().and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
                .cloned()
        })
    })
    .expect("PodScheduled=False");
    assert_eq!(cond["reason"], "Unschedulable");
    let msg = cond["message"].as_str().unwrap();
    assert!(
        msg.starts_with("0/3 nodes are available")
            && msg.contains("Insufficient cpu")
            && msg.contains("untolerated taint"),
        "{msg}"
    );
    let events = eventually(Duration::from_secs(20), || {
        let ev = json(
            &c,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=huge,reason=FailedScheduling",
            ],
        );
        (!ev["items"].as_array().unwrap().is_empty()).then_some(ev)
    })
    .expect("FailedScheduling event");
    assert_eq!(events["items"][0]["type"], "Warning");
    let out = ok(&c.kubectl(&["describe", "pod", "huge"]));
    assert!(out.contains("FailedScheduling"), "{out}");
    let p = json(&c, &["get", "pod", "anti-3"]);
    assert!(p["spec"]["nodeName"].is_null(), "anti-3 must stay pending");

    // Spread: every group=g pod counted per zone (one node per zone), skew within 1.
    for i in 0..4 {
        node_of(&format!("spread-{i}"));
    }
    let mut per_zone = [0i64; 3];
    for p in pods(&c, "group=g") {
        if let Some(n) = p["spec"]["nodeName"].as_str() {
            per_zone[n.trim_start_matches("sc-").parse::<usize>().unwrap()] += 1;
        }
    }
    let (max, min) = (
        per_zone.iter().max().unwrap(),
        per_zone.iter().min().unwrap(),
    );
    assert!(
        max - min <= 1,
        "topology spread skew too large: {per_zone:?}"
    );
}

#[test]
fn invalid_workloads_are_rejected() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let bad_selector = deployment("bad", 1, "1", ROLLING)
        .replace("matchLabels: {app: bad}", "matchLabels: {app: other}");
    let err = fails(&c.kubectl_stdin(&["apply", "-f", "-"], Some(&bad_selector)));
    assert!(
        err.contains("selector") && err.contains("does not match template"),
        "{err}"
    );
    let negative = deployment("neg", 1, "1", ROLLING).replace("replicas: 1", "replicas: -1");
    let err = fails(&c.kubectl_stdin(&["apply", "-f", "-"], Some(&negative)));
    assert!(
        err.contains("spec.replicas") && err.contains("greater than or equal to 0"),
        "{err}"
    );
    apply(&c, &deployment("fixed", 1, "1", ROLLING));
    let err = fails(&c.kubectl(&["patch", "deploy", "fixed", "--type", "merge", "-p", r#"{"spec":{"selector":{"matchLabels":{"app":"x"}},"template":{"metadata":{"labels":{"app":"x"}}}}}"#]));
    assert!(err.contains("field is immutable"), "{err}");
}

#[test]
fn server_kill9_mid_rollout_completes_without_loss() {
    let mut c = Cluster::start(Backend::Embedded).unwrap();
    // The nodes keep running while only the server is killed, as agents on other machines do.
    let _nodes = c.hollow_nodes(2, "k9").unwrap();
    apply(
        &c,
        &deployment(
            "crash",
            6,
            "1",
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
        ),
    );
    wait_pods(&c, "app=crash", 6);
    apply(
        &c,
        &deployment(
            "crash",
            6,
            "2",
            "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}",
        ),
    );
    std::thread::sleep(Duration::from_millis(700));
    c.kill9();
    c.restart().unwrap();
    let status = c.kubectl(&["rollout", "status", "deploy/crash", "--timeout=120s"]);
    if !status.status.success() {
        let state = c.kubectl(&["get", "deploy,rs,pods", "-o", "wide"]);
        let d = c.kubectl(&["get", "deploy", "crash", "-o", "yaml"]);
        let rs = c.kubectl(&["get", "rs", "-o", "yaml"]);
        panic!(
            "rollout did not finish:\n{}\n{}\n{}",
            String::from_utf8_lossy(&state.stdout),
            String::from_utf8_lossy(&d.stdout),
            String::from_utf8_lossy(&rs.stdout)
        );
    }
    let out = ok(&status);
    assert!(out.contains("successfully rolled out"), "{out}");
    let ps = wait_pods(&c, "app=crash", 6);
    assert!(
        ps.iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "2")
    );
    let mut names: Vec<&str> = ps
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6, "duplicated pods");
    let rs = json(&c, &["get", "rs", "-l", "app=crash"]);
    let total: i64 = rs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["spec"]["replicas"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 6);
}

#[test]
fn daemonset_places_one_pod_per_node() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(3, "ds").unwrap();
    apply(
        &c,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      containers:\n      - name: a\n        image: busybox:1.36\n",
    );
    let ps = wait_pods(&c, "app=agent", 3);
    let mut nodes: Vec<&str> = ps
        .iter()
        .map(|p| p["spec"]["nodeName"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["ds-0", "ds-1", "ds-2"]);
    let ds = eventually(Duration::from_secs(30), || {
        let d = json(&c, &["get", "ds", "agent"]);
        (d["status"]["numberReady"] == 3).then_some(d)
    })
    .expect("DaemonSet status");
    assert_eq!(ds["status"]["desiredNumberScheduled"], 3);
    let out = ok(&c.kubectl(&["get", "ds", "agent"]));
    assert!(out.contains("agent") && out.contains('3'), "{out}");

    // A rolling update replaces every node's pod; `rollout status` follows it.
    ok(&c.kubectl(&["set", "env", "ds/agent", "VERSION=2"]));
    let out = ok(&c.kubectl(&["rollout", "status", "ds/agent", "--timeout=60s"]));
    assert!(out.contains("successfully rolled out"), "{out}");
    let ps = wait_pods(&c, "app=agent", 3);
    assert!(
        ps.iter()
            .all(|p| p["spec"]["containers"][0]["env"][0]["value"] == "2"),
        "{ps:?}"
    );
    // Each template is a ControllerRevision: history from both clients, undo with kubectl
    // (back to the first template), then with skiff (forward to the second).
    for out in [
        ok(&c.kubectl(&["rollout", "history", "ds/agent"])),
        ok(&c.skiff(&["rollout", "history", "ds/agent"])),
    ] {
        assert!(
            out.lines().any(|l| l.starts_with('1')) && out.lines().any(|l| l.starts_with('2')),
            "{out}"
        );
    }
    let out = ok(&c.kubectl(&["get", "controllerrevisions"]));
    assert!(out.contains("daemonset.apps/agent"), "{out}");
    ok(&c.kubectl(&["rollout", "undo", "ds/agent"]));
    ok(&c.kubectl(&["rollout", "status", "ds/agent", "--timeout=60s"]));
    let env_of = |p: &Value| p["spec"]["containers"][0]["env"][0]["value"].clone();
    let ps = eventually(Duration::from_secs(30), || {
        let ps = wait_pods(&c, "app=agent", 3);
        ps.iter().all(|p| env_of(p).is_null()).then_some(ps)
    });
    assert!(
        ps.is_some(),
        "kubectl rollout undo ds restored the first template"
    );
    let d = json(&c, &["get", "controllerrevisions", "-l", "app=agent"]);
    let mut revs: Vec<i64> = d["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    revs.sort();
    assert_eq!(revs, [2, 3], "the restored template became revision 3");
    ok(&c.skiff(&["rollout", "undo", "ds/agent"]));
    ok(&c.skiff(&["rollout", "status", "ds/agent", "--timeout=60s"]));
    let ps = eventually(Duration::from_secs(30), || {
        let ps = wait_pods(&c, "app=agent", 3);
        ps.iter().all(|p| env_of(p) == "2").then_some(ps)
    });
    assert!(
        ps.is_some(),
        "skiff rollout undo ds restored the second template"
    );

    // A new node gets its pod; a tainted one does not.
    let _more = c.hollow_nodes(2, "dt").unwrap();
    wait_pods(&c, "app=agent", 5);
    ok(&c.kubectl(&["taint", "node", "dt-1", "only=others:NoExecute"]));
    let ps = wait_pods(&c, "app=agent", 4);
    assert!(ps.iter().all(|p| p["spec"]["nodeName"] != "dt-1"), "{ps:?}");
}

#[test]
fn replication_controllers_from_kubectl() {
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _nodes = c.hollow_nodes(1, "rc").unwrap();
    apply(
        &c,
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: legacy}\nspec:\n  replicas: 2\n  template:\n    metadata: {labels: {app: legacy}}\n    spec:\n      containers: [{name: c, image: busybox:1.36}]\n",
    );
    wait_pods(&c, "app=legacy", 2);
    let out = ok(&c.kubectl(&["get", "rc", "legacy"]));
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        "{out}"
    );
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["legacy", "2", "2", "2"], "{out}");
    let out = ok(&c.kubectl(&["scale", "rc", "legacy", "--replicas=3"]));
    assert!(out.contains("replicationcontroller/legacy scaled"), "{out}");
    wait_pods(&c, "app=legacy", 3);
    let rc = json(&c, &["get", "rc", "legacy"]);
    assert_eq!(rc["spec"]["selector"]["app"], "legacy");
    let got = eventually(Duration::from_secs(30), || {
        let rc = json(&c, &["get", "rc", "legacy"]);
        (rc["status"]["readyReplicas"] == 3).then_some(rc)
    });
    assert!(got.is_some(), "status.readyReplicas reaches 3");
    let out = fails(&c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ReplicationController\nmetadata: {name: bad}\nspec:\n  replicas: -1\n  selector: {app: one}\n  template:\n    metadata: {labels: {app: two}}\n    spec:\n      containers: [{name: c, image: busybox:1.36}]\n"),
    ));
    assert!(
        out.contains("spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
        "{out}"
    );
    assert!(
        out.contains("`selector` does not match template `labels`"),
        "{out}"
    );
    ok(&c.kubectl(&["delete", "rc", "legacy"]));
    let gone = eventually(Duration::from_secs(30), || {
        let ps = json(&c, &["get", "pods", "-l", "app=legacy"]);
        ps["items"]
            .as_array()
            .is_some_and(|a| a.is_empty())
            .then_some(())
    });
    assert!(gone.is_some(), "the garbage collector removes the pods");
}
