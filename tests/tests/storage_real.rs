//! Persistent storage on a real node: a StatefulSet's claims on the built-in `local-path`
//! class are provisioned on the node the scheduler picks, mounted into real containers,
//! and keep their data across pod deletion, a partitioned rolling update and scale-down;
//! a claim in use is protected until its pod is gone, then its volume and directory are
//! reclaimed; bad claims and missing claims are answered as Kubernetes answers them.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{apply, json, pods, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually, fails, ok};

const NODE: &str = "e2e-node-storage";

const STATEFUL: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 8080}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: db
        image: busybox:1.36
        imagePullPolicy: Never
        command: ["sh", "-c", "echo $(hostname) v$VERSION >> /data/history; exec sleep 3600"]
        env: [{name: VERSION, value: "1"}]
        readinessProbe:
          exec: {command: ["cat", "/data/history"]}
          periodSeconds: 1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 16Mi}}
"#;

fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    ok(&c.kubectl(&args))
}

fn history(c: &Cluster, pod: &str) -> Vec<String> {
    exec(c, pod, &["cat", "/data/history"])
        .lines()
        .map(str::to_string)
        .collect()
}

fn uids(ps: &[Value]) -> Vec<String> {
    ps.iter()
        .map(|p| p["metadata"]["uid"].as_str().unwrap().to_string())
        .collect()
}

fn claim(c: &Cluster, name: &str) -> Value {
    json(c, &["get", "pvc", name])
}

/// The host directory of the volume bound to claim `name`.
fn volume_dir(c: &Cluster, name: &str) -> (String, PathBuf) {
    let pv = claim(c, name)["spec"]["volumeName"]
        .as_str()
        .expect("bound")
        .to_string();
    let v = json(c, &["get", "pv", &pv]);
    (
        pv,
        PathBuf::from(v["spec"]["hostPath"]["path"].as_str().expect("hostPath")),
    )
}

