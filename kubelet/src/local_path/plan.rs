//! The local provisioner's decisions, without I/O: whether a claim is this node's to
//! provision, the PersistentVolume made for it, and whether a volume is this node's to
//! reclaim.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use skiff_api::storage::{
    HOSTNAME_LABEL, LOCAL_PATH_PROVISIONER, PROVISIONED_BY, SELECTED_NODE, STORAGE_PROVISIONER,
};

/// Annotation naming the node a provisioned volume's directory is on.
pub const VOLUME_NODE: &str = "skiff.io/local-path-node";

/// What to do about one claim.
#[derive(Debug, PartialEq)]
pub enum ClaimPlan {
    /// Not this node's business (another provisioner or node, already bound, deleting).
    Skip,
    /// Make the directory and the volume.
    Provision {
        /// The volume's name (`pvc-<claim uid>`).
        name: String,
        /// The directory under the provisioner's root.
        dir: PathBuf,
    },
    /// The claim cannot be provisioned here; the message becomes a ProvisioningFailed event.
    Fail(String),
}

fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// Decides about `pvc` of class `class` on node `node` with directories under `root`.
pub fn plan_claim(
    pvc: &PersistentVolumeClaim,
    class: Option<&StorageClass>,
    node: &str,
    root: &Path,
) -> ClaimPlan {
    let meta = &pvc.metadata;
    let bound = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if bound
        || meta.deletion_timestamp.is_some()
        || annotation(meta, STORAGE_PROVISIONER) != Some(LOCAL_PATH_PROVISIONER)
        || annotation(meta, SELECTED_NODE) != Some(node)
    {
        return ClaimPlan::Skip;
    }
    if class.is_none_or(|c| c.provisioner != LOCAL_PATH_PROVISIONER) {
        return ClaimPlan::Skip;
    }
    let modes = pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    if let Some(m) = modes
        .iter()
        .find(|m| !matches!(m.as_str(), "ReadWriteOnce" | "ReadWriteOncePod"))
    {
        return ClaimPlan::Fail(format!(
            "{LOCAL_PATH_PROVISIONER} only supports ReadWriteOnce and ReadWriteOncePod access modes, not {m}"
        ));
    }
    if pvc.spec.as_ref().and_then(|s| s.volume_mode.as_deref()) == Some("Block") {
        return ClaimPlan::Fail(format!(
            "{LOCAL_PATH_PROVISIONER} does not support volumeMode Block"
        ));
    }
    if pvc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some()
    {
        return ClaimPlan::Fail("claim Selector is not supported".into());
    }
    let uid = meta.uid.as_deref().unwrap_or_default();
    let ns = meta.namespace.as_deref().unwrap_or("default");
    let name = meta.name.as_deref().unwrap_or_default();
    ClaimPlan::Provision {
        name: format!("pvc-{uid}"),
        dir: root.join(format!("pvc-{uid}_{ns}_{name}")),
    }
}

/// The volume for a claim provisioned as `name` in `dir` on `node`: pre-bound to the
/// claim, pinned to the node, sized as the claim asks, with the class's reclaim policy.
pub fn volume_for(
    pvc: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    name: &str,
    dir: &Path,
) -> PersistentVolume {
    let spec = pvc.spec.clone().unwrap_or_default();
    let capacity = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| BTreeMap::from([("storage".to_string(), q.clone())]));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(BTreeMap::from([
                (
                    PROVISIONED_BY.to_string(),
                    LOCAL_PATH_PROVISIONER.to_string(),
                ),
                (VOLUME_NODE.to_string(), node.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity,
            access_modes: spec.access_modes.clone(),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: Some(spec.volume_mode.unwrap_or_else(|| "Filesystem".into())),
            host_path: Some(HostPathVolumeSource {
                path: dir.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node.into()]),
                        }]),
                        ..NodeSelectorTerm::default()
                    }],
                }),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: pvc.metadata.namespace.clone(),
                name: pvc.metadata.name.clone(),
                uid: pvc.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
            mount_options: class.mount_options.clone(),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    }
}

