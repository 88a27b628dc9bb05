//! The pods' PersistentVolumeClaims (`stateful_pod_control.go`): made from the claim
//! templates before their pod, and owned as `persistentVolumeClaimRetentionPolicy` says, so
//! the garbage collector removes them: by the set when `whenDeleted: Delete`, by the pod
//! once it is scaled away when `whenScaled: Delete`, by nobody under Retain.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, Patch, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::identity::{claim_pairs, new_claim};
use crate::error::{Error, Result, not_found};

/// The retention policy, Retain for anything unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `whenDeleted: Delete`.
    pub delete_when_deleted: bool,
    /// `whenScaled: Delete`.
    pub delete_when_scaled: bool,
}

impl Retention {
    /// The set's policy.
    pub fn of(set: &StatefulSet) -> Retention {
        let p = set
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_claim_retention_policy.clone())
            .unwrap_or_default();
        Retention {
            delete_when_deleted: p.when_deleted.as_deref() == Some("Delete"),
            delete_when_scaled: p.when_scaled.as_deref() == Some("Delete"),
        }
    }

    /// Which of (set, pod) should own a claim of a pod in range or scaled away
    /// (`updateClaimOwnerRefForSetAndPod`).
    pub fn owners(self, scaled_down: bool) -> (bool, bool) {
        if scaled_down && self.delete_when_scaled {
            (false, true)
        } else {
            (self.delete_when_deleted, false)
        }
    }
}

/// A plain (non-controller) ownerReference to `owner`, as the controller puts on claims.
fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone()?,
        uid: owner.meta().uid.clone()?,
        controller: None,
        block_owner_deletion: None,
    })
}

fn has_ref(claim: &PersistentVolumeClaim, uid: Option<&String>) -> bool {
    uid.is_some_and(|uid| claim.owner_references().iter().any(|r| &r.uid == uid))
}

/// The claim's ownerReferences as the policy wants them, or `None` when they already are.
fn wanted_refs(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
    retention: Retention,
    scaled_down: bool,
) -> Option<Vec<OwnerReference>> {
    let (by_set, by_pod) = retention.owners(scaled_down);
    let (set_uid, pod_uid) = (set.uid(), pod.uid());
    if has_ref(claim, set_uid.as_ref()) == by_set && has_ref(claim, pod_uid.as_ref()) == by_pod {
        return None;
    }
    let mut refs: Vec<OwnerReference> = claim
        .owner_references()
        .iter()
        .filter(|r| Some(&r.uid) != set_uid.as_ref() && Some(&r.uid) != pod_uid.as_ref())
        .cloned()
        .collect();
    refs.extend(by_set.then(|| owner_ref(set)).flatten());
    refs.extend(by_pod.then(|| owner_ref(pod)).flatten());
    Some(refs)
}

/// The claims the pod at `ordinal` should have, as the store shows them (`None` if absent).
fn pod_claims(
    store: &Store<PersistentVolumeClaim>,
    set: &StatefulSet,
    ordinal: i32,
) -> Vec<(String, Option<std::sync::Arc<PersistentVolumeClaim>>)> {
    let ns = set.namespace().unwrap_or_default();
    claim_pairs(set, ordinal)
        .into_iter()
        .map(|(_, name)| {
            let found = store.get(&ObjectRef::new(&name).within(&ns));
            (name, found)
        })
        .collect()
}

/// Whether some claim of the pod is owned other than the policy says (`ClaimsMatchRetentionPolicy`).
pub fn ownership_wrong(
    store: &Store<PersistentVolumeClaim>,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i32,
    scaled_down: bool,
) -> bool {
    let retention = Retention::of(set);
    pod_claims(store, set, ordinal)
        .iter()
        .filter_map(|(_, c)| c.as_ref())
        .any(|c| wanted_refs(c, set, pod, retention, scaled_down).is_some())
}

