//! DaemonSet history as Kubernetes keeps it: one ControllerRevision per template, named
//! `<daemonset>-<hash>`, labelled with the template's labels and `controller-revision-hash`,
//! holding the strategic merge patch that restores the template (what `kubectl rollout undo
//! ds` applies), and numbered so the current template has the highest revision.

use std::collections::{BTreeMap, HashSet};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, ListParams, Patch, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use skiff_api::labels::Selector;

use crate::claim::{controller_of, controller_ref};
use crate::daemon_plan::CONTROLLER_REVISION_HASH;
use crate::error::{Error, Result, not_found};

/// How many old revisions a DaemonSet keeps unless `spec.revisionHistoryLimit` says otherwise.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// The revision data: a strategic merge patch replacing the whole pod template.
pub fn revision_data(ds: &DaemonSet) -> Value {
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| serde_json::to_value(&s.template).unwrap_or_default())
        .unwrap_or_else(|| json!({}));
    template["$patch"] = json!("replace");
    json!({"spec": {"template": template}})
}

/// The name of the revision of `ds` for template `hash`.
pub fn revision_name(ds: &DaemonSet, hash: &str) -> String {
    let mut prefix = ds.name_any();
    // Names are at most 253 characters; the hash keeps them unique.
    prefix.truncate(253 - 1 - hash.len());
    format!("{prefix}-{hash}")
}

/// Makes sure the current template of `ds` (hash `hash`) has the highest revision, creating
/// or renumbering its ControllerRevision, then deletes old revisions beyond the history limit
/// that no live pod in `hashes_in_use` still runs. Returns the current revision number.
pub async fn sync(
    client: &Client,
    ds: &DaemonSet,
    hash: &str,
    hashes_in_use: &HashSet<String>,
) -> Result<i64> {
    let ns = ds.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", ds.name_any());
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let spec = ds.spec.clone().unwrap_or_default();
    let selector =
        Selector::from_label_selector(&spec.selector).map_err(|source| Error::Selector {
            object: key.clone(),
            source,
        })?;
    let uid = ds.uid().unwrap_or_default();
    let mut history: Vec<ControllerRevision> = api
        .list(&ListParams::default().labels(&selector.to_string()))
        .await
        .map_err(Error::api(key.clone()))?
        .items
        .into_iter()
        .filter(|r| controller_of(r).is_some_and(|c| c.uid == uid))
        .collect();
    history.sort_by_key(|r| r.revision);
    let max = history.last().map_or(0, |r| r.revision);
    let name = revision_name(ds, hash);

    let current = match history.iter().find(|r| r.name_any() == name) {
        Some(r) if r.revision == max => max,
        Some(_) => {
            // A rollback to an older template: that revision becomes the newest again.
            let patch = json!({"revision": max + 1});
            api.patch(&name, &crate::patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(Error::api(name.clone()))?;
            max + 1
        }
        None => {
            let owner = controller_ref(ds).ok_or(Error::Missing {
                object: key.clone(),
                field: "metadata.uid",
            })?;
            let mut labels: BTreeMap<String, String> = spec
                .template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(CONTROLLER_REVISION_HASH.into(), hash.into());
            // Annotations (e.g. kubernetes.io/change-cause) travel with the revision, as in
            // Kubernetes, so `rollout history` can show them.
            let annotations: BTreeMap<String, String> = ds
                .annotations()
                .iter()
                .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    owner_references: Some(vec![owner]),
                    ..Default::default()
                },
                data: Some(RawExtension(revision_data(ds))),
                revision: max + 1,
            };
            match api.create(&PostParams::default(), &revision).await {
                Ok(_) => max + 1,
                // Created by an earlier reconcile whose list this one did not see yet.
                Err(kube::Error::Api(e)) if e.code == 409 => max + 1,
                Err(e) => return Err(Error::api(name.clone())(e)),
            }
        }
    };

    let limit = spec
        .revision_history_limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .max(0) as usize;
    let old: Vec<&ControllerRevision> = history
        .iter()
        .filter(|r| r.name_any() != name)
        .filter(|r| {
            r.labels()
                .get(CONTROLLER_REVISION_HASH)
                .is_none_or(|h| !hashes_in_use.contains(h))
        })
        .collect();
    for r in old.iter().take(old.len().saturating_sub(limit)) {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(Error::api(r.name_any())(e)),
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_replaces_the_whole_template() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
        .unwrap();
        let data = revision_data(&ds);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox"
        );
        assert_eq!(revision_name(&ds, "5d8f9c"), "agent-5d8f9c");
        let long: DaemonSet =
            serde_json::from_value(json!({"metadata": {"name": "x".repeat(253)}})).unwrap();
        assert_eq!(revision_name(&long, "abc").len(), 253);
    }
}
