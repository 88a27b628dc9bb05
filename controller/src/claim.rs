//! Ownership through ownerReferences: a controller adopts orphans its selector matches and
//! releases the objects it owns that no longer match (Kubernetes' ControllerRefManager).

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{Api, Patch};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use skiff_api::labels::Selector;

use crate::error::{Error, Result, not_found};

/// The controller ownerReference of an object, if any.
pub fn controller_of<K: Resource>(obj: &K) -> Option<&OwnerReference> {
    obj.meta()
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller ownerReference to `owner` (with blockOwnerDeletion, as Kubernetes sets it).
pub fn controller_ref<O: Resource<DynamicType = ()>>(owner: &O) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: O::api_version(&()).into_owned(),
        kind: O::kind(&()).into_owned(),
        name: owner.meta().name.clone()?,
        uid: owner.meta().uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// What every workload controller needs first of its object: its namespace, its parsed
/// selector and a controller ownerReference to it.
pub struct Workload {
    pub namespace: String,
    pub selector: Selector,
    pub owner: OwnerReference,
}

impl Workload {
    /// The namespace, selector and owner of workload `obj` whose selector is `selector`.
    pub fn of<K: Resource<DynamicType = ()>>(
        obj: &K,
        selector: &LabelSelector,
    ) -> Result<Workload> {
        let key = crate::replicaset::key_of(obj);
        let namespace = obj.meta().namespace.clone().ok_or(Error::Missing {
            object: key.clone(),
            field: "metadata.namespace",
        })?;
        let selector =
            Selector::from_label_selector(selector).map_err(|source| Error::Selector {
                object: key.clone(),
                source,
            })?;
        let owner = controller_ref(obj).ok_or(Error::Missing {
            object: key,
            field: "metadata.uid",
        })?;
        Ok(Workload {
            namespace,
            selector,
            owner,
        })
    }
}

/// The controllers of kind `K` an event about `obj` concerns: its controller when that is a
/// `K`, or for an orphan every `K` in its namespace whose (non-empty) selector matches it, so
/// it can be adopted.
pub fn controllers_for<K, O>(
    obj: &O,
    controllers: &Store<K>,
    selector_of: impl Fn(&K) -> Option<LabelSelector>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    O: Resource,
{
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    if let Some(c) = controller_of(obj) {
        if c.kind == K::kind(&()) {
            return vec![ObjectRef::new(&c.name).within(&ns)];
        }
        return vec![];
    }
    let labels = obj.meta().labels.clone().unwrap_or_default();
    controllers
        .state()
        .iter()
        .filter(|k| k.meta().namespace.as_deref() == Some(&ns))
        .filter(|k| {
            selector_of(k)
                .and_then(|s| Selector::from_label_selector(&s).ok())
                .is_some_and(|sel| !sel.is_empty() && sel.matches(&labels))
        })
        .map(|k| ObjectRef::from_obj(k.as_ref()))
        .collect()
}

fn labels_match<K: Resource>(selector: &Selector, obj: &K) -> bool {
    obj.meta()
        .labels
        .as_ref()
        .is_some_and(|l| selector.matches(l))
}

/// Claims the objects among `candidates` that belong to `owner`: keeps those it controls
/// and still matches, adopts matching orphans (unless the owner is being deleted), and
/// releases those it controls but no longer matches. Returns the objects it now owns.
pub async fn claim<K>(
    api: &Api<K>,
    owner: &OwnerReference,
    selector: &Selector,
    owner_deleting: bool,
    candidates: Vec<Arc<K>>,
) -> Result<Vec<Arc<K>>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut owned = Vec::new();
    for obj in candidates {
        let matches = labels_match(selector, obj.as_ref());
        let refs = obj.meta().owner_references.clone().unwrap_or_default();
        match controller_of(obj.as_ref()) {
            Some(c) if c.uid == owner.uid => {
                if matches {
                    owned.push(obj);
                    continue;
                }
                let kept: Vec<_> = refs.into_iter().filter(|r| r.uid != owner.uid).collect();
                patch_refs(api, obj.as_ref(), kept).await?;
            }
            Some(_) => {}
            None => {
                if !matches || owner_deleting || obj.meta().deletion_timestamp.is_some() {
                    continue;
                }
                let mut refs = refs;
                refs.retain(|r| r.uid != owner.uid);
                refs.push(owner.clone());
                if let Some(adopted) = patch_refs(api, obj.as_ref(), refs).await? {
                    owned.push(Arc::new(adopted));
                }
            }
        }
    }
    Ok(owned)
}

async fn patch_refs<K>(api: &Api<K>, obj: &K, refs: Vec<OwnerReference>) -> Result<Option<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let name = obj.name_any();
    // The uid makes the patch fail if the object was replaced by a namesake meanwhile.
    let patch = json!({"metadata": {"uid": obj.meta().uid, "ownerReferences": refs}});
    match api
        .patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(e) if not_found(&e) || crate::error::conflict(&e) => Ok(None),
        Err(e) => Err(Error::api(name)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    #[test]
    fn finds_the_controller_reference() {
        let mut pod = Pod::default();
        assert!(controller_of(&pod).is_none());
        let r = |uid: &str, c| OwnerReference {
            uid: uid.into(),
            controller: c,
            ..Default::default()
        };
        pod.metadata.owner_references = Some(vec![r("a", None), r("b", Some(true))]);
        assert_eq!(controller_of(&pod).unwrap().uid, "b");
        let sel = Selector::parse("app=x").unwrap();
        assert!(!labels_match(&sel, &pod));
        pod.metadata.labels = Some([("app".to_string(), "x".to_string())].into());
        assert!(labels_match(&sel, &pod));
    }
}