/// The directory of `pv` when it is a volume this node provisioned, inside `root` (so no
/// volume can name another directory).
pub fn owned_dir(pv: &PersistentVolume, node: &str, root: &Path) -> Option<PathBuf> {
    if annotation(&pv.metadata, PROVISIONED_BY) != Some(LOCAL_PATH_PROVISIONER)
        || annotation(&pv.metadata, VOLUME_NODE) != Some(node)
    {
        return None;
    }
    let path = PathBuf::from(&pv.spec.as_ref()?.host_path.as_ref()?.path);
    let inside = path.parent() == Some(root)
        && path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with("pvc-"));
    inside.then_some(path)
}

/// The directory to remove when `pv` is this node's provisioned volume, Released, with
/// reclaim policy Delete.
pub fn reclaim(pv: &PersistentVolume, node: &str, root: &Path) -> Option<PathBuf> {
    let spec = pv.spec.as_ref()?;
    let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Released")
        || spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete")
    {
        return None;
    }
    owned_dir(pv, node, root)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn class() -> StorageClass {
        serde_json::from_value(json!({"metadata": {"name": "local-path"},
            "provisioner": LOCAL_PATH_PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer"}))
        .unwrap()
    }

    fn claim(extra: serde_json::Value) -> PersistentVolumeClaim {
        let mut c = json!({"metadata": {"name": "data", "namespace": "db", "uid": "u1",
                "annotations": {SELECTED_NODE: "n1", STORAGE_PROVISIONER: LOCAL_PATH_PROVISIONER}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                "resources": {"requests": {"storage": "2Gi"}}}});
        for (k, v) in extra.as_object().unwrap() {
            c["spec"][k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn only_the_selected_node_provisions_unbound_claims_of_its_class() {
        let root = Path::new("/var/lib/skiff/storage");
        let plan = plan_claim(&claim(json!({})), Some(&class()), "n1", root);
        assert_eq!(
            plan,
            ClaimPlan::Provision {
                name: "pvc-u1".into(),
                dir: root.join("pvc-u1_db_data"),
            }
        );
        assert_eq!(
            plan_claim(&claim(json!({})), Some(&class()), "n2", root),
            ClaimPlan::Skip
        );
        assert_eq!(
            plan_claim(
                &claim(json!({"volumeName": "pv"})),
                Some(&class()),
                "n1",
                root
            ),
            ClaimPlan::Skip
        );
        let mut other = class();
        other.provisioner = "example.com/nfs".into();
        assert_eq!(
            plan_claim(&claim(json!({})), Some(&other), "n1", root),
            ClaimPlan::Skip
        );
        let ClaimPlan::Fail(msg) = plan_claim(
            &claim(json!({"accessModes": ["ReadWriteMany"]})),
            Some(&class()),
            "n1",
            root,
        ) else {
            panic!("a shared access mode is refused");
        };
        assert!(msg.contains("ReadWriteMany"), "{msg}");
    }

    #[test]
    fn the_volume_is_pre_bound_pinned_and_sized_and_reclaimed_only_when_released() {
        let root = Path::new("/s");
        let dir = root.join("pvc-u1_db_data");
        let mut pv = volume_for(&claim(json!({})), &class(), "n1", "pvc-u1", &dir);
        let spec = pv.spec.as_ref().unwrap();
        assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "2Gi");
        assert_eq!(spec.claim_ref.as_ref().unwrap().uid.as_deref(), Some("u1"));
        assert_eq!(
            spec.persistent_volume_reclaim_policy.as_deref(),
            Some("Delete")
        );
        let host = |n: &str| BTreeMap::from([(HOSTNAME_LABEL.to_string(), n.to_string())]);
        assert!(skiff_api::storage::volume_fits_node(&pv, "n1", &host("n1")));
        assert!(!skiff_api::storage::volume_fits_node(
            &pv,
            "n2",
            &host("n2")
        ));
        assert_eq!(reclaim(&pv, "n1", root), None, "a bound volume stays");
        pv.status = Some(k8s_openapi::api::core::v1::PersistentVolumeStatus {
            phase: Some("Released".into()),
            ..Default::default()
        });
        assert_eq!(reclaim(&pv, "n1", root), Some(dir));
        assert_eq!(reclaim(&pv, "n2", root), None, "another node's volume");
        pv.spec.as_mut().unwrap().host_path.as_mut().unwrap().path = "/etc".into();
        assert_eq!(reclaim(&pv, "n1", root), None, "outside the root");
    }
}
