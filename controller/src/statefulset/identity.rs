//! A StatefulSet pod's stable identity (`stateful_set_utils.go`): its name `<set>-<ordinal>`,
//! the `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index` labels, its
//! hostname and subdomain, and one `persistentVolumeClaim` volume per claim template naming
//! the claim `<template>-<set>-<ordinal>`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

use crate::pod_control::pod_from_template;
use crate::revision_history::CONTROLLER_REVISION_HASH;

/// The label carrying a StatefulSet pod's own name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying a StatefulSet pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The first ordinal (`spec.ordinals.start`, 0 without it).
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// The parent name and ordinal a pod name `<parent>-<ordinal>` encodes.
pub fn parent_and_ordinal(pod_name: &str) -> Option<(&str, i32)> {
    let (parent, ord) = pod_name.rsplit_once('-')?;
    if ord.is_empty() || !ord.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, ord.parse().ok()?))
}

/// The ordinal of a pod of `set`, if its name is one of the set's.
pub fn ordinal_of(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    parent_and_ordinal(name)
        .filter(|(parent, _)| *parent == set.name_any())
        .map(|(_, ord)| ord)
}

/// The name of the pod at `ordinal`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.name_any())
}

/// The claim of template `claim` for the pod at `ordinal`.
pub fn claim_name(set: &StatefulSet, claim: &PersistentVolumeClaim, ordinal: i32) -> String {
    format!("{}-{}-{ordinal}", claim.name_any(), set.name_any())
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or_default()
}

/// The claims the pod at `ordinal` uses, keyed by volume (template) name.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, String)> {
    claim_templates(set)
        .iter()
        .map(|c| (c.name_any(), claim_name(set, c, ordinal)))
        .collect()
}

/// The claim the controller creates from template `claim` for the pod at `ordinal`: the
/// template's labels and the selector's matchLabels, the template's spec.
pub fn new_claim(
    set: &StatefulSet,
    claim: &PersistentVolumeClaim,
    ordinal: i32,
) -> PersistentVolumeClaim {
    let mut out = PersistentVolumeClaim {
        metadata: claim.metadata.clone(),
        spec: claim.spec.clone(),
        status: None,
    };
    out.metadata.name = Some(claim_name(set, claim, ordinal));
    out.metadata.namespace = set.namespace();
    let labels = out.metadata.labels.get_or_insert_with(BTreeMap::new);
    let selector = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.as_ref());
    for (k, v) in selector.into_iter().flatten() {
        labels.insert(k.clone(), v.clone());
    }
    out
}

/// The claim templates of the set with the claims of the pod at `ordinal`.
pub fn claim_pairs(set: &StatefulSet, ordinal: i32) -> Vec<(&PersistentVolumeClaim, String)> {
    claim_templates(set)
        .iter()
        .map(|c| (c, claim_name(set, c, ordinal)))
        .collect()
}

fn set_identity(set: &StatefulSet, pod: &mut Pod, ordinal: i32) {
    let name = pod_name(set, ordinal);
    pod.metadata.name = Some(name.clone());
    pod.metadata.generate_name = None;
    pod.metadata.namespace = set.namespace();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = Some(name);
    spec.subdomain = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty());
}

fn set_storage(set: &StatefulSet, pod: &mut Pod, ordinal: i32) {
    let claims = claims_for(set, ordinal);
    if claims.is_empty() {
        return;
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(volume, claim)| Volume {
            name: volume.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    // Template volumes named like a claim template give way to the claim.
    for v in spec.volumes.take().unwrap_or_default() {
        if !claims.iter().any(|(name, _)| *name == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = Some(volumes);
}

/// The pod at `ordinal` from `template` (the template of its revision `revision`).
pub fn new_pod(
    set: &StatefulSet,
    template: &PodTemplateSpec,
    owner: OwnerReference,
    ordinal: i32,
    revision: &str,
) -> Pod {
    let ns = set.namespace().unwrap_or_default();
    let mut pod = pod_from_template(template, &ns, "", owner);
    set_identity(set, &mut pod, ordinal);
    set_storage(set, &mut pod, ordinal);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CONTROLLER_REVISION_HASH.into(), revision.into());
    pod
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn pod_revision(pod: &Pod) -> &str {
    pod.labels()
        .get(CONTROLLER_REVISION_HASH)
        .map_or("", String::as_str)
}

/// Whether the pod carries the identity labels of its ordinal (`identityMatches`; hostname
/// and subdomain are immutable, so only labels can be repaired on a live pod).
pub fn identity_labels_match(set: &StatefulSet, pod: &Pod, ordinal: i32) -> bool {
    let labels = pod.labels();
    let name = pod_name(set, ordinal);
    labels.get(POD_NAME_LABEL) == Some(&name)
        && labels.get(POD_INDEX_LABEL) == Some(&ordinal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}],
                        "volumes": [{"name": "www", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "db"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                    "status": {"phase": "Pending"}}]}
        }))
        .unwrap()
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
        assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
        assert_eq!(parent_and_ordinal("web-"), None);
        assert_eq!(parent_and_ordinal("web-x1"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        let s = set();
        let mut other = Pod::default();
        other.metadata.name = Some("db-1".into());
        assert_eq!(ordinal_of(&s, &other), None);
        other.metadata.name = Some("web-3".into());
        assert_eq!(ordinal_of(&s, &other), Some(3));
        assert_eq!(start_ordinal(&s), 0);
    }

    #[test]
    fn new_pod_has_identity_storage_and_revision() {
        let s = set();
        let t = s.spec.as_ref().unwrap().template.clone();
        let owner = crate::claim::controller_ref(&s).unwrap();
        let pod = new_pod(&s, &t, owner, 2, "web-abc");
        assert_eq!(pod.name_any(), "web-2");
        assert!(pod.metadata.generate_name.is_none());
        let l = pod.labels();
        assert_eq!(l[POD_NAME_LABEL], "web-2");
        assert_eq!(l[POD_INDEX_LABEL], "2");
        assert_eq!(l[CONTROLLER_REVISION_HASH], "web-abc");
        assert_eq!(l["app"], "web");
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-2"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.as_ref().unwrap();
        assert_eq!(
            vols.len(),
            2,
            "the claim replaces the template's www volume"
        );
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-2"
        );
        assert_eq!(vols[1].name, "cache");
        assert!(identity_labels_match(&s, &pod, 2));
        assert!(!identity_labels_match(&s, &pod, 1));
        assert_eq!(pod_revision(&pod), "web-abc");
    }

    #[test]
    fn claims_carry_template_and_selector_labels() {
        let s = set();
        let tmpl = &s
            .spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .as_ref()
            .unwrap()[0];
        let c = new_claim(&s, tmpl, 4);
        assert_eq!(c.name_any(), "www-web-4");
        assert_eq!(c.namespace().as_deref(), Some("ns"));
        assert_eq!(c.labels()["tier"], "db");
        assert_eq!(c.labels()["app"], "web");
        assert!(c.status.is_none());
        assert_eq!(claims_for(&s, 4), vec![("www".into(), "www-web-4".into())]);
    }
}
