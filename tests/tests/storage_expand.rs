//! Volume expansion on a real node: a bound claim on the built-in `local-path` class (which
//! allows expansion) grows when patched bigger — its volume's capacity, then its own, show
//! the new size, passing through the resize conditions — while a smaller request is
//! refused with 422 and a claim of a class without `allowVolumeExpansion` with 403, in
//! Kubernetes' words.

use std::time::Duration;

use serde_json::Value;
use skiff_e2e::workload::{apply, json, wait_ready_pods};
use skiff_e2e::{Backend, Cluster, can_run_nodes, eventually, fails, ok};

const NODE: &str = "e2e-node-expand";

const WORKLOAD: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fixed
provisioner: skiff.io/local-path
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: fixed-data
spec:
  storageClassName: fixed
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: user
  labels: {app: user}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.36
    imagePullPolicy: Never
    command: ["sh", "-c", "echo hi > /data/f; exec sleep 3600"]
    volumeMounts:
    - {name: data, mountPath: /data}
    - {name: fixed, mountPath: /fixed}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
  - name: fixed
    persistentVolumeClaim: {claimName: fixed-data}
"#;

fn patch_size(c: &Cluster, claim: &str, size: &str) -> std::process::Output {
    let body = format!(r#"{{"spec":{{"resources":{{"requests":{{"storage":"{size}"}}}}}}}}"#);
    c.kubectl(&["patch", "pvc", claim, "-p", &body])
}

fn capacity_column(c: &Cluster, claim: &str) -> String {
    let out = ok(&c.kubectl(&["get", "pvc", claim, "--no-headers"]));
    out.split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn claims_grow_on_an_expanding_class_and_never_shrink() {
    if !can_run_nodes() {
        eprintln!("skipped: needs root and /bin/busybox");
        return;
    }
    let c = Cluster::start(Backend::Embedded).unwrap();
    let _node = c.start_node(NODE, 91).unwrap();

    let class = json(&c, &["get", "storageclass", "local-path"]);
    assert_eq!(class["allowVolumeExpansion"], true, "{class}");
    apply(&c, WORKLOAD);
    wait_ready_pods(&c, "app=user", 1, 120);
    for claim in ["data", "fixed-data"] {
        let pvc = json(&c, &["get", "pvc", claim]);
        assert_eq!(pvc["status"]["phase"], "Bound", "{pvc}");
        assert_eq!(pvc["status"]["capacity"]["storage"], "16Mi", "{pvc}");
    }
    assert_eq!(capacity_column(&c, "data"), "16Mi");

    // Bigger: the volume, then the claim, have the new size; the resize conditions are gone.
    ok(&patch_size(&c, "data", "32Mi"));
    let grown = eventually(Duration::from_secs(30), || {
        (capacity_column(&c, "data") == "32Mi").then(|| json(&c, &["get", "pvc", "data"]))
    });
    let Some(pvc) = grown else {
        let dump = c.kubectl(&["describe", "pvc,pv"]);
        panic!(
            "the claim did not grow:\n{}",
            String::from_utf8_lossy(&dump.stdout)
        );
    };
    assert_eq!(
        pvc["status"]["allocatedResources"]["storage"], "32Mi",
        "{pvc}"
    );
    assert!(
        pvc["status"]["allocatedResourceStatuses"]["storage"].is_null(),
        "{pvc}"
    );
    let conditions = pvc["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .all(|c| c["type"] != "Resizing" && c["type"] != "FileSystemResizePending"),
        "{pvc}"
    );
    let volume = pvc["spec"]["volumeName"].as_str().unwrap().to_string();
    let pv = json(&c, &["get", "pv", &volume]);
    assert_eq!(pv["spec"]["capacity"]["storage"], "32Mi", "{pv}");
    let limit = pv["metadata"]["annotations"]["skiff.io/local-path-limit"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        limit == "recorded" || limit.starts_with("project-quota/"),
        "{pv}"
    );
    let events = ok(&c.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=data",
        "-o",
        "jsonpath={.items[*].reason}",
    ]));
    for reason in [
        "Resizing",
        "VolumeResizeSuccessful",
        "FileSystemResizeSuccessful",
    ] {
        assert!(events.contains(reason), "{reason} in {events}");
    }
    // The pod still reads its data.
    let read = ok(&c.kubectl(&["exec", "user", "--", "cat", "/data/f"]));
    assert_eq!(read.trim(), "hi");

    // Smaller than the capacity: 422 in Kubernetes' words, nothing changed.
    let err = fails(&patch_size(&c, "data", "8Mi"));
    assert!(
        err.contains(
            "The PersistentVolumeClaim \"data\" is invalid: spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        ),
        "{err}"
    );
    let pvc: Value = json(&c, &["get", "pvc", "data"]);
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "32Mi");

    // A class without allowVolumeExpansion: 403 from the resize admission.
    let err = fails(&patch_size(&c, "fixed-data", "32Mi"));
    assert!(
        err.contains(
            "Error from server (Forbidden): persistentvolumeclaims \"fixed-data\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
        ),
        "{err}"
    );
    let fixed = json(&c, &["get", "pvc", "fixed-data"]);
    assert_eq!(fixed["spec"]["resources"]["requests"]["storage"], "16Mi");
    assert_eq!(fixed["status"]["capacity"]["storage"], "16Mi");
    ok(&c.kubectl(&["delete", "pod", "user", "--wait=true"]));
}
