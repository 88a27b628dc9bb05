//! Validation messages and table rows of the storage kinds, checked against Kubernetes'
//! wording.

use jiff::Timestamp;
use serde_json::{Value, json};

use skiff_api::storage::IS_DEFAULT_CLASS;

use super::*;
use crate::strategy::Strategy;

fn pvc(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec})
}

fn messages(causes: &[Cause]) -> Vec<String> {
    causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}

#[test]
fn claim_needs_access_modes_and_a_positive_size() {
    let st = PersistentVolumeClaimStrategy;
    let ok = pvc(
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
    );
    assert!(st.validate(&ok).is_empty());
    assert_eq!(
        messages(&st.validate(&pvc(json!({})))),
        [
            "spec.accessModes: Required value: at least 1 access mode is required",
            "spec.resources[storage]: Required value",
        ]
    );
    let negative = pvc(
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "-1Gi"}}}),
    );
    assert_eq!(
        messages(&st.validate(&negative)),
        ["spec.resources.requests[storage]: Invalid value: \"-1Gi\": must be greater than zero"]
    );
    let bad_mode = pvc(
        json!({"accessModes": ["ReadWriteSometimes"], "resources": {"requests": {"storage": "1Gi"}}}),
    );
    assert_eq!(st.validate(&bad_mode)[0].reason, "FieldValueNotSupported");
}

fn with_phase(mut obj: Value, phase: &str, capacity: &str) -> Value {
    obj["status"] = json!({"phase": phase, "capacity": {"storage": capacity}});
    obj
}