fn wait_gone(c: &Cluster, kind: &str, name: &str, secs: u64) {
    eventually(Duration::from_secs(secs), || {
        let out = c.kubectl(&["get", kind, name]);
        (!out.status.success()).then_some(())
    })
    .unwrap_or_else(|| {
        let out = c.kubectl(&["get", kind, name, "-o", "yaml"]);
        panic!(
            "{kind} {name} still exists:\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
}

#[test]
fn stateful_pods_keep_their_volumes_and_claims_are_protected_and_reclaimed() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c.start_node(NODE, 90).unwrap();
    let root = node.host.root_dir.join("storage");

    // Pods come up in order, each with its own claim bound to a volume on the node.
    apply(&c, STATEFUL);
    let status = c.kubectl(&["rollout", "status", "sts/db", "--timeout=120s"]);
    if !status.status.success() {
        let dump = c.kubectl(&["describe", "pods,pvc,pv"]);
        panic!(
            "the set did not roll out: {}\n{}",
            String::from_utf8_lossy(&status.stderr),
            String::from_utf8_lossy(&dump.stdout)
        );
    }
    let first = wait_ready_pods(&c, "app=db", 3, 60);
    for i in 0..3 {
        let name = format!("data-db-{i}");
        let pvc = claim(&c, &name);
        assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
        assert_eq!(pvc["spec"]["storageClassName"], "local-path", "{pvc}");
        let (pv, dir) = volume_dir(&c, &name);
        assert!(
            dir.starts_with(&root),
            "{} under {}",
            dir.display(),
            root.display()
        );
        let v = json(&c, &["get", "pv", &pv]);
        assert_eq!(
            v["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
                [0],
            NODE
        );
        assert_eq!(v["spec"]["capacity"]["storage"], "16Mi");
        assert_eq!(history(&c, &format!("db-{i}")), vec![format!("db-{i} v1")]);
        // What the pod wrote is in the volume's directory on the host.
        let on_host = std::fs::read_to_string(dir.join("history")).unwrap();
        assert_eq!(on_host.trim(), format!("db-{i} v1"));
    }
    // RFC 3339 timestamps of one resolution order as strings do.
    let created: Vec<String> = (0..3)
        .map(|i| {
            let p = json(&c, &["get", "pod", &format!("db-{i}")]);
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] <= w[1]),
        "ordered: {created:?}"
    );

    // Deleting every pod brings back the same names with the same data.
    ok(&c.kubectl(&["delete", "pod", "-l", "app=db", "--wait=false"]));
    let before = uids(&first);
    let again = eventually(Duration::from_secs(120), || {
        let ps = wait_ready_pods(&c, "app=db", 3, 120);
        uids(&ps).iter().all(|u| !before.contains(u)).then_some(ps)
    })
    .expect("the pods came back");
    assert_eq!(again.len(), 3);
    for i in 0..3 {
        let h = history(&c, &format!("db-{i}"));
        assert_eq!(
            h,
            vec![format!("db-{i} v1"), format!("db-{i} v1")],
            "db-{i}"
        );
    }

    // A partitioned rolling update replaces only the ordinals at or above the partition.
    ok(&c.kubectl(&[
        "patch",
        "sts",
        "db",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ]));
    ok(&c.kubectl(&["set", "env", "sts/db", "VERSION=2"]));
    eventually(Duration::from_secs(120), || {
        // While db-2 is replaced there is no container to exec into.
        let out = c.kubectl(&["exec", "db-2", "--", "cat", "/data/history"]);
        let h = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && h.lines().last() == Some("db-2 v2")).then_some(())
    })
    .expect("db-2 updated");
    wait_ready_pods(&c, "app=db", 3, 60);
    for i in 0..2 {
        let h = history(&c, &format!("db-{i}"));
        assert_eq!(h.last().unwrap(), &format!("db-{i} v1"), "db-{i} kept");
    }

    // Scaling down keeps the claims (the default Retain policy).
    ok(&c.kubectl(&["scale", "sts", "db", "--replicas=1"]));
    eventually(Duration::from_secs(60), || {
        (pods(&c, "app=db").len() == 1).then_some(())
    })
    .expect("scaled to 1");
    for i in 0..3 {
        assert_eq!(
            claim(&c, &format!("data-db-{i}"))["status"]["phase"],
            "Bound"
        );
    }

    // A claim whose pod is gone is deleted, its volume reclaimed (Delete) with its directory.
    let (pv2, dir2) = volume_dir(&c, "data-db-2");
    ok(&c.kubectl(&["delete", "pvc", "data-db-2", "--wait=false"]));
    wait_gone(&c, "pvc", "data-db-2", 30);
    wait_gone(&c, "pv", &pv2, 30);
    assert!(!dir2.exists(), "{} removed", dir2.display());

    // A claim in use stays (protected) until its pod is gone.
    let (pv0, dir0) = volume_dir(&c, "data-db-0");
    ok(&c.kubectl(&["delete", "pvc", "data-db-0", "--wait=false"]));
    std::thread::sleep(Duration::from_secs(2));
    let pvc = claim(&c, "data-db-0");
    assert!(pvc["metadata"]["deletionTimestamp"].is_string(), "{pvc}");
    assert!(
        pvc["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "kubernetes.io/pvc-protection"),
        "{pvc}"
    );
    assert_eq!(
        history(&c, "db-0").len(),
        2,
        "the pod still uses its volume"
    );
    ok(&c.kubectl(&["delete", "sts", "db"]));
    wait_gone(&c, "pod", "db-0", 60);
    wait_gone(&c, "pvc", "data-db-0", 30);
    wait_gone(&c, "pv", &pv0, 30);
    assert!(!dir0.exists(), "{} removed", dir0.display());

    // Bad input: a negative size is refused; a missing claim keeps a pod unscheduled with
    // the scheduler's words; a claim naming no known class waits with an event.
    let bad = r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: negative}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: -1Gi}}
"#;
    let err = fails(&c.kubectl_stdin(&["apply", "-f", "-"], Some(bad)));
    assert!(
        err.contains(
            "spec.resources.requests[storage]: Invalid value: \"-1Gi\": must be greater than zero"
        ),
        "{err}"
    );
    assert!(!c.kubectl(&["get", "pvc", "negative"]).status.success());
    apply(
        &c,
        r#"apiVersion: v1
kind: Pod
metadata: {name: orphan}
spec:
  containers: [{name: c, image: busybox:1.36, imagePullPolicy: Never, command: [sleep, "60"]}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: missing}}]
"#,
    );
    let msg = eventually(Duration::from_secs(30), || {
        let p = json(&c, &["get", "pod", "orphan"]);
        let conds = p["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        conds
            .iter()
            .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
            .and_then(|c| c["message"].as_str().map(str::to_string))
    })
    .expect("the pod reports why it is not scheduled");
    assert!(
        msg.starts_with("0/1 nodes are available: persistentvolumeclaim \"missing\" not found."),
        "{msg}"
    );
    // Once the claim exists the pod is scheduled, its volume provisioned and mounted.
    apply(
        &c,
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: missing}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Mi}}
"#,
    );
    eventually(Duration::from_secs(60), || {
        let p = json(&c, &["get", "pod", "orphan"]);
        (p["status"]["phase"] == "Running").then_some(())
    })
    .expect("the pod runs once its claim exists");
    assert_eq!(claim(&c, "missing")["status"]["phase"], "Bound");
    ok(&c.kubectl(&["delete", "pod", "orphan", "--grace-period=0", "--force"]));
    ok(&c.kubectl(&["delete", "pvc", "missing"]));
}