/// Sets the ownerReferences of the pod's claims as the policy wants them.
pub async fn fix_ownership(
    client: &Client,
    store: &Store<PersistentVolumeClaim>,
    set: &StatefulSet,
    pod: &Pod,
    ordinal: i32,
    scaled_down: bool,
) -> Result<()> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let retention = Retention::of(set);
    for (name, claim) in pod_claims(store, set, ordinal) {
        let Some(claim) = claim else { continue };
        let Some(refs) = wanted_refs(&claim, set, pod, retention, scaled_down) else {
            continue;
        };
        let patch = json!({"metadata": {"uid": claim.uid(), "ownerReferences": refs}});
        match api
            .patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) || crate::error::conflict(&e) => {}
            Err(e) => return Err(Error::api(format!("{ns}/{name}"))(e)),
        }
    }
    Ok(())
}

/// What became of the claims of a pod about to be made.
pub enum ClaimsReady {
    /// Every claim exists; these were made now.
    Yes(Vec<String>),
    /// A claim is being deleted; the pod waits for it to go.
    Deleting(String),
}

/// Makes the claims of the pod at `ordinal` that do not exist yet (`createPersistentVolumeClaims`).
pub async fn create_missing(
    client: &Client,
    store: &Store<PersistentVolumeClaim>,
    set: &StatefulSet,
    ordinal: i32,
) -> Result<ClaimsReady> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let retention = Retention::of(set);
    let mut made = Vec::new();
    for (template, name) in claim_pairs(set, ordinal) {
        let existing = match store.get(&ObjectRef::new(&name).within(&ns)) {
            Some(c) => Some(c),
            None => match api.get_opt(&name).await {
                Ok(c) => c.map(std::sync::Arc::new),
                Err(e) => return Err(Error::api(format!("{ns}/{name}"))(e)),
            },
        };
        if let Some(c) = existing {
            if c.metadata.deletion_timestamp.is_some() {
                return Ok(ClaimsReady::Deleting(name));
            }
            continue;
        }
        let mut claim = new_claim(set, template, ordinal);
        if retention.delete_when_deleted {
            claim.metadata.owner_references = owner_ref(set).map(|r| vec![r]);
        }
        match api.create(&PostParams::default(), &claim).await {
            Ok(_) => made.push(name),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(Error::api(format!("{ns}/{name}"))(e)),
        }
    }
    Ok(ClaimsReady::Yes(made))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_follow_the_policy() {
        let r = |d, s| Retention {
            delete_when_deleted: d,
            delete_when_scaled: s,
        };
        assert_eq!(r(false, false).owners(false), (false, false));
        assert_eq!(r(false, false).owners(true), (false, false));
        assert_eq!(r(true, false).owners(false), (true, false));
        assert_eq!(r(true, false).owners(true), (true, false));
        assert_eq!(r(false, true).owners(false), (false, false));
        assert_eq!(r(false, true).owners(true), (false, true));
        assert_eq!(r(true, true).owners(false), (true, false));
        assert_eq!(r(true, true).owners(true), (false, true));
    }

    #[test]
    fn wanted_refs_keep_foreign_owners() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "uid": "set-uid"},
            "spec": {"selector": {}, "template": {},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}
        }))
        .unwrap();
        let pod: Pod =
            serde_json::from_value(json!({"metadata": {"name": "web-3", "uid": "pod-uid"}}))
                .unwrap();
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data-web-3", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "other"},
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "set-uid"}]}
        }))
        .unwrap();
        let retention = Retention::of(&set);
        assert!(wanted_refs(&claim, &set, &pod, retention, false).is_none());
        let refs = wanted_refs(&claim, &set, &pod, retention, true).unwrap();
        let uids: Vec<&str> = refs.iter().map(|r| r.uid.as_str()).collect();
        assert_eq!(uids, ["other", "pod-uid"]);
        assert_eq!(refs[1].kind, "Pod");
        assert_eq!(refs[1].controller, None);
    }
}