#[test]
fn a_bound_claim_may_only_change_its_request_and_never_below_its_capacity() {
    let st = PersistentVolumeClaimStrategy;
    let spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    // Pending: the volume name and class may be set once, the request not changed.
    let pending = pvc(spec.clone());
    let mut named = pending.clone();
    named["spec"]["volumeName"] = json!("pv-1");
    named["spec"]["storageClassName"] = json!("local-path");
    assert!(st.validate_update(&named, &pending).is_empty());
    let mut grown = pending.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_eq!(
        messages(&st.validate_update(&grown, &pending)),
        [
            "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"
        ]
    );
    // Bound: the request may grow, and the attributes class change.
    let mut old = with_phase(pvc(spec), "Bound", "1Gi");
    old["spec"]["volumeName"] = json!("pv-1");
    let mut bigger = old.clone();
    bigger["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    bigger["spec"]["volumeAttributesClassName"] = json!("gold");
    assert!(st.validate_update(&bigger, &old).is_empty());
    let mut shrunk = old.clone();
    shrunk["spec"]["resources"]["requests"]["storage"] = json!("512Mi");
    assert_eq!(
        messages(&st.validate_update(&shrunk, &old)),
        ["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    );
    // After a failed expansion to 3Gi the request may come back to above the capacity.
    let mut failed = bigger.clone();
    failed["spec"]["resources"]["requests"]["storage"] = json!("3Gi");
    let mut back = failed.clone();
    back["spec"]["resources"]["requests"]["storage"] = json!("1500Mi");
    assert!(st.validate_update(&back, &failed).is_empty());
    back["spec"]["resources"]["requests"]["storage"] = json!("1Gi");
    assert_eq!(
        st.validate_update(&back, &failed)[0].field,
        "spec.resources.requests.storage"
    );
    let mut modes = old.clone();
    modes["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert_eq!(st.validate_update(&modes, &old)[0].field, "spec");
    let mut rebound = old.clone();
    rebound["spec"]["volumeName"] = json!("pv-2");
    assert_eq!(st.validate_update(&rebound, &old)[0].field, "spec");
}

#[test]
fn create_adds_protection_and_pending() {
    let mut obj = pvc(json!({}));
    PersistentVolumeClaimStrategy.prepare_create(&mut obj);
    assert_eq!(
        obj["metadata"]["finalizers"],
        json!(["kubernetes.io/pvc-protection"])
    );
    assert_eq!(obj["status"]["phase"], "Pending");
    let mut pv = json!({"metadata": {"name": "pv", "finalizers": ["kubernetes.io/pv-protection"]}});
    PersistentVolumeStrategy.prepare_create(&mut pv);
    assert_eq!(
        pv["metadata"]["finalizers"],
        json!(["kubernetes.io/pv-protection"])
    );
}

fn pv(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "pv-1", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": spec})
}

#[test]
fn volume_needs_exactly_one_source_and_local_needs_affinity() {
    let st = PersistentVolumeStrategy;
    let base = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
    let mut none = pv(base.clone());
    st.default(&mut none);
    assert_eq!(
        messages(&st.validate(&none)),
        ["spec: Required value: must specify a volume type"]
    );
    let mut two = base.clone();
    two["hostPath"] = json!({"path": "/data"});
    two["nfs"] = json!({"server": "x", "path": "/"});
    assert_eq!(
        messages(&st.validate(&pv(two))),
        ["spec.nfs: Forbidden: may not specify more than 1 volume type"]
    );
    let mut local = base.clone();
    local["local"] = json!({"path": "/mnt/disk"});
    assert_eq!(
        messages(&st.validate(&pv(local))),
        ["spec.nodeAffinity: Required value: Local volume requires node affinity"]
    );
    let mut negative = base.clone();
    negative["capacity"] = json!({"storage": "-1Gi"});
    negative["hostPath"] = json!({"path": "/data"});
    assert_eq!(
        messages(&st.validate(&pv(negative))),
        ["spec.capacity[storage]: Invalid value: \"-1Gi\": must be greater than or equal to 0"]
    );
    let mut hp = base;
    hp["hostPath"] = json!({"path": "/data"});
    let old = pv(hp.clone());
    hp["hostPath"] = json!({"path": "/elsewhere"});
    assert_eq!(
        st.validate_update(&pv(hp), &old)[0].field,
        "spec.persistentvolumesource"
    );
}

#[test]
fn tables_print_like_kubectl() {
    let now: Timestamp = "2024-01-01T00:01:00Z".parse().unwrap();
    let mut v = pv(
        json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
        "claimRef": {"namespace": "default", "name": "data"}, "hostPath": {"path": "/d"}}),
    );
    v["status"] = json!({"phase": "Bound"});
    assert_eq!(
        pv::cells_at(&v, now),
        [
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO,RWX"),
            json!("Delete"),
            json!("Bound"),
            json!("default/data"),
            json!("local-path"),
            json!("<unset>"),
            json!(""),
            json!("60s"),
            json!("Filesystem"),
        ]
    );
    assert_eq!(PersistentVolumeStrategy.columns().len(), 11);
    let mut c = pvc(
        json!({"accessModes": ["ReadWriteOnce"], "volumeName": "pv-1", "storageClassName": "local-path"}),
    );
    c["status"] =
        json!({"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
    assert_eq!(
        pvc::cells_at(&c, now),
        [
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO"),
            json!("local-path"),
            json!("<unset>"),
            json!("60s"),
            json!("Filesystem"),
        ]
    );
    assert_eq!(PersistentVolumeClaimStrategy.columns().len(), 9);
    let mut sc = json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-path", "creationTimestamp": "2024-01-01T00:00:00Z",
            "annotations": {IS_DEFAULT_CLASS: "true"}},
        "provisioner": "skiff.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
        "allowVolumeExpansion": true});
    StorageClassStrategy.default(&mut sc);
    assert!(StorageClassStrategy.validate(&sc).is_empty());
    assert_eq!(
        storageclass::cells_at(&sc, now),
        [
            json!("local-path (default)"),
            json!("skiff.io/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(true),
            json!("60s"),
        ]
    );
    let mut changed = sc.clone();
    changed["provisioner"] = json!("other.io/x");
    assert_eq!(
        messages(&StorageClassStrategy.validate_update(&changed, &sc)),
        ["provisioner: Forbidden: updates to provisioner are forbidden."]
    );
}
