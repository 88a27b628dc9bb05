//! VolumeBinding: a pod's PersistentVolumeClaims decide where it may run. A claim that is
//! missing, being deleted, or unbound with `Immediate` binding keeps the pod off every node
//! (kube-scheduler's PreFilter); a bound claim's volume must accept the node (its required
//! node affinity); an unbound `WaitForFirstConsumer` claim needs, on the node, either an
//! available volume that fits or a provisioner whose class's `allowedTopologies` admit the
//! node. After a node is chosen the claims waiting for their first consumer get the
//! `volume.kubernetes.io/selected-node` annotation (PreBind), which the PV binder and the
//! node's local provisioner act on.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use skiff_api::storage::matching::{NodeFacts, find_volume};
use skiff_api::storage::{claim_class, volume_fits_node};

use crate::cache::{Cache, NodeInfo};
use crate::framework::{CycleState, Failure};
use crate::podinfo::PodInfo;
use crate::volumes::Storage;

/// A bound claim's volume does not accept the node.
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No volume on the node fits a waiting claim and none can be provisioned there.
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
/// A bound claim names a volume that does not exist.
pub const ERR_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
/// A claim is unbound and its class binds immediately (the binder has not bound it yet).
pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// One unbound claim waiting for its first consumer.
#[derive(Debug)]
struct Waiting {
    claim: Arc<PersistentVolumeClaim>,
    /// Available volumes of the claim's class (the node decides which fit).
    candidates: Vec<PersistentVolume>,
    /// The class provisions volumes (and on which nodes).
    class: Option<Arc<StorageClass>>,
}

/// What the filter needs to know about the pod's claims.
#[derive(Debug, Default)]
pub struct FilterState {
    /// Why no node can take the pod, decided before any node is looked at.
    pub rejection: Option<String>,
    bound: Vec<Arc<PersistentVolume>>,
    missing_volume: bool,
    waiting: Vec<Waiting>,
}

