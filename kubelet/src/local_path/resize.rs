//! Volume expansion of the local class, without I/O: the steps the external resizer and
//! the kubelet take in Kubernetes (with RecoverVolumeExpansionFailure), done by the agent
//! that owns the volume's directory. A bound claim asking for more than it has goes
//! `ControllerResizeInProgress` (condition `Resizing`), its volume's capacity grows and it
//! goes `NodeResizePending` (condition `FileSystemResizePending`), then the node applies
//! the new limit to the directory and the claim's capacity shows the new size.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as KubeQuantity;
use serde_json::{Value, json};
use skiff_api::quantity::Quantity;

use super::plan::owned_dir;

/// `allocatedResourceStatuses` while the volume itself grows.
pub const CONTROLLER_IN_PROGRESS: &str = "ControllerResizeInProgress";
/// `allocatedResourceStatuses` once the volume grew and the node has its part to do.
pub const NODE_PENDING: &str = "NodeResizePending";
/// The condition of a claim whose volume is growing.
pub const RESIZING: &str = "Resizing";
/// The condition of a claim whose volume grew, waiting for the node.
pub const FS_RESIZE_PENDING: &str = "FileSystemResizePending";
/// The message Kubernetes' resizer gives [`FS_RESIZE_PENDING`].
pub const FS_RESIZE_PENDING_MESSAGE: &str =
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node.";

/// The next step of one claim's expansion.
#[derive(Debug, PartialEq)]
pub enum ResizeStep {
    /// Nothing to do.
    None,
    /// Record the expansion to `size` as started.
    Start {
        /// The size asked for.
        size: KubeQuantity,
    },
    /// Grow the volume to `size` and hand over to the node.
    GrowVolume {
        /// The size being allocated.
        size: KubeQuantity,
    },
    /// Hold the directory to `size` and give the claim its new capacity.
    FinishOnNode {
        /// The size being allocated.
        size: KubeQuantity,
        /// The volume's directory.
        dir: PathBuf,
    },
}

fn storage(
    list: Option<&std::collections::BTreeMap<String, KubeQuantity>>,
) -> Option<KubeQuantity> {
    list.and_then(|l| l.get("storage")).cloned()
}

fn parsed(q: &Option<KubeQuantity>) -> Option<Quantity> {
    q.as_ref().and_then(|q| Quantity::parse(&q.0).ok())
}

/// The step for claim `pvc` bound to `pv`, when `pv` is this node's provisioned volume.
pub fn plan_resize(
    pvc: &PersistentVolumeClaim,
    pv: &PersistentVolume,
    node: &str,
    root: &Path,
) -> ResizeStep {
    let Some(dir) = owned_dir(pv, node, root) else {
        return ResizeStep::None;
    };
    let status = pvc.status.clone().unwrap_or_default();
    let bound_here = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| r.uid.is_some() && r.uid == pvc.metadata.uid);
    if status.phase.as_deref() != Some("Bound")
        || !bound_here
        || pvc.metadata.deletion_timestamp.is_some()
    {
        return ResizeStep::None;
    }
    let allocated = storage(status.allocated_resources.as_ref());
    let state = status
        .allocated_resource_statuses
        .as_ref()
        .and_then(|s| s.get("storage"))
        .map(String::as_str);
    match (state, allocated) {
        (Some(CONTROLLER_IN_PROGRESS), Some(size)) => return ResizeStep::GrowVolume { size },
        (Some(NODE_PENDING | "NodeResizeInProgress"), Some(size)) => {
            return ResizeStep::FinishOnNode { size, dir };
        }
        _ => {}
    }
    let requested = storage(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    );
    let capacity = storage(status.capacity.as_ref());
    match (parsed(&requested), parsed(&capacity), requested) {
        (Some(r), Some(c), Some(size)) if r > c => ResizeStep::Start { size },
        _ => ResizeStep::None,
    }
}

/// The claim's conditions without the resize ones, then `add` (stamped `now`).
pub fn conditions(pvc: &PersistentVolumeClaim, add: Option<(&str, &str)>, now: &str) -> Value {
    let mut out: Vec<Value> = pvc
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| !matches!(c.type_.as_str(), RESIZING | FS_RESIZE_PENDING))
        .map(|c| serde_json::to_value(c).unwrap_or_default())
        .collect();
    if let Some((kind, message)) = add {
        let mut c = json!({"type": kind, "status": "True", "lastProbeTime": null,
            "lastTransitionTime": now});
        if !message.is_empty() {
            c["message"] = json!(message);
        }
        out.push(c);
    }
    json!(out)
}

/// The claim status patch of `step` (for the node step, once the limit is in place).
pub fn status_patch(pvc: &PersistentVolumeClaim, step: &ResizeStep, now: &str) -> Option<Value> {
    let status = match step {
        ResizeStep::None => return None,
        ResizeStep::Start { size } => json!({
            "allocatedResources": {"storage": size},
            "allocatedResourceStatuses": {"storage": CONTROLLER_IN_PROGRESS},
            "conditions": conditions(pvc, Some((RESIZING, "")), now),
        }),
        ResizeStep::GrowVolume { .. } => json!({
            "allocatedResourceStatuses": {"storage": NODE_PENDING},
            "conditions": conditions(pvc, Some((FS_RESIZE_PENDING, FS_RESIZE_PENDING_MESSAGE)), now),
        }),
        ResizeStep::FinishOnNode { size, .. } => json!({
            "capacity": {"storage": size},
            "allocatedResourceStatuses": {"storage": null},
            "conditions": conditions(pvc, None, now),
        }),
    };
    Some(json!({"status": status}))
}

