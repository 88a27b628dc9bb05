//! Workload history as Kubernetes keeps it for DaemonSets and StatefulSets
//! (`pkg/controller/history`): one ControllerRevision per pod template, named
//! `<owner>-<hash>`, labelled with the template's labels and `controller-revision-hash`,
//! owned by its workload, holding the strategic merge patch that restores the template (what
//! `kubectl rollout undo` applies), and numbered so the current template has the highest
//! revision. A return to an older template renumbers that revision instead of copying it.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use crate::claim::{controller_of, controller_ref};
use crate::error::{Error, Result, not_found};

/// The label naming a pod's (and a revision's) template revision.
pub const CONTROLLER_REVISION_HASH: &str = "controller-revision-hash";

/// How many old revisions are kept unless `spec.revisionHistoryLimit` says otherwise.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// What history needs of the workload that owns it.
pub struct Owner<'a> {
    /// `namespace/name`, for errors.
    pub key: String,
    /// The workload's name (the revisions' name prefix).
    pub name: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The controller ownerReference each revision carries.
    pub owner_ref: OwnerReference,
    /// The workload's selector: its revisions carry the template's labels, so it finds them.
    pub selector: &'a LabelSelector,
    /// The current pod template.
    pub template: &'a PodTemplateSpec,
    /// The workload's annotations (`kubernetes.io/change-cause` travels with a revision).
    pub annotations: &'a BTreeMap<String, String>,
    /// `spec.revisionHistoryLimit`.
    pub history_limit: Option<i32>,
}

impl<'a> Owner<'a> {
    /// The history owner for workload `obj` with these spec fields.
    pub fn of<K: Resource<DynamicType = ()>>(
        obj: &'a K,
        selector: &'a LabelSelector,
        template: &'a PodTemplateSpec,
        history_limit: Option<i32>,
    ) -> Result<Owner<'a>> {
        let namespace = obj.meta().namespace.clone().unwrap_or_default();
        let name = obj.meta().name.clone().unwrap_or_default();
        let key = format!("{namespace}/{name}");
        let owner_ref = controller_ref(obj).ok_or(Error::Missing {
            object: key.clone(),
            field: "metadata.uid",
        })?;
        Ok(Owner {
            key,
            name,
            namespace,
            owner_ref,
            selector,
            template,
            annotations: obj.annotations(),
            history_limit,
        })
    }
}

/// The revision data: a strategic merge patch replacing the whole pod template.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The pod template a revision restores.
pub fn revision_template(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The name of the revision of workload `owner` for template `hash`.
pub fn revision_name(owner: &str, hash: &str) -> String {
    let mut prefix = owner.to_string();
    // Names are at most 253 characters; the hash keeps them unique.
    prefix.truncate(253 - 1 - hash.len());
    format!("{prefix}-{hash}")
}

/// The workload's revisions (those it controls among those its selector matches), oldest
/// revision number first.
pub async fn list(client: &Client, owner: &Owner<'_>) -> Result<Vec<ControllerRevision>> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &owner.namespace);
    let selector =
        Selector::from_label_selector(owner.selector).map_err(|source| Error::Selector {
            object: owner.key.clone(),
            source,
        })?;
    let mut history: Vec<ControllerRevision> = api
        .list(&ListParams::default().labels(&selector.to_string()))
        .await
        .map_err(Error::api(owner.key.clone()))?
        .items
        .into_iter()
        .filter(|r| controller_of(r).is_some_and(|c| c.uid == owner.owner_ref.uid))
        .collect();
    history.sort_by_key(|r| r.revision);
    Ok(history)
}

/// What `sync` found.
pub enum Synced {
    /// The current template's revision (it has the highest number), and the history as it
    /// was listed before this sync.
    Current {
        revision: ControllerRevision,
        history: Vec<ControllerRevision>,
    },
    /// A revision of another template already has the name this template's hash gives; the
    /// caller bumps `status.collisionCount` and hashes again.
    Collision,
}

/// Makes sure the current template (hash `hash`) has the highest revision, creating or
/// renumbering its ControllerRevision, then deletes old revisions beyond the history limit
/// whose names are not in `in_use` (revisions live pods, or the status, still name).
pub async fn sync(
    client: &Client,
    owner: &Owner<'_>,
    hash: &str,
    in_use: &HashSet<String>,
) -> Result<Synced> {
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &owner.namespace);
    let history = list(client, owner).await?;
    let max = history.last().map_or(0, |r| r.revision);
    let name = revision_name(&owner.name, hash);
    let data = revision_data(owner.template);

    let current = match history.iter().find(|r| r.name_any() == name) {
        Some(r) if r.data.as_ref().map(|d| &d.0) != Some(&data) => return Ok(Synced::Collision),
        Some(r) if r.revision == max => r.clone(),
        Some(_) => {
            // A rollback to an older template: that revision becomes the newest again.
            let patch = json!({"revision": max + 1});
            api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::api(name.clone()))?
        }
        None => match create(&api, owner, &name, hash, data, max + 1).await? {
            Some(r) => r,
            None => return Ok(Synced::Collision),
        },
    };

    let limit = owner.history_limit.unwrap_or(DEFAULT_HISTORY_LIMIT).max(0) as usize;
    let old: Vec<&ControllerRevision> = history
        .iter()
        .filter(|r| r.name_any() != name && !in_use.contains(&r.name_any()))
        .collect();
    for r in old.iter().take(old.len().saturating_sub(limit)) {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(Error::api(r.name_any())(e)),
        }
    }
    Ok(Synced::Current {
        revision: current,
        history,
    })
}

/// Creates revision `number` of the template; `None` when a namesake of another template
/// (or of another owner) is in the way.
async fn create(
    api: &Api<ControllerRevision>,
    owner: &Owner<'_>,
    name: &str,
    hash: &str,
    data: Value,
    number: i64,
) -> Result<Option<ControllerRevision>> {
    let mut labels: BTreeMap<String, String> = owner
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH.into(), hash.into());
    // Annotations (e.g. kubernetes.io/change-cause) travel with the revision, as in
    // Kubernetes, so `rollout history` can show them.
    let annotations: BTreeMap<String, String> = owner
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let revision = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![owner.owner_ref.clone()]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: number,
    };
    match api.create(&PostParams::default(), &revision).await {
        Ok(r) => Ok(Some(r)),
        // Made by an earlier reconcile whose list this one did not see yet: it is ours if it
        // holds this template for this owner.
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(name).await.map_err(Error::api(name.to_string()))?;
            let ours = controller_of(&existing).is_some_and(|c| c.uid == owner.owner_ref.uid)
                && existing.data.as_ref().map(|d| &d.0) == Some(&data);
            Ok(ours.then_some(existing))
        }
        Err(e) => Err(Error::api(name.to_string())(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_replaces_the_whole_template_and_restores_it() {
        let t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}))
        .unwrap();
        let data = revision_data(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox"
        );
        let r = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(revision_template(&r), Some(t));
        assert_eq!(revision_name("agent", "5d8f9c"), "agent-5d8f9c");
        assert_eq!(revision_name(&"x".repeat(253), "abc").len(), 253);
    }
}
