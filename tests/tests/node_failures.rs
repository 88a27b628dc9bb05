//! A real node reporting failures the way Kubernetes does: a crashing container in
//! CrashLoopBackOff, a missing image in ErrImagePull/ImagePullBackOff and recovering once
//! the image is side-loaded, a memory hog over its limit OOMKilled, and a pod bound to a
//! node that does not exist staying Pending.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::{Backend, Cluster, busybox_rootfs, can_run_nodes, eventually, ok};

fn first_status(pod: &Value) -> Value {
    pod["status"]["containerStatuses"][0].clone()
}

/// Waits until the first container's status satisfies `f`; returns it.
fn wait_status(c: &Cluster, name: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(secs), || {
        let s = first_status(&c.pod_json(name)?);
        f(&s).then_some(s)
    })
    .unwrap_or_else(|| {
        panic!(
            "pod {name} never got there: {:#}",
            c.pod_json(name).unwrap_or_default()["status"]
        )
    })
}

fn pod(name: &str, node: &str, container: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},
            "spec":{{"nodeName":"{node}","terminationGracePeriodSeconds":1,
                     "containers":[{container}]}}}}"#
    )
}

#[test]
fn failures_are_reported_with_kubernetes_reasons() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let node = c.start_node("e2e-node-f", 2).unwrap();
    let n = node.name.as_str();

    let crash = pod(
        "crash",
        n,
        r#"{"name":"c","image":"busybox:1.36","imagePullPolicy":"Never",
            "command":["sh","-c","echo failing; exit 1"]}"#,
    );
    let missing = pod(
        "missing",
        n,
        r#"{"name":"c","image":"127.0.0.1:1/missing:1","imagePullPolicy":"IfNotPresent",
            "command":["sleep","3600"]}"#,
    );
    let hog = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"hog"}},
            "spec":{{"nodeName":"{n}","restartPolicy":"Never",
              "containers":[{{"name":"c","image":"busybox:1.36","imagePullPolicy":"Never",
                "command":["sh","-c","x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
                "resources":{{"limits":{{"memory":"24Mi"}}}}}}]}}}}"#
    );
    let nowhere = pod(
        "nowhere",
        "no-such-node",
        r#"{"name":"c","image":"busybox:1.36","command":["sleep","60"]}"#,
    );
    for p in [&crash, &missing, &hog, &nowhere] {
        ok(&c.kubectl_stdin(&["create", "-f", "-"], Some(p)));
    }

    // A failing command: CrashLoopBackOff, with the exit recorded.
    let s = wait_status(&c, "crash", 20, |s| {
        s["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    });
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 1, "{s:#}");
    assert_eq!(s["lastState"]["terminated"]["reason"], "Error", "{s:#}");
    // The crashed run's output, as lastState.
    let logs = ok(&c.kubectl(&["logs", "crash", "--previous"]));
    assert_eq!(logs, "failing\n");
    let events = ok(&c.kubectl(&["describe", "pod", "crash"]));
    assert!(events.contains("BackOff"), "{events}");

    // Over its memory limit: OOMKilled, and the pod fails (restartPolicy Never).
    let s = wait_status(&c, "hog", 30, |s| s["state"]["terminated"].is_object());
    assert_eq!(s["state"]["terminated"]["reason"], "OOMKilled", "{s:#}");
    assert_eq!(s["state"]["terminated"]["exitCode"], 137, "{s:#}");
    eventually(Duration::from_secs(10), || {
        (c.pod_json("hog")?["status"]["phase"] == "Failed").then_some(())
    })
    .expect("hog pod Failed");

    // A missing image: ErrImagePull, then ImagePullBackOff; side-loading it recovers.
    let mut seen = std::collections::BTreeSet::new();
    eventually(Duration::from_secs(30), || {
        let s = first_status(&c.pod_json("missing")?);
        if let Some(r) = s["state"]["waiting"]["reason"].as_str() {
            seen.insert(r.to_string());
        }
        seen.contains("ImagePullBackOff").then_some(())
    })
    .expect("ImagePullBackOff");
    let describe = ok(&c.kubectl(&["describe", "pod", "missing"]));
    assert!(
        seen.contains("ErrImagePull") || describe.contains("ErrImagePull"),
        "{seen:?}\n{describe}"
    );
    let tmp = tempfile::tempdir().unwrap();
    node.import_rootfs(
        &busybox_rootfs(tmp.path()).unwrap(),
        "127.0.0.1:1/missing:1",
    )
    .unwrap();
    wait_status(&c, "missing", 60, |s| s["state"]["running"].is_object());

    // Bound to a node that does not exist: stays Pending, nothing crashes.
    let p = c.pod_json("nowhere").unwrap();
    assert_eq!(p["status"]["phase"], "Pending", "{p:#}");

    for p in ["crash", "missing", "hog"] {
        ok(&c.kubectl(&["delete", "pod", p, "--timeout=30s"]));
    }
    ok(&c.kubectl(&["delete", "pod", "nowhere", "--grace-period=0", "--force"]));
    drop(node);
}