impl FilterState {
    /// `(namespace, name)` of each claim to annotate with the chosen node before binding.
    pub fn claims_to_select(&self) -> Vec<(String, String)> {
        self.waiting
            .iter()
            .map(|w| {
                (
                    w.claim.metadata.namespace.clone().unwrap_or_default(),
                    w.claim.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect()
    }
}

fn claim_names(pod: &PodInfo) -> Vec<String> {
    let spec = pod.pod.spec.as_ref();
    spec.and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

fn waits_for_consumer(class: Option<&StorageClass>) -> bool {
    class.and_then(|c| c.volume_binding_mode.as_deref()) == Some("WaitForFirstConsumer")
}

/// Reads the pod's claims from the storage view.
pub fn pre_filter(pod: &PodInfo, cache: &Cache) -> FilterState {
    let storage = &cache.storage;
    let mut state = FilterState::default();
    for name in claim_names(pod) {
        let key = format!("{}/{name}", pod.namespace);
        let Some(claim) = storage.claims.get(&key) else {
            state.rejection = Some(format!("persistentvolumeclaim \"{name}\" not found"));
            return state;
        };
        if claim.metadata.deletion_timestamp.is_some() {
            state.rejection = Some(format!("persistentvolumeclaim \"{name}\" is being deleted"));
            return state;
        }
        let volume = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref());
        if let Some(pv) = volume.filter(|v| !v.is_empty()) {
            match storage.volumes.get(pv) {
                Some(pv) => state.bound.push(pv.clone()),
                None => state.missing_volume = true,
            }
            continue;
        }
        let class = storage.class_of(claim).cloned();
        if !waits_for_consumer(class.as_deref()) {
            state.rejection = Some(ERR_UNBOUND_IMMEDIATE.into());
            return state;
        }
        state.waiting.push(Waiting {
            candidates: candidates(storage, claim),
            claim: claim.clone(),
            class,
        });
    }
    state
}

/// Volumes of the claim's class that are not Released or Failed.
fn candidates(storage: &Storage, claim: &PersistentVolumeClaim) -> Vec<PersistentVolume> {
    let class = claim_class(claim).unwrap_or("");
    storage
        .volumes
        .iter()
        .filter(|pv| {
            let pv_class = pv
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                .unwrap_or("");
            class.is_empty() || pv_class == class
        })
        .map(|pv| PersistentVolume::clone(pv))
        .collect()
}

/// Whether the class provisions volumes usable on the node.
fn provisions_on(class: Option<&StorageClass>, node: &NodeInfo) -> bool {
    let Some(class) = class else {
        return false;
    };
    if class.provisioner == "kubernetes.io/no-provisioner" {
        return false;
    }
    let terms = class.allowed_topologies.as_deref().unwrap_or(&[]);
    terms.is_empty()
        || terms.iter().any(|t| {
            t.match_label_expressions.iter().flatten().all(|e| {
                node.labels
                    .get(&e.key)
                    .is_some_and(|v| e.values.iter().any(|want| want == v))
            })
        })
}

/// Filter: the node suits every claim of the pod.
pub fn filter(state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<(), Failure> {
    let s = &state.volumes;
    if let Some(reason) = &s.rejection {
        return Err(Failure::unresolvable(reason.clone()));
    }
    if s.missing_volume {
        return Err(Failure::unresolvable(ERR_PV_NOT_EXIST));
    }
    if s.bound
        .iter()
        .any(|pv| !volume_fits_node(pv, &node.name, &node.labels))
    {
        return Err(Failure::unresolvable(ERR_NODE_CONFLICT));
    }
    let facts = NodeFacts {
        name: &node.name,
        labels: &node.labels,
    };
    for w in &s.waiting {
        if find_volume(&w.claim, &w.candidates, Some(&facts)).is_none()
            && !provisions_on(w.class.as_deref(), node)
        {
            return Err(Failure::unresolvable(ERR_BIND_CONFLICT));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::framework::Algorithm;
    use crate::plugins::test_support::{cache_with, pod};

    fn claim(name: &str, spec: Value) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "uid": format!("u-{name}")},
            "spec": spec,
        }))
        .unwrap()
    }

    fn class(name: &str, mode: &str, provisioner: &str, extra: Value) -> StorageClass {
        let mut c = json!({"metadata": {"name": name}, "provisioner": provisioner,
            "volumeBindingMode": mode});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn local_pv(name: &str, node: &str, claim_ref: Option<&str>) -> PersistentVolume {
        let mut spec = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "local": {"path": "/d"}, "storageClassName": "local",
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}});
        if let Some(c) = claim_ref {
            spec["claimRef"] = json!({"namespace": "default", "name": c, "uid": format!("u-{c}")});
        }
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    }

    fn with_claim(name: &str) -> PodInfo {
        pod(json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}]}))
    }

    fn nodes() -> Cache {
        let mut c = cache_with(
            vec![("n1", json!({"zone": "a"})), ("n2", json!({"zone": "b"}))],
            &[],
        );
        c.storage.classes.insert(class(
            "local",
            "WaitForFirstConsumer",
            "kubernetes.io/no-provisioner",
            json!({}),
        ));
        c.storage.classes.insert(class(
            "zonal",
            "WaitForFirstConsumer",
            "skiff.io/local-path",
            json!({"allowedTopologies": [{"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}]}),
        ));
        c.storage
            .classes
            .insert(class("fast", "Immediate", "skiff.io/local-path", json!({})));
        c
    }

    fn schedule(cache: &Cache, p: &PodInfo) -> Result<String, String> {
        Algorithm::new(None)
            .schedule(p, cache)
            .map(|d| d.node)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn missing_deleting_and_unbound_immediate_claims_reject_before_any_node() {
        let mut c = nodes();
        let p = with_claim("data");
        assert_eq!(
            schedule(&c, &p).unwrap_err(),
            "0/2 nodes are available: persistentvolumeclaim \"data\" not found. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
        );
        let mut deleting = claim("data", json!({"storageClassName": "local"}));
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        c.storage.claims.insert(deleting);
        assert!(
            schedule(&c, &p)
                .unwrap_err()
                .contains("persistentvolumeclaim \"data\" is being deleted"),
        );
        c.storage
            .claims
            .insert(claim("data", json!({"storageClassName": "fast"})));
        assert!(
            schedule(&c, &p)
                .unwrap_err()
                .contains(ERR_UNBOUND_IMMEDIATE)
        );
    }

    #[test]
    fn a_bound_volume_pins_the_pod_to_its_node() {
        let mut c = nodes();
        c.storage
            .volumes
            .insert(local_pv("pv1", "n2", Some("data")));
        c.storage.claims.insert(claim(
            "data",
            json!({"storageClassName": "local", "volumeName": "pv1"}),
        ));
        let p = with_claim("data");
        for _ in 0..4 {
            assert_eq!(schedule(&c, &p).unwrap(), "n2");
        }
        c.storage.claims.insert(claim(
            "data",
            json!({"storageClassName": "local", "volumeName": "gone"}),
        ));
        assert!(schedule(&c, &p).unwrap_err().contains(ERR_PV_NOT_EXIST));
    }

    #[test]
    fn waiting_claims_need_a_fitting_volume_or_a_provisioner_for_the_node() {
        let mut c = nodes();
        let spec = |class: &str| {
            json!({"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}})
        };
        c.storage.claims.insert(claim("static", spec("local")));
        let p = with_claim("static");
        assert!(
            schedule(&c, &p)
                .unwrap_err()
                .contains(&format!("2 {ERR_BIND_CONFLICT}"))
        );
        c.storage.volumes.insert(local_pv("pv1", "n1", None));
        let mut alg = Algorithm::new(None);
        let d = alg.schedule(&p, &c).unwrap();
        assert_eq!(d.node, "n1");
        assert_eq!(
            d.claims_to_select,
            vec![("default".into(), "static".into())]
        );

        c.storage.claims.insert(claim("zonal", spec("zonal")));
        let p = with_claim("zonal");
        for _ in 0..4 {
            assert_eq!(schedule(&c, &p).unwrap(), "n2");
        }
    }

    #[test]
    fn claims_naming_no_class_follow_the_default_class() {
        let mut c = nodes();
        let mut default = class(
            "standard",
            "WaitForFirstConsumer",
            "skiff.io/local-path",
            json!({}),
        );
        default.metadata.annotations = Some(
            [(
                "storageclass.kubernetes.io/is-default-class".to_string(),
                "true".to_string(),
            )]
            .into(),
        );
        c.storage.classes.insert(default);
        c.storage.claims.insert(claim(
            "data",
            json!({"resources": {"requests": {"storage": "1Gi"}}}),
        ));
        let p = with_claim("data");
        assert!(schedule(&c, &p).is_ok());
        c.storage.claims.insert(claim(
            "data",
            json!({"storageClassName": "", "resources": {"requests": {"storage": "1Gi"}}}),
        ));
        assert!(
            schedule(&c, &p)
                .unwrap_err()
                .contains(ERR_UNBOUND_IMMEDIATE)
        );
    }
}