/// Bytes of a storage quantity (0 when it does not parse or is negative).
pub fn bytes(q: &KubeQuantity) -> u64 {
    Quantity::parse(&q.0)
        .ok()
        .and_then(|v| u64::try_from(v.value()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::local_path::plan::VOLUME_NODE;
    use skiff_api::storage::{LOCAL_PATH_PROVISIONER, PROVISIONED_BY};

    fn volume(node: &str) -> PersistentVolume {
        serde_json::from_value(json!({"metadata": {"name": "pvc-u1", "annotations": {
                PROVISIONED_BY: LOCAL_PATH_PROVISIONER, VOLUME_NODE: node}},
            "spec": {"capacity": {"storage": "16Mi"}, "hostPath": {"path": "/s/pvc-u1_db_data"},
                "claimRef": {"uid": "u1", "name": "data", "namespace": "db"}},
            "status": {"phase": "Bound"}}))
        .unwrap()
    }

    fn claim(request: &str, status: Value) -> PersistentVolumeClaim {
        let mut st = json!({"phase": "Bound", "capacity": {"storage": "16Mi"}});
        for (k, v) in status.as_object().unwrap() {
            st[k] = v.clone();
        }
        serde_json::from_value(
            json!({"metadata": {"name": "data", "namespace": "db", "uid": "u1"},
            "spec": {"volumeName": "pvc-u1", "resources": {"requests": {"storage": request}}},
            "status": st}),
        )
        .unwrap()
    }

    fn q(s: &str) -> KubeQuantity {
        KubeQuantity(s.into())
    }

    #[test]
    fn a_bigger_request_goes_through_the_controller_then_the_node() {
        let root = Path::new("/s");
        let pv = volume("n1");
        assert_eq!(
            plan_resize(&claim("16Mi", json!({})), &pv, "n1", root),
            ResizeStep::None
        );
        let asked = claim("32Mi", json!({}));
        let start = plan_resize(&asked, &pv, "n1", root);
        assert_eq!(start, ResizeStep::Start { size: q("32Mi") });
        assert_eq!(
            plan_resize(&asked, &volume("n2"), "n1", root),
            ResizeStep::None,
            "another node's volume"
        );
        assert_eq!(plan_resize(&asked, &pv, "n2", root), ResizeStep::None);
        let patch = status_patch(&asked, &start, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(patch["status"]["allocatedResources"]["storage"], "32Mi");
        assert_eq!(patch["status"]["conditions"][0]["type"], RESIZING);

        // A merge patch keeps what it does not name.
        let mut stored = patch["status"].clone();
        let resizing = claim("32Mi", stored.clone());
        let grow = plan_resize(&resizing, &pv, "n1", root);
        assert_eq!(grow, ResizeStep::GrowVolume { size: q("32Mi") });
        let patch = status_patch(&resizing, &grow, "2026-01-01T00:00:01Z").unwrap();
        assert_eq!(
            patch["status"]["allocatedResourceStatuses"]["storage"],
            NODE_PENDING
        );
        let conds = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conds.len(), 1, "Resizing is replaced: {conds:?}");
        assert_eq!(conds[0]["type"], FS_RESIZE_PENDING);
        assert_eq!(conds[0]["message"], FS_RESIZE_PENDING_MESSAGE);

        for (k, v) in patch["status"].as_object().unwrap() {
            stored[k] = v.clone();
        }
        let pending = claim("32Mi", stored);
        let finish = plan_resize(&pending, &pv, "n1", root);
        assert_eq!(
            finish,
            ResizeStep::FinishOnNode {
                size: q("32Mi"),
                dir: root.join("pvc-u1_db_data")
            }
        );
        let patch = status_patch(&pending, &finish, "2026-01-01T00:00:02Z").unwrap();
        assert_eq!(patch["status"]["capacity"]["storage"], "32Mi");
        assert_eq!(patch["status"]["conditions"], json!([]));
        assert!(patch["status"]["allocatedResourceStatuses"]["storage"].is_null());
        assert_eq!(bytes(&q("32Mi")), 32 << 20);
    }

    #[test]
    fn unbound_or_foreign_claims_are_not_resized() {
        let root = Path::new("/s");
        let pv = volume("n1");
        let mut pending = claim("32Mi", json!({}));
        pending.status.as_mut().unwrap().phase = Some("Pending".into());
        assert_eq!(plan_resize(&pending, &pv, "n1", root), ResizeStep::None);
        let mut other = claim("32Mi", json!({}));
        other.metadata.uid = Some("u2".into());
        assert_eq!(plan_resize(&other, &pv, "n1", root), ResizeStep::None);
    }
}
