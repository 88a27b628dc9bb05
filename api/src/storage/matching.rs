//! Which PersistentVolume a claim binds to (the binder's `findBestMatchForClaim`): a
//! volume pre-bound to the claim wins; otherwise the smallest available volume of the
//! claim's class whose capacity, access modes, volume mode, labels (the claim's selector)
//! and, for a claim waiting on its first consumer, node affinity fit.

use std::collections::BTreeMap;

use super::{claim_class, volume_fits_node};
use crate::labels::Selector;
use crate::quantity::Quantity;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

/// The node a WaitForFirstConsumer claim's volume must be usable on.
pub struct NodeFacts<'a> {
    /// Node name.
    pub name: &'a str,
    /// Node labels.
    pub labels: &'a BTreeMap<String, String>,
}

/// The storage a claim requests.
pub fn requested(pvc: &PersistentVolumeClaim) -> Option<Quantity> {
    let q = pvc
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    Quantity::parse(&q.0).ok()
}

/// A volume's capacity.
pub fn capacity(pv: &PersistentVolume) -> Option<Quantity> {
    let q = pv.spec.as_ref()?.capacity.as_ref()?.get("storage")?;
    Quantity::parse(&q.0).ok()
}

/// Whether the volume's claimRef names this claim (by namespace and name, and by uid
/// when the reference carries one).
pub fn is_pre_bound_to(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.name == pvc.metadata.name
        && r.namespace == pvc.metadata.namespace
        && r.uid
            .as_deref()
            .is_none_or(|u| u.is_empty() || Some(u) == pvc.metadata.uid.as_deref())
}

fn fits(pv: &PersistentVolume, pvc: &PersistentVolumeClaim, node: Option<&NodeFacts>) -> bool {
    let (Some(vs), Some(cs)) = (pv.spec.as_ref(), pvc.spec.as_ref()) else {
        return false;
    };
    if pv.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let pv_class = vs.storage_class_name.as_deref().unwrap_or("");
    if pv_class != claim_class(pvc).unwrap_or("") {
        return false;
    }
    let (Some(want), Some(have)) = (requested(pvc), capacity(pv)) else {
        return false;
    };
    if have < want {
        return false;
    }
    let modes = vs.access_modes.clone().unwrap_or_default();
    if !cs.access_modes.iter().flatten().all(|m| modes.contains(m)) {
        return false;
    }
    let mode = |m: Option<&String>| m.map(String::as_str).unwrap_or("Filesystem").to_string();
    if mode(vs.volume_mode.as_ref()) != mode(cs.volume_mode.as_ref()) {
        return false;
    }
    if let Some(sel) = &cs.selector {
        let ok = Selector::from_label_selector(sel)
            .is_ok_and(|s| s.matches(pv.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())));
        if !ok {
            return false;
        }
    }
    node.is_none_or(|n| volume_fits_node(pv, n.name, n.labels))
}

/// The volume `pvc` should bind to, if any.
pub fn find_volume<'a>(
    pvc: &PersistentVolumeClaim,
    volumes: &'a [PersistentVolume],
    node: Option<&NodeFacts>,
) -> Option<&'a PersistentVolume> {
    if let Some(pv) = volumes
        .iter()
        .find(|pv| is_pre_bound_to(pv, pvc) && fits(pv, pvc, node))
    {
        return Some(pv);
    }
    let available = |pv: &&PersistentVolume| {
        pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_none())
            && !matches!(
                pv.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Released" | "Failed")
            )
    };
    volumes
        .iter()
        .filter(available)
        .filter(|pv| fits(pv, pvc, node))
        .min_by_key(|pv| capacity(pv))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn pv(name: &str, size: &str, extra: Value) -> PersistentVolume {
        let mut spec = json!({"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/d"}, "storageClassName": "slow"});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"tier": name}}, "spec": spec}),
        )
        .unwrap()
    }

    fn pvc(extra: Value) -> PersistentVolumeClaim {
        let mut spec = json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "slow",
            "resources": {"requests": {"storage": "1Gi"}}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": "data", "namespace": "ns", "uid": "u1"}, "spec": spec}),
        )
        .unwrap()
    }

    fn names(found: Option<&PersistentVolume>) -> Option<&str> {
        found.and_then(|p| p.metadata.name.as_deref())
    }

    #[test]
    fn smallest_fitting_volume_of_the_class_wins() {
        let vols = vec![
            pv("big", "10Gi", json!({})),
            pv("small", "512Mi", json!({})),
            pv("right", "2Gi", json!({})),
            pv("other-class", "1Gi", json!({"storageClassName": "fast"})),
            pv("rwx-only", "1Gi", json!({"accessModes": ["ReadWriteMany"]})),
            pv(
                "taken",
                "1Gi",
                json!({"claimRef": {"namespace": "ns", "name": "else"}}),
            ),
        ];
        assert_eq!(
            names(find_volume(&pvc(json!({})), &vols, None)),
            Some("right")
        );
        let sel = pvc(json!({"selector": {"matchLabels": {"tier": "big"}}}));
        assert_eq!(names(find_volume(&sel, &vols, None)), Some("big"));
        // Only the volume offering ReadWriteMany fits a claim asking for it.
        let many = pvc(json!({"accessModes": ["ReadWriteMany"]}));
        assert_eq!(names(find_volume(&many, &vols, None)), Some("rwx-only"));
        let huge = pvc(json!({"resources": {"requests": {"storage": "20Gi"}}}));
        assert_eq!(names(find_volume(&huge, &vols, None)), None);
    }

    #[test]
    fn pre_bound_volume_wins_and_node_affinity_counts() {
        let affinity = json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}});
        let vols = vec![
            pv("small", "1Gi", json!({"nodeAffinity": affinity})),
            pv(
                "mine",
                "5Gi",
                json!({"claimRef": {"namespace": "ns", "name": "data"}}),
            ),
        ];
        assert_eq!(
            names(find_volume(&pvc(json!({})), &vols, None)),
            Some("mine")
        );
        let labels: BTreeMap<String, String> =
            [("kubernetes.io/hostname".to_string(), "n2".to_string())].into();
        let n2 = NodeFacts {
            name: "n2",
            labels: &labels,
        };
        assert_eq!(
            names(find_volume(&pvc(json!({})), &vols[..1], Some(&n2))),
            None
        );
        let labels1: BTreeMap<String, String> =
            [("kubernetes.io/hostname".to_string(), "n1".to_string())].into();
        let n1 = NodeFacts {
            name: "n1",
            labels: &labels1,
        };
        assert_eq!(
            names(find_volume(&pvc(json!({})), &vols[..1], Some(&n1))),
            Some("small")
        );
    }
}
